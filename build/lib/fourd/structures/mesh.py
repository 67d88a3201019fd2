"""``Meshes``: one triangle mesh with optional UV texture or vertex colours.

The container: geometry queries (normals, areas, edges, adjacency, Laplacian), subdivision,
texture lookup, area-weighted surface sampling into a one-frame :class:`PointSequence`, and the
icosphere the mesh fitter starts from. Beside it: files in :mod:`fourd.structures.mesh_io`
(trimesh: OBJ, GLB/glTF, PLY, OFF, STL) and SDF → triangles in :mod:`fourd.structures.isosurface`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from fourd.errors import DataError


@dataclass
class Meshes:
    verts: Tensor  # [V, 3] float
    faces: Tensor  # [F, 3] long
    face_uvs: Tensor | None = None  # [F, 3, 2] UV of each face corner (seams need per-corner UVs)
    texture: Tensor | None = None  # [h, w, 3] float in [0, 1], row 0 = v = 1 (top of the image)
    vertex_colors: Tensor | None = None  # [V, 3] float in [0, 1]

    def __post_init__(self):
        self.faces = torch.as_tensor(self.faces, dtype=torch.long)
        if self.verts.dim() != 2 or self.verts.shape[1] != 3:
            raise ValueError(f"Meshes: verts must be [V, 3], got {list(self.verts.shape)}")
        if self.faces.dim() != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"Meshes: faces must be [F, 3], got {list(self.faces.shape)}")
        if self.faces.numel() and (int(self.faces.min()) < 0 or int(self.faces.max()) >= self.verts.shape[0]):
            raise ValueError("Meshes: a face refers to a vertex that does not exist")
        if self.face_uvs is not None and self.face_uvs.shape != (self.faces.shape[0], 3, 2):
            raise ValueError(f"Meshes: face_uvs must be [F, 3, 2], got {list(self.face_uvs.shape)}")
        if self.vertex_colors is not None and self.vertex_colors.shape != self.verts.shape:
            raise ValueError("Meshes: vertex_colors must be [V, 3]")

    @property
    def n_verts(self) -> int:
        return self.verts.shape[0]

    @property
    def n_faces(self) -> int:
        return self.faces.shape[0]

    def to(self, device) -> "Meshes":
        mv = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Meshes(self.verts.to(device), self.faces.to(device), mv(self.face_uvs), mv(self.texture),
                      mv(self.vertex_colors))

    def detach(self) -> "Meshes":
        dt = lambda t: None if t is None else t.detach()  # noqa: E731
        return Meshes(self.verts.detach(), self.faces, dt(self.face_uvs), dt(self.texture), dt(self.vertex_colors))

    def with_verts(self, verts: Tensor) -> "Meshes":
        return replace(self, verts=verts)

    # ------------------------------------------------------------ geometry
    def face_normals(self, unit: bool = True) -> Tensor:
        v = self.verts[self.faces]
        n = torch.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=-1)
        return torch.nn.functional.normalize(n, dim=-1) if unit else n

    def face_areas(self) -> Tensor:
        return 0.5 * self.face_normals(unit=False).norm(dim=-1)

    def vertex_normals(self) -> Tensor:
        fn = self.face_normals(unit=False)
        n = torch.zeros_like(self.verts)
        for k in range(3):
            n = n.index_add(0, self.faces[:, k], fn)
        return torch.nn.functional.normalize(n, dim=-1)

    def corner_edges(self) -> Tensor:
        """Every face's edges (01, 12, 20 of all faces in that order) [3F, 2], smaller index first."""
        e = torch.cat([self.faces[:, [0, 1]], self.faces[:, [1, 2]], self.faces[:, [2, 0]]])
        return torch.sort(e, dim=1).values

    def edges(self) -> Tensor:
        """Unique undirected edges [E, 2]."""
        return torch.unique(self.corner_edges(), dim=0)

    def edge_face_counts(self) -> Tensor:
        _, counts = torch.unique(self.corner_edges(), dim=0, return_counts=True)
        return counts

    def is_watertight_manifold(self) -> bool:
        """Every edge is shared by exactly two faces."""
        return self.n_faces > 0 and bool((self.edge_face_counts() == 2).all())

    def validate(self, path: str | Path | None = None, manifold: bool = False) -> "Meshes":
        """Raise a one-line DataError for an empty, non-finite or (when asked) non-manifold mesh."""
        if self.n_faces == 0 or self.n_verts == 0:
            raise DataError("the mesh is empty (no triangles)", path, "pass a mesh with faces (OBJ, GLB, PLY)")
        if not bool(torch.isfinite(self.verts).all()):
            raise DataError("the mesh has NaN or infinite vertex positions", path, "repair or re-export it")
        if manifold:
            counts = self.edge_face_counts()
            bad = int((counts != 2).sum())
            if bad:
                raise DataError(f"the mesh is not a closed manifold ({bad} of {counts.numel()} edges are not shared "
                                "by exactly two triangles)", path,
                                "close holes and remove duplicate faces (e.g. trimesh's fill_holes / "
                                "MeshLab's 'repair non-manifold edges'), or start from the default icosphere")
        return self

    def laplacian_uniform(self) -> Tensor:
        """Uniform graph Laplacian L as a sparse [V, V] tensor: (L v)_i = mean of neighbours − v_i."""
        e = self.edges()
        V = self.n_verts
        i = torch.cat([e[:, 0], e[:, 1]])
        j = torch.cat([e[:, 1], e[:, 0]])
        deg = torch.zeros(V, dtype=self.verts.dtype, device=self.verts.device).index_add(
            0, i, torch.ones_like(i, dtype=self.verts.dtype))
        w = 1.0 / deg.clamp_min(1)[i]
        idx = torch.cat([torch.stack([i, j]), torch.arange(V, device=i.device).repeat(2, 1)], dim=1)
        val = torch.cat([w, -torch.ones(V, dtype=w.dtype, device=w.device)])
        return torch.sparse_coo_tensor(idx, val, (V, V), check_invariants=True).coalesce()

    def subdivide(self) -> "Meshes":
        """Midpoint subdivision: every triangle → 4 (the surface does not move); UVs, vertex
        colours and the texture carry over."""
        V = self.n_verts
        f = self.faces
        key = self.corner_edges()
        uniq, inv = torch.unique(key[:, 0] * V + key[:, 1], return_inverse=True)
        a, b = uniq // V, uniq % V
        verts = torch.cat([self.verts, (self.verts[a] + self.verts[b]) / 2])
        m = (inv + V).reshape(3, -1).T  # midpoints of edges (01, 12, 20) of each face
        faces = torch.cat([torch.stack([f[:, 0], m[:, 0], m[:, 2]], 1), torch.stack([m[:, 0], f[:, 1], m[:, 1]], 1),
                           torch.stack([m[:, 2], m[:, 1], f[:, 2]], 1), torch.stack([m[:, 0], m[:, 1], m[:, 2]], 1)])
        face_uvs = None
        if self.face_uvs is not None:
            u = self.face_uvs
            h = lambda i, j: (u[:, i] + u[:, j]) / 2  # noqa: E731
            face_uvs = torch.cat([torch.stack([u[:, 0], h(0, 1), h(2, 0)], 1), torch.stack([h(0, 1), u[:, 1], h(1, 2)], 1),
                                  torch.stack([h(2, 0), h(1, 2), u[:, 2]], 1), torch.stack([h(0, 1), h(1, 2), h(2, 0)], 1)])
        colors = None
        if self.vertex_colors is not None:
            colors = torch.cat([self.vertex_colors, (self.vertex_colors[a] + self.vertex_colors[b]) / 2])
        return Meshes(verts, faces, face_uvs, self.texture, colors)

    def face_adjacency(self) -> Tensor:
        """Pairs of faces [A, 2] sharing an edge (manifold edges only)."""
        key = self.corner_edges()
        fid = torch.arange(self.n_faces, device=key.device).repeat(3)
        key = key[:, 0] * self.n_verts + key[:, 1]
        order = torch.argsort(key)
        k, f = key[order], fid[order]
        same = k[1:] == k[:-1]
        return torch.stack([f[:-1][same], f[1:][same]], dim=1)

    # ------------------------------------------------------------ appearance
    def sample_texture(self, uv: Tensor) -> Tensor:
        """Bilinear texture lookup at UVs [..., 2] (u wraps around) → [..., 3]."""
        return sample_texture(self.texture, uv)

    def colors_at(self, face_idx: Tensor, bary: Tensor) -> Tensor:
        """Colour at barycentric points of faces: texture, vertex colours, or grey."""
        if self.texture is not None and self.face_uvs is not None:
            uv = (self.face_uvs[face_idx] * bary[..., None]).sum(-2)
            return self.sample_texture(uv)
        if self.vertex_colors is not None:
            return (self.vertex_colors[self.faces[face_idx]] * bary[..., None]).sum(-2)
        return torch.full((*face_idx.shape, 3), 0.7, dtype=self.verts.dtype, device=self.verts.device)

    # ------------------------------------------------------------ sampling
    def sample_points(self, n: int, seed: int = 0):
        """Area-weighted surface samples → a one-frame ``PointSequence`` with colours, normals
        and a splat radius from the sample spacing."""
        from fourd.structures.points import PointSequence

        self.validate()
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            areas = self.face_areas().double().cpu()
            fi = torch.multinomial(areas / areas.sum(), n, replacement=True, generator=g).to(self.verts.device)
            r1, r2 = torch.rand(n, generator=g), torch.rand(n, generator=g)
            s = r1.sqrt()
            bary = torch.stack([1 - s, s * (1 - r2), s * r2], dim=1).to(self.verts)
            pts = (self.verts[self.faces[fi]] * bary[..., None]).sum(1)
            normals = self.face_normals()[fi]
            colors = self.colors_at(fi, bary).clamp(0, 1)
            radius = torch.full((n, 1), 1.2 * math.sqrt(float(areas.sum()) / n))
        return PointSequence.from_list([pts.float().cpu()], [0], {
            "colors": [colors.float().cpu()], "normals": [normals.float().cpu()], "radius": [radius.float()]},
            meta={"source": "mesh"})

    # ------------------------------------------------------------ files (fourd.structures.mesh_io)
    @classmethod
    def load(cls, path: str | Path) -> "Meshes":
        """Read OBJ, GLB/glTF, PLY, OFF or STL (see :mod:`fourd.structures.mesh_io`)."""
        from fourd.structures.mesh_io import load_mesh

        return load_mesh(path)

    def save(self, path: str | Path) -> Path:
        """Write OBJ (+ .mtl and texture PNG beside it), GLB or PLY by the suffix."""
        from fourd.structures.mesh_io import save_mesh

        return save_mesh(self, path)


