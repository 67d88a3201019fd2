"""From an occupancy grid to a fixed number of surface points: marching cubes (scikit-image) on
the lightly smoothed hull, area-weighted sampling with normals, outlier removal (Open3D)."""

from __future__ import annotations

import numpy as np
import torch

from fourd.carve.hull import Grid


def hull_mesh(occ: torch.Tensor, grid: Grid, smooth: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    """Triangle mesh (vertices [V, 3] world, faces [F, 3]) of the occupancy's boundary."""
    from scipy.ndimage import gaussian_filter
    from skimage.measure import marching_cubes

    vol = np.pad(occ.cpu().numpy().astype(np.float32), 1)
    if smooth > 0:
        vol = gaussian_filter(vol, smooth)
    verts, faces, _, _ = marching_cubes(vol, 0.5)
    verts = (verts - 1 + 0.5) * grid.size + grid.lo.numpy()  # voxel i's centre sits at lo + (i + ½)·size
    return verts.astype(np.float32), faces.astype(np.int64)


def sample_surface(verts: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator):
    """``n`` points uniformly over the mesh area, with the face normals (pointing outward)."""
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    cross = np.cross(b - a, c - a)
    area = np.linalg.norm(cross, axis=1)
    if area.sum() <= 0:
        raise ValueError("the hull surface has zero area")
    fi = rng.choice(len(faces), size=n, p=area / area.sum())
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    pts = a[fi] + u[:, None] * (b[fi] - a[fi]) + v[:, None] * (c[fi] - a[fi])
    # marching_cubes orients faces with the gradient (toward increasing occupancy): flip to point outward
    normals = -cross[fi] / np.maximum(area[fi, None], 1e-20)
    return pts.astype(np.float32), normals.astype(np.float32)


def remove_outliers(points: np.ndarray, neighbors: int = 20, std_ratio: float = 2.5) -> np.ndarray:
    """Indices of the points Open3D's statistical outlier removal keeps."""
    import open3d as o3d

    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
    _, keep = pc.remove_statistical_outlier(nb_neighbors=neighbors, std_ratio=std_ratio)
    return np.asarray(keep, dtype=np.int64)


def surface_points(occ: torch.Tensor, grid: Grid, n: int, seed: int = 0, outliers: bool = True):
    """Exactly ``n`` surface points and normals of the hull."""
    rng = np.random.default_rng(seed)
    verts, faces = hull_mesh(occ, grid)
    pts, nrm = sample_surface(verts, faces, int(n * 1.1) + 16, rng)
    if outliers and len(pts) > 32:
        keep = remove_outliers(pts)
        pts, nrm = pts[keep], nrm[keep]
    idx = rng.choice(len(pts), size=n, replace=len(pts) < n)
    return pts[idx], nrm[idx]
