"""A differentiable triangle rasterizer in pure torch (SoftRas silhouette + DIB-R interpolation).

For one camera it returns, per pixel:

* ``alpha`` — SoftRas's soft silhouette ``1 − Π_j (1 − D_j)`` with
  ``D_j = sigmoid(δ_j · d_j² / σ)``, ``d_j`` the distance from the pixel centre to triangle j
  in pixels, ``δ_j = +1`` inside and −1 outside. As ``σ → 0`` it becomes exact coverage;
  ``σ = 0`` gives that hard coverage directly.
* ``face`` / ``bary`` — the nearest covering triangle and the pixel's perspective-correct
  barycentric coordinates in it (DIB-R's foreground interpolation), differentiable in the
  vertex positions, so colours interpolated with them pass gradient to geometry and texture.
* ``depth`` — camera z of the visible surface.

Work is binned by each triangle's screen bounding box (grown by the distance at which
``D_j`` falls under ``eps``): only (pixel, triangle) pairs inside those boxes are evaluated,
in chunks of at most ``max_pairs``. The visible triangle can instead come from OpenGL
(``visibility=GLFaceIds``), which is then refined by the same torch barycentrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from fourd.structures.cameras import Cameras


@dataclass
class MeshRasterSettings:
    sigma: float = 0.5  # softness in pixel² (SoftRas's σ = 1e-4 in NDC² is ≈ 0.4 px² at 128 px); 0 = hard
    eps: float = 1e-2  # D_j below this is treated as 0 (sets the bounding-box margin)
    near: float = 1e-3  # triangles with a vertex closer than this are dropped
    max_pairs: int = 2_000_000  # (pixel, triangle) pairs evaluated at once


@dataclass
class MeshFragments:
    alpha: Tensor  # [H, W] soft silhouette
    face: Tensor  # [H, W] long, −1 where no triangle covers the pixel centre
    bary: Tensor  # [H, W, 3] perspective-correct barycentrics (0 where face = −1)
    depth: Tensor  # [H, W] camera z (0 where empty)

    @property
    def covered(self) -> Tensor:
        return self.face >= 0


def _pairs(lo: Tensor, hi: Tensor, W: int, H: int, margin: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Integer pixel ranges of each face's grown bounding box: (x0, y0, nx, ny)."""
    x0 = torch.ceil(lo[:, 0] - margin - 0.5).clamp(0, W).long()
    x1 = torch.floor(hi[:, 0] + margin - 0.5).clamp(-1, W - 1).long()
    y0 = torch.ceil(lo[:, 1] - margin - 0.5).clamp(0, H).long()
    y1 = torch.floor(hi[:, 1] + margin - 0.5).clamp(-1, H - 1).long()
    return x0, y0, (x1 - x0 + 1).clamp_min(0), (y1 - y0 + 1).clamp_min(0)


