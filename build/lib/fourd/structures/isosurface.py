"""Signed distance field → triangles: marching cubes on a dense grid (scikit-image) and marching
tetrahedra on a tetrahedral grid (the extraction step of DMTet / GET3D, differentiable in the
vertex positions and the SDF). Convention: the SDF is negative inside."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from fourd.structures.mesh import Meshes


def marching_cubes(sdf: Tensor | np.ndarray, lo, hi, level: float = 0.0) -> Meshes:
    """Dense SDF grid [X, Y, Z] (index (i, j, k) at lo + (i, j, k)·(hi − lo)/(n − 1)) → mesh with
    outward-facing triangles, through scikit-image."""
    from skimage.measure import marching_cubes as mc

    s = np.asarray(sdf.detach().cpu() if isinstance(sdf, Tensor) else sdf, np.float32)
    if s.ndim != 3 or min(s.shape) < 2:
        raise ValueError(f"marching_cubes: need a 3-D grid, got shape {s.shape}")
    if not (s.min() < level < s.max()):
        raise ValueError("marching_cubes: the SDF has no zero crossing in the grid (nothing to extract)")
    lo, hi = np.asarray(lo, np.float32), np.asarray(hi, np.float32)
    spacing = (hi - lo) / (np.asarray(s.shape) - 1)
    verts, faces, _, _ = mc(s, level=level, spacing=tuple(spacing.tolist()), gradient_direction="descent")
    verts = verts + lo
    return Meshes(torch.from_numpy(verts.astype(np.float32)), torch.from_numpy(faces.astype(np.int64)))


def tet_grid(res: int, lo=(-1.0, -1.0, -1.0), hi=(1.0, 1.0, 1.0)) -> tuple[Tensor, Tensor]:
    """A cube of res³ cells, each split into 6 tetrahedra around its main diagonal (a conforming
    Freudenthal split): vertices [(res+1)³, 3], tets [6·res³, 4]."""
    n = res + 1
    ax = [torch.linspace(float(a), float(b), n) for a, b in zip(lo, hi)]
    verts = torch.stack(torch.meshgrid(*ax, indexing="ij"), dim=-1).reshape(-1, 3)
    i, j, k = torch.meshgrid(*(torch.arange(res),) * 3, indexing="ij")
    base = (i * n * n + j * n + k).reshape(-1)
    off = lambda a, b, c: a * n * n + b * n + c  # noqa: E731
    c = [off(0, 0, 0), off(1, 0, 0), off(0, 1, 0), off(1, 1, 0), off(0, 0, 1), off(1, 0, 1), off(0, 1, 1),
         off(1, 1, 1)]
    # the six paths from corner 0 to corner 7 along x, y, z in every order
    paths = [(1, 3), (1, 5), (2, 3), (2, 6), (4, 5), (4, 6)]
    tets = torch.stack([torch.stack([base + c[0], base + c[a], base + c[b], base + c[7]], 1) for a, b in paths], 1)
    return verts, tets.reshape(-1, 4)


# for each of the 16 sign patterns of a tet (bit v set = vertex v inside), the triangles as
# lists of tet edges; edges numbered by _TET_EDGES
_TET_EDGES = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]


def _tet_table():
    table = []
    for code in range(16):
        inside = [(code >> v) & 1 for v in range(4)]
        cut = [e for e, (a, b) in enumerate(_TET_EDGES) if inside[a] != inside[b]]
        if len(cut) == 3:
            table.append([cut])
        elif len(cut) == 4:
            # quad: order the four cut edges around the quad (edges sharing a vertex are adjacent)
            e0 = cut[0]
            ring = [e0]
            rest = cut[1:]
            while rest:
                last = _TET_EDGES[ring[-1]]
                nxt = next(e for e in rest if set(_TET_EDGES[e]) & set(last))
                ring.append(nxt)
                rest.remove(nxt)
            table.append([[ring[0], ring[1], ring[2]], [ring[0], ring[2], ring[3]]])
        else:
            table.append([])
    return table


_TET_TABLE = _tet_table()


def marching_tets(verts: Tensor, tets: Tensor, sdf: Tensor) -> Meshes:
    """Marching tetrahedra (DMTet's surface extraction): triangles where ``sdf`` [V] changes sign
    along tet edges; vertex positions interpolate linearly, so they are differentiable in
    ``verts`` and ``sdf``. Triangles face outward (towards positive SDF)."""
    if sdf.shape[0] != verts.shape[0]:
        raise ValueError("marching_tets: one SDF value per grid vertex")
    inside = (sdf < 0).long()
    code = (inside[tets] * torch.tensor([1, 2, 4, 8], device=tets.device)).sum(1)
    active = (code > 0) & (code < 15)
    tets, code = tets[active], code[active]
    edges_all = torch.tensor(_TET_EDGES, device=tets.device)
    # unique cut edges → one mesh vertex each
    ev = tets[:, edges_all]  # [T, 6, 2]
    ev_sorted = torch.sort(ev, dim=-1).values
    key = ev_sorted[..., 0] * verts.shape[0] + ev_sorted[..., 1]  # [T, 6]
    tris_t, tris_e = [], []
    for c in range(1, 15):
        sel = (code == c).nonzero()[:, 0]
        for tri in _TET_TABLE[c]:
            tris_t.append(sel[:, None].expand(-1, 3))
            tris_e.append(torch.tensor(tri, device=tets.device).expand(sel.numel(), 3))
    if not tris_t:
        return Meshes(verts.new_zeros((0, 3)), torch.zeros((0, 3), dtype=torch.long))
    tt, te = torch.cat(tris_t), torch.cat(tris_e)
    keys = key[tt, te]  # [n_tri, 3]
    uniq, inv = torch.unique(keys.reshape(-1), return_inverse=True)
    a, b = uniq // verts.shape[0], uniq % verts.shape[0]
    sa, sb = sdf[a], sdf[b]
    w = (sa / (sa - sb))[:, None]
    pos = verts[a] + w * (verts[b] - verts[a])
    faces = inv.reshape(-1, 3)
    # orient: the normal should point along increasing SDF (outward); flip where it does not
    p = pos[faces]
    n = torch.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], dim=-1)
    tet_v = verts[tets[tt[:, 0]]]  # [n_tri, 4, 3]
    tet_s = sdf[tets[tt[:, 0]]]  # [n_tri, 4]
    grad_dir = (tet_v * (tet_s - tet_s.mean(1, keepdim=True))[..., None]).sum(1)  # points towards higher SDF
    flip = (n * grad_dir).sum(-1) < 0
    faces = torch.where(flip[:, None], faces[:, [0, 2, 1]], faces)
    return Meshes(pos, faces)
