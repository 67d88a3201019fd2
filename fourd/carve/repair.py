"""Repair the masks the carve flagged, from the hull the other cameras agreed on.

A matte's failures are local: a hole where the subject matched the background, a stray blob of
background kept as foreground. The carve tolerates one such mask per frame (its vote), and its
report names the masks the hull contradicts (``carve.json`` ``masks_flagged``). Left as they are,
those masks still teach training a hole (the target is composited over the background with the
mask) and keep the source view from lending its colour there. :class:`MaskRepair` gives the
sampler, for each flagged (frame, camera), the mask with exactly what
:func:`~fourd.carve.metrics.mask_disagreement` counted undone: foreground farther than
``tolerance`` px outside the hull's silhouette removed, enclosed holes farther than ``tolerance`` px
inside it filled. Masks the carve did not flag are returned untouched (a clean capture is
unchanged); a pixel or two of erosion or dilation is within the tolerance and left as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fourd.structures.cameras import Cameras
from fourd.structures.points import PointSequence


class MaskRepair:
    def __init__(self, points: PointSequence, flagged: list[tuple[int, str]], spacing: float | dict[int, float],
                 tolerance: int = 2):
        self.points, self.tolerance = points, int(tolerance)
        self.spacing = spacing if isinstance(spacing, dict) else {int(f): float(spacing) for f in points.frames}
        self.flagged = {(int(f), str(c)) for f, c in flagged}
        self.repaired = 0  # masks repaired so far (for reports)

    @classmethod
    def from_carve(cls, carve_json: str | Path, points: PointSequence, spacing: float) -> MaskRepair | None:
        """The repair of the masks ``carve_json`` flags, or None when it flags none (or is missing)."""
        p = Path(carve_json)
        if not p.is_file():
            return None
        try:
            rep = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        flagged = [(m["frame"], m["camera"]) for m in rep.get("masks_flagged", []) if "frame" in m and "camera" in m]
        frames = set(points.frames)
        flagged = [(f, c) for f, c in flagged if int(f) in frames]
        # the spacing each frame was carved (and its masks judged) at
        per = {int(fr["frame"]): float(fr["spacing"]) for fr in rep.get("frames", []) if "spacing" in fr}
        return cls(points, flagged, {int(f): per.get(int(f), spacing) for f in points.frames}) if flagged else None

    def __call__(self, frame: int, name: str, mask: np.ndarray, camera: Cameras) -> np.ndarray:
        if (int(frame), str(name)) not in self.flagged:
            return mask
        self.repaired += 1
        return repair_mask(mask, self.points.frame(frame), camera, self.spacing[int(frame)], self.tolerance)


def repair_mask(mask: np.ndarray, points, camera: Cameras, spacing: float, tolerance: int = 2) -> np.ndarray:
    """``mask`` [H, W] bool with the hull's contradictions undone (see the module docstring);
    ``points`` [N, 3] the frame's carved points, ``camera`` the (undistorted) camera of the mask."""
    from fourd.carve.metrics import hull_contradictions, splat_masks

    s = splat_masks(points.to(camera.K.device, camera.K.dtype), camera, spacing)[0]
    stray, holes = hull_contradictions(s, mask, tolerance)
    return (np.asarray(mask, bool) & ~stray) | holes
