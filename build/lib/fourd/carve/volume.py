"""Find the working volume from cameras and masks alone — no bounding box pasted by hand.

1. The subject centre is the point nearest (least squares) to the rays through every camera's
   mask centroid.
2. A generous box around it (the largest mask extent back-projected to that depth) is carved
   coarsely; the kept voxels' bounds plus a margin are the volume. If the kept voxels touch the
   box, the box grows and the carve repeats.
"""

from __future__ import annotations

import numpy as np
import torch

from fourd.carve.hull import Grid, HullSettings, MaskStack, carve_coarse_to_fine
from fourd.errors import DataError


def rays_center(cams, masks: list[np.ndarray]) -> np.ndarray:
    """Least-squares point closest to the rays through each mask's centroid."""
    A, b = np.zeros((3, 3)), np.zeros(3)
    used = 0
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m)
        if len(xs) == 0:
            continue
        uv = torch.tensor([[[xs.mean() + 0.5, ys.mean() + 0.5]]], dtype=cams.K.dtype)
        c = cams[i]
        o = c.centers[0].double().numpy()
        p = c.unproject(uv, torch.ones(1, 1, dtype=cams.K.dtype))[0, 0].double().numpy()
        d = (p - o) / np.linalg.norm(p - o)
        P = np.eye(3) - np.outer(d, d)
        A += P
        b += P @ o
        used += 1
    if used < 2:
        raise DataError("fewer than two cameras see any foreground in their masks", None,
                        "check the masks (all empty?) or pass --bounds")
    return np.linalg.lstsq(A, b, rcond=None)[0]


def initial_box(cams, masks: list[np.ndarray], center: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    half = 0.0
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m)
        if len(xs) == 0:
            continue
        z = float(cams[i].world_to_camera(torch.tensor(center[None], dtype=torch.float32))[0, 0, 2])
        f = float(min(cams.K[i, 0, 0], cams.K[i, 1, 1]))
        ext = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1
        half = max(half, 0.5 * ext * abs(z) / f)
    half *= 1.5
    return center - half, center + half


def find_bounds(frames_masks: list[tuple], resolution: int = 48, settings: HullSettings = HullSettings(),
                margin: float = 0.05, device=None) -> tuple[np.ndarray, np.ndarray]:
    """Union over the given frames of the carved hull's bounds, plus ``margin`` (fraction of its size).

    ``frames_masks`` is a list of (cameras, masks) pairs, one per sampled frame."""
    lo_all, hi_all = np.full(3, np.inf), np.full(3, -np.inf)
    for cams, masks in frames_masks:
        center = rays_center(cams, masks)
        lo, hi = initial_box(cams, masks, center)
        stack = MaskStack.build(cams, masks, device)
        for _ in range(4):
            grid = Grid.from_bounds(lo, hi, resolution)
            occ = carve_coarse_to_fine(grid, stack, settings, factor=2, levels=1)
            if not occ.any():
                raise DataError("the visual hull is empty: no voxel is inside enough masks", None,
                                "lower --vote (e.g. 0.7), check that masks and cameras belong together, "
                                "or pass --bounds")
            idx = occ.nonzero()
            touches = (idx.min(0).values == 0).any() or (idx.max(0).values == torch.tensor(grid.shape) - 1).any()
            klo = grid.lo.numpy() + idx.min(0).values.numpy() * grid.size
            khi = grid.lo.numpy() + (idx.max(0).values.numpy() + 1) * grid.size
            if not touches:
                break
            c, h = (lo + hi) / 2, (hi - lo)  # grow the box and carve again
            lo, hi = c - h, c + h
        lo_all, hi_all = np.minimum(lo_all, klo), np.maximum(hi_all, khi)
    pad = margin * (hi_all - lo_all).max()
    return lo_all - pad, hi_all + pad