def _seg_d2(p: Tensor, a: Tensor, b: Tensor) -> Tensor:
    ab = b - a
    t = (((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-20)).clamp(0, 1)
    q = a + t[..., None] * ab
    return ((p - q) ** 2).sum(-1)


def _pair_terms(p: Tensor, tri: Tensor, z: Tensor):
    """Pixel centres p [M, 2], screen triangles tri [M, 3, 2], vertex depths z [M, 3] →
    (screen barycentrics [M, 3], inside [M], squared distance to the triangle's edges [M])."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]

    def edge(u, v, q):
        return (v[:, 0] - u[:, 0]) * (q[:, 1] - u[:, 1]) - (v[:, 1] - u[:, 1]) * (q[:, 0] - u[:, 0])

    area = edge(a, b, c)
    area = torch.where(area.abs() > 1e-12, area, torch.full_like(area, 1e-12))
    w = torch.stack([edge(b, c, p), edge(c, a, p), edge(a, b, p)], -1) / area[:, None]
    inside = (w >= 0).all(-1)
    d2 = torch.minimum(torch.minimum(_seg_d2(p, a, b), _seg_d2(p, b, c)), _seg_d2(p, c, a))
    return w, inside, d2


def _perspective(w: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
    """Screen barycentrics → perspective-correct barycentrics and depth."""
    wz = w / z
    s = wz.sum(-1, keepdim=True)
    return wz / s, 1.0 / s[:, 0]


def rasterize_mesh(verts: Tensor, faces: Tensor, camera: Cameras, settings: MeshRasterSettings | None = None,
                   face_ids: Tensor | None = None) -> MeshFragments:
    """Rasterize one mesh (verts [V, 3] world, faces [F, 3]) for one camera (see module doc).

    ``face_ids`` [H, W] (−1 empty), e.g. from :class:`fourd.gen.gl_faces.GLFaceIds`, replaces the
    torch visibility search; the soft silhouette is still computed here."""
    s = settings or MeshRasterSettings()
    if len(camera) != 1:
        raise ValueError("rasterize_mesh takes one camera")
    H, W = int(camera.H[0]), int(camera.W[0])
    uv, z = camera.to(device=verts.device, dtype=verts.dtype).project(verts, distort=False)
    uv, z = uv[0], z[0]
    fz = z[faces]
    keep = (fz > s.near).all(-1)
    fidx = keep.nonzero()[:, 0]
    tri_all = uv[faces[fidx]]  # [F', 3, 2]
    lo, hi = tri_all.min(1).values.detach(), tri_all.max(1).values.detach()
    margin = math.sqrt(s.sigma * math.log(1.0 / s.eps)) if s.sigma > 0 else 0.0
    x0, y0, nx, ny = _pairs(lo, hi, W, H, margin)
    cnt = nx * ny
    log_bg = verts.new_zeros(H * W)  # Σ log(1 − D_j) per pixel
    best_z = torch.full((H * W,), math.inf, dtype=verts.dtype, device=verts.device)
    best_f = torch.full((H * W,), -1, dtype=torch.long, device=verts.device)
    hard = torch.zeros(H * W, dtype=torch.bool, device=verts.device)  # exact coverage when σ = 0
    # chunks of whole faces with at most max_pairs pairs each
    csum = torch.cumsum(cnt, 0)
    start = 0
    n_faces = fidx.numel()
    while start < n_faces:
        base = int(csum[start - 1]) if start else 0
        end = int(torch.searchsorted(csum, torch.tensor(base + s.max_pairs, device=csum.device), right=True))
        end = max(end, start + 1)
        sl = slice(start, min(end, n_faces))
        c = cnt[sl]
        total = int(c.sum())
        start = sl.stop
        if total == 0:
            continue
        local_face = torch.repeat_interleave(torch.arange(c.numel(), device=c.device), c)
        first = torch.cumsum(c, 0) - c
        k = torch.arange(total, device=c.device) - first[local_face]
        gf = local_face + sl.start  # index into fidx
        px = x0[gf] + k % nx[gf]
        py = y0[gf] + k // nx[gf]
        pix = py * W + px
        p = torch.stack([px, py], -1).to(verts.dtype) + 0.5
        w, inside, d2 = _pair_terms(p, tri_all[gf], fz[fidx[gf]])
        if s.sigma > 0:
            x = torch.where(inside, d2, -d2) / s.sigma
            log_bg = log_bg.index_add(0, pix, -F.softplus(x))  # log(1 − sigmoid(x)) = −softplus(x)
        else:
            hard = hard.index_fill(0, pix[inside], True)
        if face_ids is None:
            with torch.no_grad():
                _, zz = _perspective(w.detach(), fz[fidx[gf]].detach())
                zz = torch.where(inside, zz, torch.full_like(zz, math.inf))
                chunk_best = torch.full_like(best_z, math.inf).scatter_reduce(0, pix, zz, "amin")
                better = chunk_best < best_z
                # the face achieving the minimum (ties: the largest face index)
                hit = inside & (zz == chunk_best[pix]) & better[pix]
                cand = torch.full_like(best_f, -1).scatter_reduce(0, pix[hit], fidx[gf[hit]], "amax")
                best_f = torch.where(better, cand, best_f)
                best_z = torch.where(better, chunk_best, best_z)
    face = best_f if face_ids is None else face_ids.reshape(-1).to(verts.device).long()
    alpha = 1.0 - torch.exp(log_bg) if s.sigma > 0 else hard.to(verts.dtype)
    # differentiable barycentrics of the visible (pixel, face) pairs
    vis = (face >= 0).nonzero()[:, 0]
    bary = verts.new_zeros(H * W, 3)
    depth = verts.new_zeros(H * W)
    if vis.numel():
        fv = face[vis]
        p = torch.stack([vis % W, vis // W], -1).to(verts.dtype) + 0.5
        w, _, _ = _pair_terms(p, uv[faces[fv]], z[faces[fv]])
        b, zz = _perspective(w, z[faces[fv]])
        bary = bary.index_put((vis,), b)
        depth = depth.index_put((vis,), zz)
    return MeshFragments(alpha.reshape(H, W), face.reshape(H, W), bary.reshape(H, W, 3), depth.reshape(H, W))


def interpolate(frags: MeshFragments, face_attr: Tensor) -> Tensor:
    """Per-face-corner attributes [F, 3, C] → per-pixel [H, W, C] (0 where nothing is visible)."""
    f = frags.face.clamp_min(0)
    out = (face_attr[f] * frags.bary[..., None]).sum(-2)
    return out * frags.covered[..., None].to(out.dtype)


def shade(mesh, frags: MeshFragments, background: Tensor | float = 0.0) -> Tensor:
    """Unlit colour of the visible surface (texture or vertex colours) over ``background`` → [H, W, 3]."""
    f = frags.face.clamp_min(0)
    col = mesh.colors_at(f, frags.bary)
    bg = torch.as_tensor(background, dtype=col.dtype, device=col.device).expand_as(col)
    return torch.where(frags.covered[..., None], col, bg)
