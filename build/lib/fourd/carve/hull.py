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
    sample: str = "center"
    """where a voxel meets a mask: 'center' (the pixel under its centre) or 'open3d' (Open3D's
    carve_silhouette rule: any of its 8 corners where the bilinearly interpolated mask is > 0;
    a fatter hull, for comparisons)."""

    def __post_init__(self):
        if self.sample not in ("center", "open3d"):
            raise ValueError(f"HullSettings.sample must be 'center' or 'open3d', got '{self.sample}'")
        if not 0 < self.vote <= 1:
            raise ValueError(f"vote must be in (0, 1], got {self.vote}")


def _test(centers: Tensor, half_diag: float, masks: MaskStack, s: HullSettings, conservative: bool):
    """Per voxel: (maybe_kept, surely_kept) bool [N]. With ``conservative`` a voxel counts as inside a
    camera's mask when any part of its projected footprint may be; 'surely' when all of it is."""
    cams = masks.cameras
    uv, z = cams.project(centers)  # [B, N, 2], [B, N]
    flat, in_img = _pixels(uv, z, masks)
    if conservative:
        f = cams.K[:, 0, 0, None].abs().maximum(cams.K[:, 1, 1, None].abs())
        r = f * half_diag / z.clamp_min(1e-6) + 1.5  # projected footprint radius, with slack for perspective
        maybe = in_img & (masks.dist_out.reshape(-1)[flat] <= r)
        surely = in_img & (masks.dist_in.reshape(-1)[flat] > r)
    else:
        maybe = surely = in_img & masks.inside.reshape(-1)[flat]
    return _count(maybe, in_img, s), _count(surely, in_img, s)


def _pixels(uv: Tensor, z: Tensor, masks: MaskStack) -> tuple[Tensor, Tensor]:
    """Flat index into the [B, H, W] mask stack of the pixel under each uv [B, N, 2], and whether
    that pixel is inside the camera's image (and in front of it)."""
    B, H, W = masks.inside.shape
    cams = masks.cameras
    ij = torch.floor(uv).long()
    in_img = (z > 1e-6) & (ij[..., 0] >= 0) & (ij[..., 1] >= 0) & (ij[..., 0] < cams.W[:, None]) \
        & (ij[..., 1] < cams.H[:, None])
    flat = (torch.arange(B, device=uv.device)[:, None] * H + ij[..., 1].clamp(0, H - 1)) * W + ij[..., 0].clamp(0, W - 1)
    return flat, in_img


def _count(inside: Tensor, in_img: Tensor, s: HullSettings) -> Tensor:
    seen = in_img.sum(0)
    need = torch.ceil(s.vote * seen.float() - 1e-6)
    return (seen >= s.min_views) & (inside.sum(0) >= need)


