"""Differentiable front-to-back compositing of the K peeled points per pixel.

α_k = density · (1 − d²/r_px²) clamped to [0, 1], with d² recomputed here from the point
positions (so gradients reach xyz) and r_px = f_y · radius / z (so they reach the radius);
C = Σ_k c_k α_k Π_{j<k} (1 − α_j) + background · Π_k (1 − α_k). The choice of which points
(the fragment indices) carries no gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fourd.structures.cameras import Cameras
from fourd.structures.fragments import Fragments, pixel_d2, project_splats


@dataclass
class Composite:
    rgb: Tensor  # [H, W, C] colour (or features) over the background
    alpha: Tensor  # [H, W] accumulated opacity
    depth: Tensor  # [H, W] Σ w_k z_k (expected depth, not normalized by alpha)
    weights: Tensor  # [H, W, K] w_k = α_k Π_{j<k} (1 − α_j)


def composite(fragments: Fragments, points: Tensor, radii: Tensor, densities: Tensor, colors: Tensor,
              camera: Cameras, background: Tensor | tuple | None = None) -> Composite:
    """points [P, 3], radii [P], densities [P], colors [P, C] (any C) → :class:`Composite`."""
    P = points.shape[0]
    if points.dim() != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be [P, 3], got {list(points.shape)}")
    radii = radii.expand(P) if radii.dim() == 0 else radii
    densities = densities.expand(P) if densities.dim() == 0 else densities
    if radii.shape != (P,) or densities.shape != (P,) or colors.dim() != 2 or colors.shape[0] != P:
        raise ValueError(f"radii [P], densities [P], colors [P, C] expected for P={P}, got "
                         f"{list(radii.shape)}, {list(densities.shape)}, {list(colors.shape)}")
    H, W, K = fragments.shape
    u, v, z, r_px = project_splats(points, radii, camera.to(points.device, points.dtype))
    # work only on pixels some point covers (the subject is usually a fraction of the frame)
    covered = fragments.idx[..., 0] >= 0
    ys, xs = covered.nonzero(as_tuple=True)
    idx = fragments.idx[ys, xs]  # [M, K]
    valid = idx >= 0
    safe = idx.clamp_min(0)
    d2 = pixel_d2(u, v, idx, xs[:, None], ys[:, None])
    alpha = (densities[safe] * (1 - d2 / r_px[safe] ** 2)).clamp(0, 1) * valid
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha], -1), -1)  # [M, K+1]
    w = alpha * trans[:, :-1]
    rest = trans[:, -1]
    rgb_m = torch.einsum("mk,mkc->mc", w, colors[safe])
    C = colors.shape[1]
    bg = None if background is None else torch.as_tensor(background, dtype=colors.dtype, device=colors.device)
    if bg is not None:
        rgb_m = rgb_m + rest[:, None] * bg
    base = (bg if bg is not None else colors.new_zeros(C)).expand(H, W, C)
    rgb = base.index_put((ys, xs), rgb_m)
    zero = colors.new_zeros(H, W)
    alpha_img = zero.index_put((ys, xs), 1 - rest)
    depth = zero.index_put((ys, xs), (w * z[safe]).sum(-1))
    weights = colors.new_zeros(H, W, K).index_put((ys, xs), w)
    return Composite(rgb, alpha_img, depth, weights)
