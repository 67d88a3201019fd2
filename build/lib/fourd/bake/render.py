"""Render a baked frame from any camera: depth-peeled points (GL or torch) composited in torch.
The colour of a point seen along direction d is rgb + Σ_k Y_k(d)·sh_k (degree-1 residual), or,
for frames with view tables, the model's own blend of the nearest sources (exact)."""

from __future__ import annotations

import torch

from fourd.bake.format import BakedFrame
from fourd.model.sh import sh_basis
from fourd.render.compositor import composite
from fourd.render.rasterize import rasterize_points
from fourd.structures.cameras import Cameras
from fourd.structures.fragments import RasterSettings


def baked_colors(f: BakedFrame, eye: torch.Tensor) -> torch.Tensor:
    if f.views is not None:
        from fourd.model.appearance import blend_colors

        v = f.views
        sel = v.nearest(eye)
        d_tgt = torch.nn.functional.normalize(f.xyz - eye.reshape(1, 3), dim=-1)
        d_src = torch.nn.functional.normalize(f.xyz[None] - v.centers[sel][:, None], dim=-1)
        return blend_colors(v.rgb[sel], v.visible[sel], v.logit[sel], d_src, d_tgt, v.fallback, v.sh, v.prior,
                            v.sh_scale)
    if f.sh is None:
        return f.rgb
    Y = sh_basis(torch.nn.functional.normalize(f.xyz - eye, dim=-1), 1)[:, 1:]  # [N, 3]
    return (f.rgb + torch.einsum("nk,nkc->nc", Y, f.sh)).clamp(0, 1)  # as the shader


@torch.no_grad()
def render_baked(f: BakedFrame, camera: Cameras, K: int = 8, near: float = 0.01, far: float = 100.0,
                 background=(0.0, 0.0, 0.0), backend: str = "auto") -> torch.Tensor:
    """[H, W, 3] float image of one baked frame."""
    s = RasterSettings(K=K, near=near, far=far)
    frags = rasterize_points(f.xyz, f.radius, camera, s, backend=backend)
    cols = baked_colors(f, camera.centers[0])
    out = composite(frags, f.xyz, f.radius, f.density, cols, camera, torch.tensor(background, dtype=torch.float32, device=f.xyz.device))
    return out.rgb.clamp(0, 1)