def _popcount(x: Tensor) -> Tensor:
    """Set bits of non-negative int64 values (SWAR, then a byte sum)."""
    x = x - ((x >> 1) & 0x5555555555555555)
    x = (x & 0x3333333333333333) + ((x >> 2) & 0x3333333333333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0F
    return x.contiguous().view(torch.uint8).reshape(*x.shape, 8).sum(-1)


def _corners_keep(ijk: Tensor, grid: Grid, masks: MaskStack, s: HullSettings) -> Tensor:
    """Open3D's rule: a camera puts a voxel inside when the mask, interpolated bilinearly between
    pixel centres, is positive at any of the voxel's 8 corners. Corners are shared by up to 8
    voxels, so each distinct lattice point is projected once; per point the cameras' answers are
    packed into the bits of one int64, so a voxel ORs 8 words instead of 8 × cameras flags."""
    dev = ijk.device
    B, H, W = masks.inside.shape
    if B > 62:
        raise ValueError("the 'open3d' rule packs cameras into 62 bits; use sample='center' for more cameras")
    off = torch.stack(torch.meshgrid(*[torch.arange(2, device=dev)] * 3, indexing="ij"), -1).reshape(-1, 3)
    corners = (ijk[:, None] + off[None]).reshape(-1, 3)
    dims = torch.tensor(grid.shape, device=dev) + 1
    lin = (corners[:, 0] * dims[1] + corners[:, 1]) * dims[2] + corners[:, 2]
    uniq, inv = torch.unique(lin, return_inverse=True)
    lat = torch.stack([uniq // (dims[1] * dims[2]), (uniq // dims[2]) % dims[1], uniq % dims[2]], 1)
    # bilinear interpolation is positive iff one of the 2×2 pixels around the point is (away from
    # exact pixel centres, a set of measure zero): precompute that 2×2 "any" per camera once
    m = masks.inside
    any4 = m.clone()
    any4[:, :, :-1] |= m[:, :, 1:]
    any4[:, :-1, :] |= any4[:, 1:, :].clone()
    bit = (1 << torch.arange(B, device=dev, dtype=torch.long))[:, None]
    in_bits = torch.empty(uniq.numel(), dtype=torch.long, device=dev)
    seen_bits = torch.empty_like(in_bits)
    for a in range(0, uniq.numel(), s.chunk):
        pts = grid.lo.to(dev) + lat[a:a + s.chunk].float() * grid.size
        uv, z = masks.cameras.project(pts)
        q = uv - 0.5  # pixel centres at integers, as bilinear interpolation sees them
        ok = (z > 1e-6) & (q[..., 0] >= 0) & (q[..., 1] >= 0) & (q[..., 0] <= masks.cameras.W[:, None] - 1) \
            & (q[..., 1] <= masks.cameras.H[:, None] - 1)
        i0 = q[..., 0].floor().long().clamp(0, W - 1)
        j0 = q[..., 1].floor().long().clamp(0, H - 1)
        flat = (torch.arange(B, device=dev)[:, None] * H + j0) * W + i0
        inside = ok & any4.reshape(-1)[flat]
        in_bits[a:a + s.chunk] = (inside.long() * bit).sum(0)
        seen_bits[a:a + s.chunk] = (ok.long() * bit).sum(0)
    inv = inv.reshape(-1, 8)
    vin, vseen = in_bits[inv[:, 0]], seen_bits[inv[:, 0]]
    for k in range(1, 8):
        vin = vin | in_bits[inv[:, k]]
        vseen = vseen | seen_bits[inv[:, k]]
    seen, inside = _popcount(vseen), _popcount(vin)
    need = torch.ceil(s.vote * seen.float() - 1e-6)
    return (seen >= s.min_views) & (inside >= need)


def _chunked(ijk: Tensor, grid: Grid, masks: MaskStack, s: HullSettings, conservative: bool):
    if s.sample == "open3d" and not conservative:
        keep = torch.cat([_corners_keep(ijk[a:a + s.chunk], grid, masks, s) for a in range(0, ijk.shape[0], s.chunk)]
                         ) if ijk.shape[0] else torch.zeros(0, dtype=torch.bool, device=ijk.device)
        return keep, keep
    maybe, surely = [], []
    hd = grid.size * math.sqrt(3) / 2
    if s.sample == "open3d":  # a coarse footprint must also cover its children's corners (+1 px of blur)
        hd *= 1.5
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


def levels_for(grid: Grid, coarse_resolution: int = 32) -> int:
    """Number of halvings from a grid with ~``coarse_resolution`` voxels along its longest side."""
    return max(1, int(math.floor(math.log2(max(grid.shape) / max(coarse_resolution, 2)))))


def carve_coarse_to_fine(grid: Grid, masks: MaskStack, s: HullSettings = HullSettings(), factor: int = 2,
                         levels: int | None = None) -> Tensor:
    """Same result as :func:`carve_dense` on ``grid``, testing coarse voxels first.

    The coarse grid has voxels ``factor**levels`` times larger; coarse voxels wholly inside the
    hull keep all their children untested, wholly outside ones are dropped, the rest are split.
    """
    dev = masks.inside.device
    levels = levels_for(grid) if levels is None else levels
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
