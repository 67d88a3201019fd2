"""Visual hull by voting space carving, in pure torch (CPU or CUDA).

A voxel is kept when it is seen by at least ``min_views`` cameras and at least ``vote`` of the
cameras that see it put it inside their mask; voxels that no camera sees (outside every frustum)
are dropped. :func:`carve_dense` tests every voxel centre (the reference);
:func:`carve_coarse_to_fine` tests coarse voxels conservatively (their whole projected footprint)
and refines only those on the boundary — same answer, far fewer projections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from fourd.structures.cameras import Cameras


@dataclass
class Grid:
    """An axis-aligned voxel grid: ``shape`` voxels of edge ``size`` starting at corner ``lo``."""

    lo: Tensor  # [3]
    size: float
    shape: tuple[int, int, int]

    @classmethod
    def from_bounds(cls, lo, hi, resolution: int) -> "Grid":
        lo, hi = torch.as_tensor(lo, dtype=torch.float32), torch.as_tensor(hi, dtype=torch.float32)
        size = float((hi - lo).max()) / resolution
        shape = tuple(max(1, int(math.ceil(float(e) / size - 1e-6))) for e in (hi - lo))
        return cls(lo, size, shape)

    @property
    def hi(self) -> Tensor:
        return self.lo + self.size * torch.tensor(self.shape, dtype=torch.float32)

    def centers(self, ijk: Tensor) -> Tensor:  # [N, 3] int → [N, 3] world
        return self.lo.to(ijk.device) + (ijk.float() + 0.5) * self.size

    def all_indices(self, device=None) -> Tensor:
        axes = [torch.arange(n, device=device) for n in self.shape]
        return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


@dataclass
class MaskStack:
    """Masks of one frame for every camera, padded to a common size, plus distance maps."""

    cameras: Cameras
    inside: Tensor  # [B, H, W] bool
    dist_out: Tensor  # [B, H, W] pixels from each pixel to the nearest mask pixel (0 inside)
    dist_in: Tensor  # [B, H, W] pixels from each pixel to the nearest background pixel (0 outside)

    @classmethod
    def build(cls, cameras: Cameras, masks: list[np.ndarray], device=None) -> "MaskStack":
        import cv2

        H, W = max(m.shape[0] for m in masks), max(m.shape[1] for m in masks)
        inside = np.zeros((len(masks), H, W), bool)
        d_out = np.full((len(masks), H, W), 1e6, np.float32)
        d_in = np.zeros((len(masks), H, W), np.float32)
        for i, m in enumerate(masks):
            h, w = m.shape
            inside[i, :h, :w] = m
            m8 = m.astype(np.uint8)
            d_out[i, :h, :w] = cv2.distanceTransform(1 - m8, cv2.DIST_L2, 3) if m.any() else 1e6
            # the image border counts as background: a mask touching it is not "surely inside" beyond it
            padded = np.pad(m8, 1)
            d_in[i, :h, :w] = cv2.distanceTransform(padded, cv2.DIST_L2, 3)[1:-1, 1:-1]
        t = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
        return cls(cameras.to(device), t(inside), t(d_out), t(d_in))


@dataclass
class HullSettings:
    vote: float = 0.9
    """fraction of the cameras seeing a voxel that must put it inside their mask."""
    min_views: int = 3
    """a voxel seen by fewer cameras is dropped."""
    chunk: int = 1 << 18
    """voxels projected at once (bounds memory: chunk × cameras × a few floats)."""


def _test(centers: Tensor, half_diag: float, masks: MaskStack, s: HullSettings, conservative: bool):
    """Per voxel: (maybe_kept, surely_kept) bool [N]. With ``conservative`` a voxel counts as inside a
    camera's mask when any part of its projected footprint may be; 'surely' when all of it is."""
    cams = masks.cameras
    B, H, W = masks.inside.shape
    uv, z = cams.project(centers)  # [B, N, 2], [B, N]
    Hc, Wc = cams.H[:, None], cams.W[:, None]
    ij = torch.floor(uv).long()
    in_img = (z > 1e-6) & (ij[..., 0] >= 0) & (ij[..., 1] >= 0) & (ij[..., 0] < Wc) & (ij[..., 1] < Hc)
    flat = (torch.arange(B, device=uv.device)[:, None] * H + ij[..., 1].clamp(0, H - 1)) * W + ij[..., 0].clamp(0, W - 1)
    if conservative:
        f = cams.K[:, 0, 0, None].abs().maximum(cams.K[:, 1, 1, None].abs())
        r = f * half_diag / z.clamp_min(1e-6) + 1.5  # projected footprint radius, with slack for perspective
        maybe = in_img & (masks.dist_out.reshape(-1)[flat] <= r)
        surely = in_img & (masks.dist_in.reshape(-1)[flat] > r)
    else:
        maybe = surely = in_img & masks.inside.reshape(-1)[flat]
    seen = in_img.sum(0)
    ok = seen >= s.min_views
    need = torch.ceil(s.vote * seen.float() - 1e-6)
    return ok & (maybe.sum(0) >= need), ok & (surely.sum(0) >= need)


