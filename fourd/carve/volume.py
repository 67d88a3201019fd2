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
from fourd.structures.cameras import Cameras, closest_point_to_rays


def centroid_rays(cams, masks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Origins [N, 3], unit directions [N, 3] of the rays through each non-empty mask's centroid, and
    the cameras they belong to."""
    O, D, used = [], [], []
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m)
        if len(xs) == 0:
            continue
        uv = torch.tensor([[[xs.mean() + 0.5, ys.mean() + 0.5]]], dtype=cams.K.dtype)
        c = cams[i]
        o = c.centers[0].double().numpy()
        p = c.unproject(uv, torch.ones(1, 1, dtype=cams.K.dtype))[0, 0].double().numpy()
        O.append(o)
        D.append((p - o) / np.linalg.norm(p - o))
        used.append(i)
    return np.array(O).reshape(-1, 3), np.array(D).reshape(-1, 3), used


def _meeting(O: np.ndarray, D: np.ndarray) -> tuple[float, float]:
    """For rays o + t·d: (the share of them the point they meet lies ahead on, their RMS distance
    from that point relative to its median distance from their origins)."""
    p = closest_point_to_rays(O, D)
    ahead = float((((p - O) * D).sum(1) > 0).mean())
    off = np.linalg.norm(np.cross(p - O, D), axis=1)
    return ahead, float(np.sqrt((off ** 2).mean()) / max(np.median(np.linalg.norm(p - O, axis=1)), 1e-12))


# calibrations that are not world→camera in OpenCV axes, as exporters write them, and how to read them
_READINGS = {
    "OpenGL/Blender camera axes (y up, z backward)":
        (lambda R, T, F: (F @ R, F @ T), "negate the second and third rows of every R and T"),
    "camera→world matrices (the camera's pose, not the world→camera transform)":
        (lambda R, T, F: (R.T, -R.T @ T), "write R = Rᵀ and T = −Rᵀ·T of each camera (invert the pose)"),
    "camera→world matrices in OpenGL/Blender axes (a NeRF transforms.json pose)":
        (lambda R, T, F: (F @ R.T, -F @ R.T @ T), "invert each pose and negate the second and third rows "
                                                 "of the result (R = F·Rᵀ, T = −F·Rᵀ·T, F = diag(1, −1, −1))"),
}


def _meets_well(ahead: float, spread: float) -> bool:
    return ahead >= 0.9 and spread < 0.25


def calibration_reading(cams, masks: list[np.ndarray], O: np.ndarray, D: np.ndarray) -> tuple[str, str] | None:
    """When the rays through the cameras' mask centres do not meet in front of them as a rig's do
    (a point ahead of nine cameras in ten, the rays within a quarter of the cameras' distance of
    it) and they do under another convention exporters write, (what the calibration looks like,
    how to fix it); a general hint when the rays meet behind most cameras; else None. ``O``, ``D``:
    the rays as given (:func:`centroid_rays`)."""
    ahead, spread = _meeting(O, D)
    if _meets_well(ahead, spread):
        return None
    F = np.diag([1.0, -1.0, -1.0])
    R0, T0 = cams.R.double().cpu().numpy(), cams.T.double().cpu().numpy()
    for what, (read, fix) in _READINGS.items():
        RT = [read(R, T, F) for R, T in zip(R0, T0)]
        other = Cameras(cams.K, np.stack([r for r, _ in RT]), np.stack([t for _, t in RT]), cams.H, cams.W,
                        cams.D, list(cams.names))
        ahead_o, spread_o = _meeting(*centroid_rays(other, masks)[:2])
        if _meets_well(ahead_o, spread_o) and (ahead < 0.5 or spread_o < 0.5 * spread):
            return what, fix
    if ahead < 0.5:
        return ("not world→camera in OpenCV axes (x right, y down, z forward)",
                "check the calibration's convention: fourd reads pixel = K·(R·X + T)")
    return None


def check_convention(cams, masks: list[np.ndarray], O: np.ndarray, D: np.ndarray, where=None) -> None:
    """Refuse a calibration in another convention (:func:`calibration_reading`), naming ``where``
    (the calibration file) and the conversion."""
    reading = calibration_reading(cams, masks, O, D)
    if reading is not None:
        raise DataError(f"the cameras' views of the subject do not meet in front of them: the calibration "
                        f"looks like {reading[0]}, and fourd reads world→camera R, T in OpenCV axes", where,
                        reading[1])


def rays_center(cams, masks: list[np.ndarray], where=None) -> np.ndarray:
    """Least-squares point closest to the rays through each mask's centroid (``where``: the
    calibration file an error names)."""
    O, D, used = centroid_rays(cams, masks)
    if len(used) < 2:
        raise DataError("fewer than two cameras see any foreground in their masks", None,
                        "check the masks (all empty?) or pass --bounds")
    check_convention(cams, masks, O, D, where)
    return closest_point_to_rays(O, D)


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
                margin: float = 0.05, device=None, where=None) -> tuple[np.ndarray, np.ndarray]:
    """Union over the given frames of the carved hull's bounds, plus ``margin`` (fraction of its size).

    ``frames_masks`` is a list of (cameras, masks) pairs, one per sampled frame."""
    lo_all, hi_all = np.full(3, np.inf), np.full(3, -np.inf)
    for cams, masks in frames_masks:
        center = rays_center(cams, masks, where)
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
