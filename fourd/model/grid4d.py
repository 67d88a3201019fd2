"""4D feature grid: six planes (xy, xz, yz, xt, yt, zt) at several resolutions, sampled
bilinearly with ``grid_sample``. Planes of a level are combined by sum (4K4D) or product
(K-Planes); levels are concatenated, so the feature has ``levels × features`` channels."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PLANES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))  # axes: x, y, z, t


@dataclass
class Grid4DConfig:
    levels: int = 4
    """resolution levels (4K4D: 4)."""
    features: int = 8
    """channels per level (4K4D: 8, so 32 in all)."""
    spatial_min: int = 64
    """spatial resolution of the coarsest level (4K4D: 64)."""
    spatial_max: int = 512
    """spatial resolution of the finest level (4K4D: 512)."""
    time_max: int = 64
    """temporal resolution cap (never more than the number of frames)."""
    combine: str = "sum"
    """how a level's six plane features combine: sum (4K4D) or product (K-Planes)."""
    axes: str = "principal"
    """the grid's axes: principal (the carved points' principal axes when the world's would leave
    most of the box empty — a z-up or turned capture — else the world's, exactly; so the box fits
    the subject and its path whatever the capture's axes) or world (the capture's x, y, z)."""


def level_sizes(cfg: Grid4DConfig, n_frames: int) -> list[tuple[int, int]]:
    """(spatial, temporal) resolution of each level: spatial geometric from spatial_min to spatial_max,
    temporal capped by time_max and the number of frames."""
    L = cfg.levels
    out = []
    for level in range(L):
        f = level / max(L - 1, 1)
        res = int(round(math.exp(math.log(cfg.spatial_min) * (1 - f) + math.log(cfg.spatial_max) * f)))
        out.append((res, max(2, min(n_frames, cfg.time_max, res))))
    return out


def principal_axes(points: Tensor, max_points: int = 200_000) -> Tensor:
    """[3, 3] rotation whose rows are the principal axes of ``points`` [N, 3] (largest spread first;
    right-handed; each row's largest component positive, so the same cloud gives the same axes)."""
    p = points.detach().double().reshape(-1, 3)
    if p.shape[0] > max_points:
        p = p[torch.linspace(0, p.shape[0] - 1, max_points, device=p.device).long()]
    p = p - p.mean(0)
    _, vecs = torch.linalg.eigh(p.T @ p / max(p.shape[0], 1))
    axes = vecs.flip(1).T.cpu()  # rows, by decreasing spread
    axes = axes * torch.where(axes.gather(1, axes.abs().argmax(1, keepdim=True)) < 0, -1.0, 1.0)
    if torch.det(axes) < 0:
        axes[2] = -axes[2]
    return axes.float()


class Grid4D(nn.Module):
    def __init__(self, cfg: Grid4DConfig, lo: Tensor, hi: Tensor, n_frames: int, axes: Tensor | None = None):
        """``lo``, ``hi``: the volume's corners in the grid's frame — world coordinates turned by
        ``axes`` ([3, 3] rows, world → grid; default the identity)."""
        super().__init__()
        if cfg.combine not in ("sum", "product"):
            raise ValueError(f"Grid4DConfig.combine must be 'sum' or 'product', got '{cfg.combine}'")
        self.cfg = cfg
        self.register_buffer("lo", torch.as_tensor(lo, dtype=torch.float32).reshape(3))
        self.register_buffer("hi", torch.as_tensor(hi, dtype=torch.float32).reshape(3))
        self.register_buffer("axes", torch.eye(3) if axes is None else torch.as_tensor(axes, dtype=torch.float32))
        self.n_frames = n_frames
        self.planes = nn.ParameterList()
        for res, t_res in level_sizes(cfg, n_frames):
            for a, b in PLANES:
                h = t_res if b == 3 else res  # rows follow the second axis
                if cfg.combine == "sum":
                    init = torch.randn(1, cfg.features, h, res) * 0.1
                else:
                    init = torch.empty(1, cfg.features, h, res).uniform_(0.1, 0.5) if b != 3 else \
                        torch.ones(1, cfg.features, h, res)
                self.planes.append(nn.Parameter(init))

    @property
    def out_dim(self) -> int:
        return self.cfg.levels * self.cfg.features

    def normalize(self, xyz: Tensor, t: Tensor | float) -> Tensor:
        """[N, 4] coordinates in [−1, 1]: xyz by the volume, t by the frame range."""
        p = 2 * (xyz @ self.axes.T - self.lo) / (self.hi - self.lo) - 1
        t = torch.as_tensor(t, dtype=xyz.dtype, device=xyz.device).expand(xyz.shape[0])
        tn = 2 * t / max(self.n_frames - 1, 1) - 1
        return torch.cat([p, tn[:, None]], 1)

    def forward(self, xyz: Tensor, t: Tensor | float) -> Tensor:
        """xyz [N, 3] world, t frame slot (scalar or [N]) → features [N, levels × features]."""
        q = self.normalize(xyz, t)
        out = []
        for level in range(self.cfg.levels):
            acc = None
            for k, (a, b) in enumerate(PLANES):
                plane = self.planes[level * 6 + k]
                g = torch.stack([q[:, a], q[:, b]], -1)[None, None]  # [1, 1, N, 2]: x = width axis
                f = F.grid_sample(plane, g, mode="bilinear", padding_mode="border", align_corners=True)[0, :, 0].t()
                acc = f if acc is None else (acc + f if self.cfg.combine == "sum" else acc * f)
            out.append(acc)
        return torch.cat(out, 1)

    def tv_loss(self) -> Tensor:
        """Total variation (squared differences between neighbouring texels) over all planes."""
        tv = 0.0
        for p in self.planes:
            tv = tv + (p[..., 1:, :] - p[..., :-1, :]).pow(2).mean() + (p[..., :, 1:] - p[..., :, :-1]).pow(2).mean()
        return tv / len(self.planes)

    def time_smoothness(self) -> Tensor:
        """Second differences along time on the xt, yt, zt planes (smooth motion)."""
        s = 0.0
        n = 0
        for level in range(self.cfg.levels):
            for k in (3, 4, 5):
                p = self.planes[level * 6 + k]
                if p.shape[2] >= 3:
                    s = s + (p[..., 2:, :] - 2 * p[..., 1:-1, :] + p[..., :-2, :]).pow(2).mean()
                    n += 1
        return s / max(n, 1)