def _chunked(ijk: Tensor, grid: Grid, masks: MaskStack, s: HullSettings, conservative: bool):
    maybe, surely = [], []
    hd = grid.size * math.sqrt(3) / 2
    for a in range(0, ijk.shape[0], s.chunk):
        m, su = _test(grid.centers(ijk[a:a + s.chunk]), hd, masks, s, conservative)
        maybe.append(m)
        surely.append(su)
    if not maybe:
        e = torch.zeros(0, dtype=torch.bool, device=ijk.device)
        return e, e
    return torch.cat(maybe), torch.cat(surely)


def carve_dense(grid: Grid, masks: MaskStack, s: HullSettings = HullSettings()) -> Tensor:
    """Reference: test every voxel centre. Returns occupancy [X, Y, Z] bool."""
    ijk = grid.all_indices(masks.inside.device)
    keep, _ = _chunked(ijk, grid, masks, s, conservative=False)
    return keep.reshape(grid.shape)


def carve_coarse_to_fine(grid: Grid, masks: MaskStack, s: HullSettings = HullSettings(), factor: int = 4,
                         levels: int = 1) -> Tensor:
    """Same result as :func:`carve_dense` on ``grid``, testing coarse voxels first.

    The coarse grid has voxels ``factor**levels`` times larger; coarse voxels wholly inside the
    hull keep all their children untested, wholly outside ones are dropped, the rest are split.
    """
    dev = masks.inside.device
    step = factor ** levels
    shape = tuple(-(-n // step) for n in grid.shape)
    coarse = Grid(grid.lo, grid.size * step, shape)
    cand = coarse.all_indices(dev)
    sure_blocks: list[tuple[Tensor, int]] = []
    g = coarse
    for lvl in range(levels, 0, -1):
        maybe, surely = _chunked(cand, g, masks, s, conservative=True)
        sure_blocks.append((cand[surely], factor ** lvl))
        cand = cand[maybe & ~surely]
        # split into children
        off = torch.stack(torch.meshgrid(*[torch.arange(factor, device=dev)] * 3, indexing="ij"), -1).reshape(-1, 3)
        cand = (cand[:, None] * factor + off[None]).reshape(-1, 3)
        g = Grid(grid.lo, g.size / factor, tuple(n * factor for n in g.shape))
        inb = (cand < torch.tensor(grid.shape, device=dev)).all(1)
        cand = cand[inb]
    keep, _ = _chunked(cand, grid, masks, s, conservative=False)
    occ = torch.zeros(grid.shape, dtype=torch.bool, device=dev)
    occ[cand[keep, 0], cand[keep, 1], cand[keep, 2]] = True
    for blocks, k in sure_blocks:
        if blocks.numel() == 0:
            continue
        off = torch.stack(torch.meshgrid(*[torch.arange(k, device=dev)] * 3, indexing="ij"), -1).reshape(-1, 3)
        fine = (blocks[:, None] * k + off[None]).reshape(-1, 3)
        fine = fine[(fine < torch.tensor(grid.shape, device=dev)).all(1)]
        occ[fine[:, 0], fine[:, 1], fine[:, 2]] = True
    return occ
