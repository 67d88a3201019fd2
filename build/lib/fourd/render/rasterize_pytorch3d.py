"""Optional backend: pytorch3d's ``rasterize_points``, converted to fourd's Fragments.

pytorch3d cannot be installed on this machine kind (no wheel for Linux/Python 3.11 on PyPI), so
this path only runs where it is importable; the message says how to get it otherwise.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fourd.render.rasterize_torch import drawable_splats
from fourd.structures.cameras import Cameras
from fourd.structures.fragments import Fragments, RasterSettings


def rasterize_points_pytorch3d(points: Tensor, radii: Tensor, camera: Cameras, settings: RasterSettings) -> Fragments:
    try:
        from pytorch3d.renderer.points.rasterize_points import rasterize_points
        from pytorch3d.structures import Pointclouds
    except ImportError:
        raise ImportError("the pytorch3d backend needs pytorch3d (see https://github.com/facebookresearch/pytorch3d "
                          "INSTALL.md); use backend='gl' or 'torch' instead") from None
    H, W = int(camera.H[0]), int(camera.W[0])
    u, v, z, r, ok = drawable_splats(points.float(), radii.float(), camera.to(points.device), settings)
    # pytorch3d screen NDC: +x left, +y up, the shorter side spans [-1, 1], pixel centres at half steps
    S = min(H, W)
    x_ndc = -(u - W / 2) * 2 / S
    y_ndc = -(v - H / 2) * 2 / S
    z_p3d = torch.where(ok, z, torch.full_like(z, -1.0))  # negative z is culled by pytorch3d
    pc = Pointclouds(points=[torch.stack([x_ndc, y_ndc, z_p3d], -1)])
    idx, zbuf, dists = rasterize_points(pc, image_size=(H, W), radius=(r * 2 / S)[None], points_per_pixel=settings.K)
    idx, zbuf, dists = idx[0].long(), zbuf[0], dists[0]
    empty = idx < 0
    d2 = torch.where(empty, torch.full_like(dists, -1.0), dists * (S / 2) ** 2)
    return Fragments(idx, torch.where(empty, torch.full_like(zbuf, -1.0), zbuf), d2)
