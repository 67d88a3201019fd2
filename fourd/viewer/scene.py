"""What the viewer plays: a baked ``.fourd`` file, a folder of PLY frames (e.g. ``fourd carve``
output) or a carved ``points.safetensors`` — all served as :class:`BakedFrame` one frame at a time."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from fourd.bake.format import BakedFrame, BakedSequence
from fourd.errors import DataError
from fourd.structures.cameras import Cameras


class Scene:
    def __init__(self, frames: list[int], fps: float, cameras: Cameras | None, near: float, far: float,
                 background=(0.0, 0.0, 0.0), bounds=None, held_out=None, points_per_pixel: int | None = None):
        self.frames, self.fps, self.cameras = frames, fps, cameras
        self.near, self.far, self.background = near, far, tuple(background)
        self.bounds = bounds
        self.held_out = held_out or []
        self.points_per_pixel = points_per_pixel  # the K the model was trained with (a bake of a run), else None

    def K(self, asked: int | None = None) -> int:
        """Points to composite per pixel: ``asked``, else the K the model was trained to be seen
        with (a model trained with 12 and drawn with 8 leaves its interior less opaque), else the
        training default."""
        from fourd.config import TrainConfig

        return int(asked or self.points_per_pixel or TrainConfig.K)

    def __len__(self) -> int:
        return len(self.frames)

    def frame(self, t: int) -> BakedFrame:
        raise NotImplementedError

    def describe(self) -> str:
        """One line for the viewer's panel."""
        return f"{len(self)} frame{'s' if len(self) != 1 else ''}"


class BakedScene(Scene):
    def __init__(self, path: Path):
        self.seq = BakedSequence(path)
        m = self.seq.cameras
        cams = None
        if m.get("names"):
            cams = Cameras.from_dict(m)  # D too, where the file has it
        lo, hi = self.seq.lo.numpy(), self.seq.hi.numpy()
        ppp = m.get("points_per_pixel")
        super().__init__(self.seq.frames, self.seq.fps, cams, m.get("near", 0.01), m.get("far", 100.0),
                         self.seq.background, (lo, hi), m.get("held_out"),
                         int(ppp) if isinstance(ppp, int) and 1 <= ppp <= 64 else None)

    def frame(self, t: int) -> BakedFrame:
        return self.seq.frame(t)

    def describe(self) -> str:
        seq = self.seq
        if seq.views is not None:
            kind = f"exact view tables ({len(seq.views['centers'])} cameras, {seq.views['select']} blended)"
        else:
            kind = "compact colours" + (" + SH" if seq.has_sh else "")
        return f"{seq.path.name}: {len(seq)} frames, {kind}, {seq.bytes_per_point:.0f} B/point"


class PointsScene(Scene):
    """Coloured points without learned radii: radius from the mean point spacing, density 1."""

    def __init__(self, path: Path, seq=None):
        from fourd.structures.points import PointSequence

        if seq is not None:
            self.seq = seq
            frames = list(seq.frames)
        elif path.is_dir():
            self.files = sorted(p for p in path.glob("*.ply") if p.stem.isdigit())
            if not self.files:
                raise DataError("no <frame>.ply files here", path, "pass a fourd carve output folder or a .fourd file")
            frames = [int(p.stem) for p in self.files]
            self.seq = None
        else:
            self.seq = PointSequence.load(path)
            frames = list(self.seq.frames)
        first = self.frame(0)
        lo, hi = first.xyz.min(0).values.numpy(), first.xyz.max(0).values.numpy()
        ext = float(np.linalg.norm(hi - lo))
        super().__init__(frames, 30.0, None, ext * 0.01, ext * 20, (0.0, 0.0, 0.0), (lo, hi))

    def frame(self, t: int) -> BakedFrame:
        if self.seq is not None:
            f = self.seq.frames[t]
            xyz = self.seq.frame(f).float()
            rgb = self.seq.attribute("colors", f).float() if "colors" in self.seq.attributes else None
            if "radius" in self.seq.attributes:  # generators and `fourd import` store per-point radii
                n = xyz.shape[0]
                rgb = rgb if rgb is not None else torch.full((n, 3), 0.8)
                dens = self.seq.attribute("density", f).float().reshape(-1) if "density" in self.seq.attributes \
                    else torch.ones(n)
                return BakedFrame(xyz, self.seq.attribute("radius", f).float().reshape(-1), dens, rgb, None)
        else:
            from fourd.structures.points import read_ply

            xyz, attrs = read_ply(self.files[t])  # what fourd wrote reads back: radius and density too
            n = xyz.shape[0]
            rgb = attrs["colors"] if "colors" in attrs else torch.full((n, 3), 0.8)
            if "radius" in attrs:
                dens = attrs["density"].reshape(-1) if "density" in attrs else torch.ones(n)
                return BakedFrame(xyz, attrs["radius"].reshape(-1), dens, rgb, None)
        n = xyz.shape[0]
        ext = float((xyz.max(0).values - xyz.min(0).values).norm())
        radius = 1.5 * ext / math.sqrt(max(n, 1)) * 0.5  # about the spacing of points on a surface
        if rgb is None:
            rgb = torch.full((n, 3), 0.8)
        return BakedFrame(xyz, torch.full((n,), radius), torch.ones(n), rgb, None)


class MeshScene(Scene):
    """A static mesh (OBJ, GLB/glTF, PLY with faces, ...), shown as points sampled over its surface."""

    def __init__(self, path: Path, points: int = 200_000):
        from fourd.structures.mesh import Meshes

        seq = Meshes.load(path).sample_points(points)
        xyz = seq.points
        self._frame = BakedFrame(xyz, seq.attributes["radius"].reshape(-1), torch.ones(points),
                                 seq.attributes["colors"], None)
        lo, hi = xyz.min(0).values.numpy(), xyz.max(0).values.numpy()
        ext = float(np.linalg.norm(hi - lo))
        super().__init__([0], 30.0, None, ext * 0.01, ext * 20, (0.0, 0.0, 0.0), (lo, hi))

    def frame(self, t: int) -> BakedFrame:
        return self._frame


def open_scene(path: str | Path) -> Scene:
    path = Path(path)
    if not path.exists():
        raise DataError("scene not found", path, "pass a .fourd file, a folder of PLY frames, points.safetensors "
                        "or a mesh")
    if path.suffix == ".fourd":
        return BakedScene(path)
    from fourd.gen.importers import _has_faces

    if path.is_file() and _has_faces(path):
        return MeshScene(path)
    if path.is_file() and path.suffix.lower() in (".ply", ".npz"):  # a single point cloud
        from fourd.gen.importers import import_any

        return PointsScene(path, import_any(path))
    return PointsScene(path)
