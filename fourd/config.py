"""Dataclass configs: one docstring per field (shown by ``--help``), presets by name.

A run saves its resolved config as JSON beside its outputs; loading rejects unknown keys.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from fourd.errors import FourdError


@dataclass
class CarveConfig:
    points: int = 262_144
    """surface points per frame (4K4D uses 262,144; the demo preset far fewer)."""
    resolution: int = 256
    """voxels along the longest side of the working volume (the fine level)."""
    coarse_resolution: int = 32
    """voxels along the longest side at the coarsest level; each finer level halves the voxel edge
    (4K4D carves at ~15 mm then ~5 mm; here levels are relative to the subject, so any scale works)."""
    vote: float = 0.9
    """fraction of the cameras seeing a voxel that must put it inside their mask."""
    min_views: int = 3
    """voxels seen by fewer cameras are dropped."""
    margin: float = 0.05
    """margin around the automatically found volume, as a fraction of its largest side."""
    bounds: tuple[float, float, float, float, float, float] | None = None
    """working volume (xmin ymin zmin xmax ymax zmax); found from cameras and masks when unset."""
    mask_max_side: int = 1024
    """masks are downscaled so their longer side is at most this many pixels."""
    bounds_frames: int = 8
    """frames sampled (evenly) to find the working volume."""
    outlier_removal: bool = True
    """drop statistical outliers (Open3D) before resampling to the exact count."""
    include_held_out: bool = False
    """also carve with the held-out evaluation cameras' masks."""
    device: str = "cpu"
    """torch device (cpu, cuda, cuda:1, ...)."""
    seed: int = 0
    """seed for surface sampling."""


PRESETS: dict[str, dict[str, Any]] = {
    # exact synthetic masks: one camera in twenty may disagree (vote 0.95) instead of two
    "demo": {"carve": {"points": 32_768, "resolution": 256, "vote": 0.95}},
    "dna_rendering": {"carve": {"points": 262_144, "resolution": 256}},
}


def apply_overrides(cfg, overrides: dict[str, Any], where: str = "config"):
    """Return ``cfg`` with fields replaced; unknown keys are errors."""
    names = {f.name for f in dataclasses.fields(cfg)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise FourdError(f"unknown {type(cfg).__name__} keys {unknown}", where, f"valid keys: {', '.join(sorted(names))}")
    return dataclasses.replace(cfg, **overrides)


def to_json(cfg) -> str:
    return json.dumps(dataclasses.asdict(cfg), indent=2)


def from_json(cls, text: str, where: str = "config"):
    data = json.loads(text)
    return apply_overrides(cls(), {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}, where)


__all__ = ["CarveConfig", "PRESETS", "apply_overrides", "to_json", "from_json", "field"]
