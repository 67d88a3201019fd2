"""Image-space fit of baked per-point colours.

With the geometry fixed (positions, radii, densities as baked), a rendered pixel is linear in the
point colours: pixel = Σ_k w_k · c(idx_k, d) + T·background, where w_k are the compositing weights
of the K peeled points and c(i, d) = rgb_i + Σ_j Y_j(d) sh_ij (degree-1 residual, d = view
direction). So the colours that best reproduce a set of target images solve a sparse linear
least-squares problem. It is solved here by conjugate gradients on the normal equations; each
iteration is one gather and one scatter over the cached (pixel, point, weight) triples of every
view, so the cost is a few renders' worth per frame, not an optimization loop through the
renderer.

Fitting to the images a point is actually composited into — rather than to each point's own
colour as the model predicts it — lets neighbouring splats share the work of reproducing an
edge, and removes the averaging error of a per-point fit. Left alone, though, the splats a pixel
mixes are free to trade colour with each other (only their weighted sum is pinned down), which
shows as mottling; an optional smoothness term ties each point to its nearest neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fourd.model.sh import sh_basis
from fourd.render.compositor import composite
from fourd.structures.cameras import Cameras
from fourd.structures.fragments import Fragments


@dataclass
class ViewSystem:
    """One view's rows of the linear system: pixel m gets Σ_k w[m, k] · Y(idx[m, k]) · C[idx[m, k]]."""

    idx: Tensor  # [M, K] point index (0 where no point; its weight is 0 there)
    w: Tensor  # [M, K] compositing weights
    Y: Tensor  # [N, B] basis of each point's direction from this view's centre
    target: Tensor  # [M, 3] target colour minus the background seen through

    def apply(self, C: Tensor) -> Tensor:
        """A_v C: [N, B, 3] → [M, 3]."""
        col = torch.einsum("nb,nbc->nc", self.Y, C)  # each point's colour seen from this view
        return torch.einsum("mk,mkc->mc", self.w, col[self.idx])

    def apply_t(self, R: Tensor) -> Tensor:
        """A_vᵀ R: [M, 3] → [N, B, 3]."""
        g = torch.zeros(self.Y.shape[0], 3, dtype=R.dtype, device=R.device)
        g.index_add_(0, self.idx.reshape(-1), (self.w[..., None] * R[:, None, :]).reshape(-1, 3))
        return self.Y[:, :, None] * g[:, None, :]

    def weight_squares(self) -> Tensor:
        """[N] Σ over pixels of the point's squared weight (for the Jacobi preconditioner)."""
        w2 = torch.zeros(self.Y.shape[0], dtype=self.w.dtype, device=self.w.device)
        return w2.index_add_(0, self.idx.reshape(-1), (self.w * self.w).reshape(-1))


def view_system(frags: Fragments, xyz: Tensor, radius: Tensor, density: Tensor, camera: Cameras, target: Tensor,
                background: Tensor, degree: int) -> ViewSystem:
    """Rows for one view: ``target`` [H, W, 3] is the image to reproduce (over ``background``)."""
    n = xyz.shape[0]
    ones = torch.ones(n, 1, dtype=xyz.dtype, device=xyz.device)
    # the compositor gives the weights of the exact α model used everywhere else
    out = composite(frags, xyz, radius, density, ones, camera, None)
    covered = frags.idx[..., 0] >= 0
    w = out.weights[covered]  # [M, K], 0 where no point
    idx = frags.idx[covered].clamp_min(0)
    tgt = target[covered] - (1 - out.alpha[covered])[:, None] * background
    d = torch.nn.functional.normalize(xyz - camera.centers[0].to(xyz), dim=-1)
    Y = ones
    if degree > 0:  # the constant term is the colour itself (not scaled by C0)
        Y = torch.cat([ones, sh_basis(d, degree)[:, 1:]], 1)
    return ViewSystem(idx, w, Y, tgt)


