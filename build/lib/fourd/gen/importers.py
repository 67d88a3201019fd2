"""Turn other tools' outputs into fourd's one-frame point sequence (`fourd import`).

* meshes (OBJ, GLB/glTF, PLY with faces, OFF, STL — a GET3D output, a scan, a fitted mesh):
  area-weighted surface samples with texture/vertex colours and normals;
* point clouds: Point-E's ``.npz`` (``coords`` plus ``R``/``G``/``B`` channels, as its
  ``PointCloud.save`` writes) and PLY point clouds (with or without colours).

Splat radii come from each point's nearest-neighbour spacing. Point-E and Shap-E work z-up;
fourd (like glTF) is y-up, so ``up="z"`` rotates them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fourd.errors import DataError
from fourd.structures.mesh import Meshes
from fourd.structures.mesh_io import MESH_SUFFIXES
from fourd.structures.points import PointSequence

Z_UP_TO_Y_UP = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # (x, y, z) → (x, z, −y)


def spacing_radius(points: torch.Tensor, k: int = 3, factor: float = 0.75) -> torch.Tensor:
    """Per-point splat radius [N, 1]: ``factor`` × mean distance to the k nearest neighbours."""
    from scipy.spatial import cKDTree

    p = points.detach().cpu().double().numpy()
    if len(p) < 2:
        return torch.full((len(p), 1), 0.01)
    d, _ = cKDTree(p).query(p, k=min(k + 1, len(p)))
    r = factor * d[:, 1:].mean(1)
    r = np.maximum(r, 1e-6 + 0.1 * np.median(r))
    return torch.from_numpy(r.astype(np.float32))[:, None]


def read_point_cloud(path: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(points [N, 3], colours [N, 3] in [0, 1] or None) from Point-E .npz or a PLY point cloud."""
    if path.suffix.lower() == ".npz":
        import zipfile

        try:
            with np.load(path, allow_pickle=False) as z:
                if "coords" not in z:
                    raise DataError("no 'coords' array in the .npz", path,
                                    "pass a Point-E point cloud (PointCloud.save writes coords, R, G, B)")
                xyz = np.asarray(z["coords"], np.float32)
                rgb = np.stack([z[c] for c in "RGB"], 1).astype(np.float32) if all(c in z for c in "RGB") else None
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as e:
            raise DataError(f"cannot read the .npz ({e})", path, "the file is truncated or not numpy's format") from None
        if rgb is not None and rgb.max() > 1.0:
            rgb = rgb / 255.0
    elif path.suffix.lower() == ".ply":  # fourd's own reader: truncation and NaN are refused, not zero-filled
        from fourd.structures.points import read_ply

        pts, attrs = read_ply(path)
        xyz = pts.numpy()
        rgb = attrs["colors"].numpy() if "colors" in attrs else None
    else:  # .pcd, .xyz
        import open3d as o3d

        pc = o3d.io.read_point_cloud(str(path))
        if not pc.has_points():
            raise DataError("the file has no points", path, "pass a point cloud PLY or a Point-E .npz")
        xyz = np.asarray(pc.points, np.float32)
        rgb = np.asarray(pc.colors, np.float32) if pc.has_colors() else None
    if xyz.ndim != 2 or xyz.shape[1] != 3 or len(xyz) == 0:
        raise DataError(f"expected points of shape [N, 3], got {list(xyz.shape)}", path, "check the file")
    if not np.isfinite(xyz).all():
        raise DataError("the point cloud has NaN or infinite coordinates", path, "re-export it")
    return torch.from_numpy(xyz), None if rgb is None else torch.from_numpy(np.clip(rgb, 0, 1))


def _has_faces(path: Path) -> bool:
    if path.suffix.lower() != ".ply":
        return path.suffix.lower() in MESH_SUFFIXES
    head = path.read_bytes()[:4096].split(b"end_header")[0]
    return b"element face" in head and b"element face 0\n" not in head and b"element face 0\r" not in head


def import_any(path: str | Path, points: int = 200_000, up: str | None = None, seed: int = 0) -> PointSequence:
    """A mesh or a point cloud → a one-frame PointSequence with colours, normals (meshes) and radii."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path, "check the path")
    if points < 1:
        raise DataError("--points must be at least 1", path, "pass e.g. --points 200000")
    if _has_faces(path):
        mesh = Meshes.load(path)
        if not mesh.is_watertight_manifold():
            from fourd.console import log

            log(f"note: {path.name} is not a closed manifold; surface sampling does not need one")
        seq = mesh.sample_points(points, seed)
        up = up or "y"
        kind = "mesh"
    elif path.suffix.lower() in (".npz", ".ply", ".pcd", ".xyz"):
        xyz, rgb = read_point_cloud(path)
        up = up or ("z" if path.suffix.lower() == ".npz" else "y")
        attrs = {"radius": [spacing_radius(xyz)]}
        if rgb is not None:
            attrs["colors"] = [rgb]
        seq = PointSequence.from_list([xyz], [0], attrs)
        kind = "points"
    else:
        raise DataError(f"unsupported file type '{path.suffix}'", path,
                        "pass a mesh (.obj .glb .gltf .ply .off .stl) or points (.ply, Point-E .npz)")
    if up not in ("y", "z"):
        raise DataError(f"--up must be y or z, got '{up}'", path, "pass --up z for z-up files (Point-E, Shap-E)")
    if up == "z":
        seq.points = seq.points @ Z_UP_TO_Y_UP.T
        if "normals" in seq.attributes:
            seq.attributes["normals"] = seq.attributes["normals"] @ Z_UP_TO_Y_UP.T
    lo, hi = seq.bounds()
    seq.meta.update({"source": str(path), "kind": kind, "up": up, "bounds": [lo.tolist(), hi.tolist()]})
    return seq