def sample_texture(texture: Tensor, uv: Tensor) -> Tensor:
    """Bilinear lookup in ``texture`` [h, w, 3] at ``uv`` [..., 2]; u wraps (seams of a sphere
    map), v clamps. v = 1 is the top row."""
    h, w, C = texture.shape
    flat = uv.reshape(-1, 2)
    x = (flat[:, 0] % 1.0) * w - 0.5
    y = (1 - flat[:, 1].clamp(0, 1)) * h - 0.5
    x0 = x.floor()
    y0 = y.floor()
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0l = x0.long()
    y0l = y0.long()
    xa, xb = x0l % w, (x0l + 1) % w
    ya, yb = y0l.clamp(0, h - 1), (y0l + 1).clamp(0, h - 1)
    t = texture.reshape(-1, C)
    c = (t[ya * w + xa] * (1 - fx) * (1 - fy) + t[ya * w + xb] * fx * (1 - fy)
         + t[yb * w + xa] * (1 - fx) * fy + t[yb * w + xb] * fx * fy)
    return c.reshape(*uv.shape[:-1], C)


# ---------------------------------------------------------------- constructors
def icosphere(level: int = 4, radius: float = 1.0, center=(0.0, 0.0, 0.0), texture_size: int = 0,
              color: float = 0.5) -> Meshes:
    """Subdivided icosahedron (level 4: 2562 vertices, 5120 faces) with a spherical UV map whose
    seam faces get wrapped UVs, and an optional flat grey texture."""
    import trimesh

    s = trimesh.creation.icosphere(subdivisions=level, radius=1.0)
    v = torch.from_numpy(np.asarray(s.vertices, np.float32))
    f = torch.from_numpy(np.asarray(s.faces, np.int64))
    u = 0.5 + torch.atan2(v[:, 0], v[:, 2]) / (2 * math.pi)
    vv = 0.5 + torch.asin(v[:, 1].clamp(-1, 1)) / math.pi
    fu = u[f]  # [F, 3]
    wrap = (fu.max(1).values - fu.min(1).values) > 0.5
    fu = torch.where(wrap[:, None] & (fu < 0.5), fu + 1.0, fu)
    face_uvs = torch.stack([fu, vv[f]], dim=-1)
    tex = torch.full((texture_size, 2 * texture_size, 3), color) if texture_size else None
    verts = v * radius + torch.tensor(center, dtype=torch.float32)
    return Meshes(verts, f, face_uvs if tex is not None else None, tex)


# ---------------------------------------------------------------- SDF → mesh
