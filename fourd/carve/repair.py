"""Repair the masks the carve flagged, from the hull the other cameras agreed on.

A matte's failures are local: a hole where the subject matched the background, a stray blob of
background kept as foreground. The carve tolerates one such mask per frame (its vote), and its
report names the masks the hull contradicts (``carve.json`` ``masks_flagged``). Left as they are,
those masks still teach training a hole (the target is composited over the background with the
mask) and keep the source view from lending its colour there. :class:`MaskRepair` gives the
sampler, for each flagged (frame, camera), the mask with exactly what
:func:`~fourd.carve.metrics.mask_disagreement` counted undone: foreground farther than
``tolerance`` px outside the hull's silhouette removed, enclosed holes farther than ``tolerance`` px
inside it filled.

A matte can also be a pixel or two too tight or too loose all round in some frames. The carve
measures each mask's outline against the hull (:func:`~fourd.carve.metrics.edge_offset`) and lists
those that sit off where the same camera's other masks sit (``carve.json`` ``masks_offset``):
:class:`MaskRepair` grows or shrinks them back by that many pixels. Masks the carve listed in
neither are returned untouched (a clean capture is unchanged).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fourd.structures.cameras import Cameras
from fourd.structures.points import PointSequence


class MaskRepair:
    def __init__(self, points: PointSequence, flagged: list[tuple[int, str]], spacing: float | dict[int, float],
                 tolerance: int = 2, grow: dict[tuple[int, str], int] | None = None):
        self.points, self.tolerance = points, int(tolerance)
        self.spacing = spacing if isinstance(spacing, dict) else {int(f): float(spacing) for f in points.frames}
        self.flagged = {(int(f), str(c)) for f, c in flagged}
        self.grow = {(int(f), str(c)): int(k) for (f, c), k in (grow or {}).items() if int(k)}
        self.repaired = 0  # masks repaired so far (for reports)

    @classmethod
    def from_carve(cls, carve_json: str | Path, points: PointSequence, spacing: float, holes: bool = True,
                   outlines: bool = True) -> MaskRepair | None:
        """The repair of the masks ``carve_json`` lists — ``holes``: the flagged ones (holes and
        blobs), ``outlines``: the eroded or dilated ones — or None when there are none to repair
        (or the report is missing)."""
        p = Path(carve_json)
        if not p.is_file():
            return None
        try:
            rep = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        frames = set(points.frames)
        flagged = [(m["frame"], m["camera"]) for m in rep.get("masks_flagged", []) if "frame" in m and "camera" in m] \
            if holes else []
        flagged = [(f, c) for f, c in flagged if int(f) in frames]
        grow = {(int(m["frame"]), str(m["camera"])): int(m["pixels"]) for m in rep.get("masks_offset", [])
                if outlines and int(m.get("frame", -1)) in frames and "camera" in m and "pixels" in m}
        if not flagged and not grow:
            return None
        # the spacing each frame was carved (and its masks judged) at
        per = {int(fr["frame"]): float(fr["spacing"]) for fr in rep.get("frames", []) if "spacing" in fr}
        return cls(points, flagged, {int(f): per.get(int(f), spacing) for f in points.frames}, grow=grow)

    def __call__(self, frame: int, name: str, mask: np.ndarray, camera: Cameras) -> np.ndarray:
        from fourd.carve.metrics import grow

        key = (int(frame), str(name))
        if key not in self.flagged and key not in self.grow:
            return mask
        self.repaired += 1
        if key in self.grow:
            mask = grow(mask, self.grow[key])
        if key in self.flagged:
            mask = repair_mask(mask, self.points.frame(frame), camera, self.spacing[int(frame)], self.tolerance)
        return mask


def repair_mask(mask: np.ndarray, points, camera: Cameras, spacing: float, tolerance: int = 2) -> np.ndarray:
    """``mask`` [H, W] bool with the hull's contradictions undone (see the module docstring);
    ``points`` [N, 3] the frame's carved points, ``camera`` the (undistorted) camera of the mask."""
    from fourd.carve.metrics import hull_contradictions, splat_masks

    s = splat_masks(points.to(camera.K.device, camera.K.dtype), camera, spacing)[0]
    stray, holes = hull_contradictions(s, mask, tolerance)
    return (np.asarray(mask, bool) & ~stray) | holes
