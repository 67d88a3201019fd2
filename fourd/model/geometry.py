"""Geometry head: point feature → (radius, density). Radius ranges are relative to the point
spacing of the carved sequence, so the same settings work at any scene scale."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class GeometryHead(nn.Module):
    def __init__(self, in_dim: int, hidden: int, r_min: float, r_max: float, r_init: float,
                 density_init: float = 0.9, density_max: float = 1.0):
        super().__init__()
        if not 0 < r_min < r_init < r_max:
            raise ValueError(f"need 0 < r_min < r_init < r_max, got {r_min}, {r_init}, {r_max}")
        if not 0 < density_init < density_max:
            raise ValueError(f"need 0 < density_init < density_max, got {density_init}, {density_max}")
        self.r_min, self.r_max, self.density_max = r_min, r_max, float(density_max)
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 2))
        with torch.no_grad():  # start every point at r_init and density_init
            last = self.mlp[-1]
            last.weight.mul_(0.01)
            f = (r_init - r_min) / (r_max - r_min)
            g = density_init / density_max
            last.bias.copy_(torch.tensor([math.log(f / (1 - f)), math.log(g / (1 - g))]))

    def forward(self, feat: Tensor) -> tuple[Tensor, Tensor]:
        """feat [N, D] → radius [N] (world units), density [N] in (0, density_max)."""
        o = self.mlp(feat)
        radius = self.r_min + (self.r_max - self.r_min) * torch.sigmoid(o[:, 0])
        return radius, self.density_max * torch.sigmoid(o[:, 1])
