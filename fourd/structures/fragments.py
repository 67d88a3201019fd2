"""``Fragments`` and ``RasterSettings``: the one contract between point rasterizers (torch, GL,
pytorch3d, CUDA) and the differentiable compositor.

A point i with world position X_i and world radius r_i, seen by a camera at depth z_i (OpenCV
camera z), is a disc in the image centred on its projection (u_i, v_i) with pixel radius
``r_px = f_y · r_i / z_i``. Pixel (x, y) — centre (x + ½, y + ½) — is covered when the squared
distance d² to (u_i, v_i) is strictly below r_px². Each pixel keeps its K covering points nearest
the camera, ordered by (z, index); points with z outside (near, far) are not drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def project_splats(points: Tensor, radii: Tensor, camera) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The contract's projection of points [P, 3] with world radii [P] by one camera: pixel centre
    (u [P], v [P]), depth z [P] and pixel radius r_px = f_y · r / z [P]. Every rasterizer, the
    compositor and the GL peeler's read-back use this one definition."""
    uv, z = camera.project(points, distort=False)
    z = z[0]
    return uv[0, :, 0], uv[0, :, 1], z, camera.K[0, 1, 1].to(z) * radii / z


def pixel_d2(u: Tensor, v: Tensor, idx: Tensor, xs: Tensor, ys: Tensor) -> Tensor:
    """Squared distance from the pixel centres (xs + ½, ys + ½) to the splat centres of ``idx``
    (−1 entries give a finite, unused value)."""
    safe = idx.clamp_min(0)
    return (xs.to(u.dtype) + 0.5 - u[safe]) ** 2 + (ys.to(u.dtype) + 0.5 - v[safe]) ** 2


@dataclass
class RasterSettings:
    K: int = 8
    """points kept per pixel (peeled layers). 4K4D: 15 in training, 11 in the viewer."""
    near: float = 0.01
    """points at camera depth ≤ near are not drawn."""
    far: float = 100.0
    """points at camera depth ≥ far are not drawn."""
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """colour composited behind the points."""

    def __post_init__(self):
        if self.K < 1:
            raise ValueError(f"RasterSettings.K must be ≥ 1, got {self.K}")
        if not 0 < self.near < self.far:
            raise ValueError(f"RasterSettings needs 0 < near < far, got near={self.near}, far={self.far}")


@dataclass
class Fragments:
    idx: Tensor  # [H, W, K] int64 point index, −1 where no point
    zbuf: Tensor  # [H, W, K] float32 camera depth of that point, −1 where none
    dists: Tensor  # [H, W, K] float32 squared pixel distance to the point's projected centre, −1 where none

    def __post_init__(self):
        if not (self.idx.shape == self.zbuf.shape == self.dists.shape) or self.idx.dim() != 3:
            raise ValueError(f"Fragments: idx, zbuf, dists must share shape [H, W, K], got "
                             f"{list(self.idx.shape)}, {list(self.zbuf.shape)}, {list(self.dists.shape)}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.idx.shape)

    def front_depth(self) -> Tensor:
        """[H, W] depth of the nearest point, a huge value (1e30) where none: the map the
        appearance's visibility test compares a point's depth against."""
        z = self.zbuf[..., 0]
        return torch.where(self.idx[..., 0] >= 0, z, torch.full_like(z, 1e30))

    def to(self, device) -> "Fragments":
        return Fragments(self.idx.to(device), self.zbuf.to(device), self.dists.to(device))

    def reindex(self, local: Tensor, keep: Tensor) -> "Fragments":
        """The same fragments indexing the subset ``points[keep]``: ``local`` [P] maps an old
        index to its new one (``local[keep] == arange``); depths and distances are unchanged."""
        return Fragments(torch.where(self.idx >= 0, local[self.idx.clamp_min(0)], self.idx), self.zbuf, self.dists)

    @classmethod
    def empty(cls, H: int, W: int, K: int, device=None) -> "Fragments":
        return cls(torch.full((H, W, K), -1, dtype=torch.long, device=device),
                   torch.full((H, W, K), -1.0, device=device), torch.full((H, W, K), -1.0, device=device))
