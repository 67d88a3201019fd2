"""Mesh files through trimesh: OBJ (+ .mtl and texture PNG), GLB/glTF, PLY, OFF, STL, read into
and written from :class:`~fourd.structures.mesh.Meshes`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fourd.errors import DataError
from fourd.io import atomic_write_bytes
from fourd.structures.mesh import Meshes

MESH_SUFFIXES = (".obj", ".glb", ".gltf", ".ply", ".off", ".stl")

def load_mesh(path: str | Path) -> Meshes:
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

def to_trimesh(mesh: Meshes):
    import trimesh
    from PIL import Image

    v = mesh.verts.detach().cpu().double().numpy()
    f = mesh.faces.cpu().numpy()
    if mesh.texture is not None and mesh.face_uvs is not None:
        # trimesh keeps one UV per vertex: one vertex per distinct (position, UV) pair
        uv = mesh.face_uvs.detach().cpu().double().numpy().reshape(-1, 2)
        corners = np.concatenate([v[f].reshape(-1, 3), uv], 1)
        uniq, inv = np.unique(corners, axis=0, return_inverse=True)
        img = Image.fromarray((mesh.texture.detach().cpu().clamp(0, 1).numpy() * 255).round().astype(np.uint8))
        material = trimesh.visual.material.SimpleMaterial(image=img, diffuse=(255, 255, 255, 255))
        visual = trimesh.visual.TextureVisuals(uv=uniq[:, 3:], image=img, material=material)
        return trimesh.Trimesh(uniq[:, :3], inv.reshape(-1, 3), visual=visual, process=False)
    colors = None
    if mesh.vertex_colors is not None:
        c = (mesh.vertex_colors.detach().cpu().clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        colors = np.concatenate([c, np.full((len(c), 1), 255, np.uint8)], 1)
    return trimesh.Trimesh(v, f, vertex_colors=colors, process=False)

def save_mesh(mesh: Meshes, path: str | Path) -> Path:
    """Write OBJ (+ .mtl and texture PNG beside it), GLB or PLY by the suffix."""
    import trimesh.exchange.export as tx

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".obj", ".glb", ".ply", ".off", ".stl"):
        raise DataError(f"unsupported mesh format '{suffix}'", path, "use .obj, .glb or .ply")
    path.parent.mkdir(parents=True, exist_ok=True)
    m = to_trimesh(mesh)
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
