"""Pure-torch reference point rasterizer: the K nearest covering points per pixel.

Points are binned into screen tiles by the bounding box of their disc, ordered by (depth, index)
inside each tile, and each tile's pixels pick their first K covering candidates. Tiles are
processed in batches sized so memory stays bounded at any resolution. Runs on CPU or CUDA.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fourd.structures.cameras import Cameras
from fourd.structures.fragments import Fragments, RasterSettings, project_splats


def drawable_splats(points: Tensor, radii: Tensor, camera: Cameras, settings: RasterSettings):
    """(u [P], v [P], z [P], r_px [P], drawable [P]) for one camera: :func:`project_splats` and
    the contract's near/far and finiteness rule."""
    u, v, z, r_px = project_splats(points, radii, camera)
    ok = (z > settings.near) & (z < settings.far) & (r_px > 0) & torch.isfinite(u) & torch.isfinite(v) \
        & torch.isfinite(r_px)
    return u, v, z, r_px, ok


def check_inputs(points: Tensor, radii: Tensor, camera: Cameras) -> Tensor:
    if points.dim() != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be [P, 3], got {list(points.shape)}")
    radii = torch.as_tensor(radii, dtype=points.dtype, device=points.device)
    if radii.dim() == 0:
        radii = radii.expand(points.shape[0])
    if radii.shape != (points.shape[0],):
        raise ValueError(f"radii must be [P] or a scalar, got {list(radii.shape)} for {points.shape[0]} points")
    if len(camera) != 1:
        raise ValueError(f"rasterize one camera at a time, got {len(camera)}")
    return radii


@torch.no_grad()
def rasterize_points_torch(points: Tensor, radii: Tensor, camera: Cameras, settings: RasterSettings,
                           tile: int = 16, max_elements: int = 1 << 24) -> Fragments:
    """points [P, 3], radii [P] (world units) → Fragments [H, W, K]."""
    radii = check_inputs(points, radii, camera)
    dev = points.device
    H, W, K = int(camera.H[0]), int(camera.W[0]), settings.K
    frags = Fragments.empty(H, W, K, dev)
    if points.shape[0] == 0:
        return frags
    u, v, z, r, ok = drawable_splats(points.float(), radii.float(), camera.to(dev), settings)
    # pixel x is covered only if |x + ½ − u| < r: x ∈ [ceil(u − r − ½), floor(u + r − ½)]
    x0 = torch.ceil(u - r - 0.5).clamp(0, W - 1)
    x1 = torch.floor(u + r - 0.5).clamp(-1, W - 1)
    y0 = torch.ceil(v - r - 0.5).clamp(0, H - 1)
    y1 = torch.floor(v + r - 0.5).clamp(-1, H - 1)
    ok &= (x1 >= x0) & (y1 >= y0) & (u + r > 0) & (v + r > 0) & (u - r < W) & (v - r < H)
    ids = ok.nonzero()[:, 0]
    if ids.numel() == 0:
        return frags
    # depth order with ties broken by index (a stable sort of index-ordered points)
    order = ids[torch.sort(z[ids], stable=True).indices]
    tx0, tx1 = (x0[order] // tile).long(), (x1[order] // tile).long()
    ty0, ty1 = (y0[order] // tile).long(), (y1[order] // tile).long()
    nx, ny = tx1 - tx0 + 1, ty1 - ty0 + 1
    counts = nx * ny
    rank = torch.repeat_interleave(torch.arange(order.numel(), device=dev), counts)
    within = torch.arange(int(counts.sum()), device=dev) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    tx = tx0[rank] + within % nx[rank]
    ty = ty0[rank] + within // nx[rank]
    tiles_x = (W + tile - 1) // tile
    tile_id = ty * tiles_x + tx
    key = torch.sort(tile_id * order.numel() + rank).values  # by tile, then depth rank
    tile_sorted, rank_sorted = key // order.numel(), key % order.numel()
    uniq, per_tile = torch.unique_consecutive(tile_sorted, return_counts=True)
    starts = torch.cumsum(per_tile, 0) - per_tile
    # batches of tiles with similar candidate counts keep padding (and memory) small
    by_count = torch.argsort(per_tile)
    py, px = torch.meshgrid(torch.arange(tile, device=dev), torch.arange(tile, device=dev), indexing="ij")
    pix = torch.stack([px.reshape(-1), py.reshape(-1)], -1).float()  # [tile², 2] offsets in a tile
    a = 0
    while a < by_count.numel():
        c_max = int(per_tile[by_count[min(by_count.numel() - 1, a)]])
        n = max(1, max_elements // (tile * tile * max(c_max, 1)))
        batch = by_count[a:a + n]
        C = int(per_tile[batch].max())
        a += batch.numel()
        j = torch.arange(C, device=dev)
        valid_c = j[None] < per_tile[batch, None]
        cand_rank = rank_sorted[(starts[batch, None] + j[None]).clamp(max=rank_sorted.numel() - 1)]
        cand = torch.where(valid_c, order[cand_rank], torch.zeros_like(cand_rank))  # [T, C] point ids
        t = uniq[batch]
        ox, oy = (t % tiles_x) * tile, (t // tiles_x) * tile
        cx = ox[:, None].float() + pix[None, :, 0] + 0.5  # [T, tile²] pixel centres
        cy = oy[:, None].float() + pix[None, :, 1] + 0.5
        d2 = (cx[..., None] - u[cand][:, None]) ** 2 + (cy[..., None] - v[cand][:, None]) ** 2  # [T, tile², C]
        cov = (d2 < (r[cand] ** 2)[:, None]) & valid_c[:, None]
        pos = torch.where(cov, j.expand_as(cov), torch.full_like(cov, C, dtype=torch.long))
        kk = min(K, C)
        first = torch.topk(pos, kk, dim=-1, largest=False, sorted=True).values  # [T, tile², kk]
        hit = first < C
        firstc = first.clamp(max=C - 1)
        pid = torch.gather(cand[:, None].expand(-1, tile * tile, -1), 2, firstc)
        dd = torch.gather(d2, 2, firstc)
        xs, ys = (ox[:, None] + pix[None, :, 0].long()), (oy[:, None] + pix[None, :, 1].long())
        inside = (xs < W) & (ys < H)
        sel_t, sel_p = inside.nonzero(as_tuple=True)
        yy, xx = ys[sel_t, sel_p], xs[sel_t, sel_p]
        h = hit[sel_t, sel_p]
        frags.idx[yy, xx, :kk] = torch.where(h, pid[sel_t, sel_p], -1)
        frags.zbuf[yy, xx, :kk] = torch.where(h, z[pid[sel_t, sel_p]], -1.0)
        frags.dists[yy, xx, :kk] = torch.where(h, dd[sel_t, sel_p], -1.0)
    return frags
