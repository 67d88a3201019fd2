"""``Meshes``: one triangle mesh with optional UV texture or vertex colours.

Reading and writing go through trimesh (OBJ, GLB/glTF, PLY, OFF, STL). Also here: the
icosphere the mesh fitter starts from, area-weighted surface sampling into a one-frame
:class:`PointSequence`, and two ways to turn a signed distance field into triangles —
marching cubes on a dense grid (scikit-image) and marching tetrahedra on a tetrahedral grid
(the extraction step of DMTet / GET3D, differentiable in the vertex positions and SDF).

Convention: the SDF is negative inside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from fourd.errors import DataError
from fourd.io import atomic_write_bytes

MESH_SUFFIXES = (".obj", ".glb", ".gltf", ".ply", ".off", ".stl")


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

    # ------------------------------------------------------------ files
    @classmethod
    def load(cls, path: str | Path) -> "Meshes":
        import trimesh

        path = Path(path)
        if not path.is_file():
            raise DataError("mesh file not found", path, "check the path")
        try:
            m = trimesh.load(str(path), force="mesh", process=False)
        except Exception as e:  # noqa: BLE001 - trimesh raises many kinds
            raise DataError(f"cannot read the mesh ({type(e).__name__}: {e})", path,
                            "export it as OBJ, GLB or PLY") from None
        if not isinstance(m, trimesh.Trimesh) or m.faces is None or len(m.faces) == 0:
            raise DataError("the file has no triangles", path, "pass a mesh; point clouds go through `fourd import`")
        return from_trimesh(m).validate(path)

    def to_trimesh(self):
        import trimesh
        from PIL import Image

        v = self.verts.detach().cpu().double().numpy()
        f = self.faces.cpu().numpy()
        if self.texture is not None and self.face_uvs is not None:
            # trimesh keeps one UV per vertex: one vertex per distinct (position, UV) pair
            uv = self.face_uvs.detach().cpu().double().numpy().reshape(-1, 2)
            corners = np.concatenate([v[f].reshape(-1, 3), uv], 1)
            uniq, inv = np.unique(corners, axis=0, return_inverse=True)
            img = Image.fromarray((self.texture.detach().cpu().clamp(0, 1).numpy() * 255).round().astype(np.uint8))
            material = trimesh.visual.material.SimpleMaterial(image=img, diffuse=(255, 255, 255, 255))
            visual = trimesh.visual.TextureVisuals(uv=uniq[:, 3:], image=img, material=material)
            return trimesh.Trimesh(uniq[:, :3], inv.reshape(-1, 3), visual=visual, process=False)
        colors = None
        if self.vertex_colors is not None:
            c = (self.vertex_colors.detach().cpu().clamp(0, 1).numpy() * 255).round().astype(np.uint8)
            colors = np.concatenate([c, np.full((len(c), 1), 255, np.uint8)], 1)
        return trimesh.Trimesh(v, f, vertex_colors=colors, process=False)

    def save(self, path: str | Path) -> Path:
        """Write OBJ (+ .mtl and texture PNG beside it), GLB or PLY by the suffix."""
        import trimesh.exchange.export as tx

        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".obj", ".glb", ".ply", ".off", ".stl"):
            raise DataError(f"unsupported mesh format '{suffix}'", path, "use .obj, .glb or .ply")
        path.parent.mkdir(parents=True, exist_ok=True)
        m = self.to_trimesh()
        if suffix == ".obj":
            if m.visual.kind == "texture":
                m.visual.material.name = path.stem  # texture file <stem>.png beside the OBJ
            files = tx.export_obj(m, include_texture=True, return_texture=True, mtl_name=f"{path.stem}.mtl")
            text, extra = files if isinstance(files, tuple) else (files, {})
            for name, data in extra.items():
                atomic_write_bytes(path.parent / name, data)
            return atomic_write_bytes(path, text.encode())
        if suffix != ".glb" and m.visual.kind == "texture":
            m.visual = m.visual.to_color()  # PLY/OFF/STL carry no image: bake the texture into vertex colours
        return atomic_write_bytes(path, m.export(file_type=suffix[1:]))


def from_trimesh(m) -> Meshes:
    verts = torch.from_numpy(np.asarray(m.vertices, np.float32))
    faces = torch.from_numpy(np.asarray(m.faces, np.int64))
    face_uvs = texture = colors = None
    vis = m.visual
    if vis.kind == "texture" and getattr(vis, "uv", None) is not None:
        img = getattr(vis.material, "baseColorTexture", None) or getattr(vis.material, "image", None)
        if img is not None:
            tex = np.asarray(img.convert("RGB"), np.float32) / 255.0
            texture = torch.from_numpy(tex)
            face_uvs = torch.from_numpy(np.asarray(vis.uv, np.float32))[faces]
        else:
            vis = vis.to_color()
    if texture is None and vis.kind in ("vertex", "face"):
        colors = torch.from_numpy(np.asarray(vis.vertex_colors)[:, :3].astype(np.float32) / 255.0)
    return Meshes(verts, faces, face_uvs, texture, colors)


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