@dataclass
class Neighbours:
    """Edges of a k-nearest-neighbour graph over the points: i — idx[i, j] where mask[i, j] = 1."""

    idx: Tensor  # [N, k]
    mask: Tensor  # [N, k] float: 0 for neighbours across a gap

    def laplacian(self, C: Tensor) -> Tensor:
        """L C for L = Σ_edges (e_i − e_j)(e_i − e_j)ᵀ: [N, ...] → [N, ...]."""
        m = self.mask.reshape(*self.mask.shape, *([1] * (C.dim() - 1)))
        diff = m * (C[:, None] - C[self.idx])
        out = diff.sum(1)
        return out.index_add_(0, self.idx.reshape(-1), -diff.reshape(-1, *C.shape[1:]))

    def degree(self) -> Tensor:
        """[N] edges per point (the diagonal of L)."""
        return self.mask.sum(1).index_add(0, self.idx.reshape(-1), self.mask.reshape(-1))


def neighbours(xyz: Tensor, k: int = 6, gap: float = 2.5) -> Neighbours:
    """The k nearest neighbours of every point; an edge longer than ``gap`` × the median
    nearest-neighbour distance is dropped (so nothing is smoothed across a gap between parts)."""
    from scipy.spatial import cKDTree

    p = xyz.detach().cpu().double().numpy()
    k = min(k, len(p) - 1)
    if k < 1:
        return Neighbours(torch.zeros(len(p), 0, dtype=torch.long), torch.zeros(len(p), 0))
    d, i = cKDTree(p).query(p, k=k + 1)
    d, i = torch.from_numpy(d[:, 1:]).float(), torch.from_numpy(i[:, 1:]).long()
    mask = (d <= gap * d[:, 0].median()).float()
    return Neighbours(i.to(xyz.device), mask.to(xyz.device))


def fit_colors(systems: list[ViewSystem], init: Tensor, ridge: float = 1e-3, ridge_sh: float = 0.1,
               iters: int = 40, smooth: float = 0.0, graph: Neighbours | None = None) -> Tensor:
    """Least-squares colours C [N, B, 3] for the stacked views, starting from ``init`` [N, B, 3].

    Minimizes Σ_v ||A_v C − t_v||² (summed over pixels) + ridge·||C₀ − init₀||² + ridge_sh·||C_{1..}||²
    per point (+ smooth · Σ_edges ||C_i − C_j||² over ``graph``): a point seen in many pixels is set
    by them, one seen in none keeps its initial colour (or takes its neighbours') and no
    view-dependence. Jacobi-preconditioned conjugate gradients on the normal equations
    (symmetric positive definite thanks to the ridge terms)."""
    n, B, _ = init.shape

    reg = torch.full((B,), ridge_sh, dtype=init.dtype, device=init.device)
    reg[0] = ridge
    diag = reg[None, :].expand(n, B).clone()
    for s in systems:  # diagonal of Σ AᵀA: Σ over the point's pixels of w² · Y²
        diag = diag + s.weight_squares()[:, None] * s.Y * s.Y
    smoothing = smooth > 0 and graph is not None
    if smoothing:
        diag = diag + smooth * graph.degree()[:, None]
    inv = (1.0 / diag)[:, :, None]

    def normal(C: Tensor) -> Tensor:
        out = reg[None, :, None] * C
        if smoothing:
            out = out + smooth * graph.laplacian(C)
        for s in systems:
            out = out + s.apply_t(s.apply(C))
        return out

    rhs = reg[None, :, None] * torch.cat([init[:, :1], torch.zeros_like(init[:, 1:])], 1)
    for s in systems:
        rhs = rhs + s.apply_t(s.target)
    x = init.clone()
    r = rhs - normal(x)
    z = inv * r
    p = z.clone()
    rz = rz0 = (r * z).sum()
    for _ in range(iters):
        Ap = normal(p)
        a = rz / (p * Ap).sum().clamp_min(1e-30)
        x = x + a * p
        r = r - a * Ap
        z = inv * r
        rz_new = (r * z).sum()
        if rz_new.abs() <= 1e-10 * rz0.abs():  # converged (or nothing left to fit)
            break
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x
