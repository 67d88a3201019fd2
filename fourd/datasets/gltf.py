"""Animated glTF 2.0 assets (GLB or glTF + buffers): node hierarchy, keyframe animation,
linear-blend skinning and morph targets, evaluated at any time in numpy.

Parsing of the container is pygltflib's; everything that turns accessors into a posed mesh is
here. The posed mesh in world space is the ground truth of a synthetic capture.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fourd.errors import DataError
from fourd.structures.curves import hermite
from fourd.structures.rotations import quat_to_matrix, slerp

_COMPONENT = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_NCOMP = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}


@dataclass
class Primitive:
    """One drawable part. Arrays are in the mesh's bind space until posed."""

    positions: np.ndarray  # [V, 3] float32
    faces: np.ndarray  # [F, 3] int32
    uvs: np.ndarray | None  # [V, 2]
    colors: np.ndarray | None  # [V, 4] float in [0, 1]
    joints: np.ndarray | None  # [V, 4] int
    weights: np.ndarray | None  # [V, 4] float
    morph_deltas: np.ndarray | None  # [M, V, 3]
    base_color: np.ndarray  # [4]
    texture: np.ndarray | None  # [h, w, 3|4] uint8 RGB(A), top row first as stored in the image
    node: int  # node that instantiates the mesh
    mesh: int


def _quat_to_mat(q_xyzw: np.ndarray) -> np.ndarray:
    return quat_to_matrix(np.roll(np.asarray(q_xyzw, np.float64), 1))  # glTF stores (x, y, z, w)


_slerp = slerp


class AnimatedAsset:
    """An animated glTF asset. ``pose(t)`` → world-space vertices per primitive at time t (s)."""

    def __init__(self, path: str | Path, animation: int | str | None = None):
        import pygltflib

        self.path = Path(path)
        if not self.path.is_file():
            raise DataError("glTF asset not found", self.path, "pass a .glb/.gltf file (fourd ships Fox.glb, CesiumMan.glb)")
        try:
            g = pygltflib.GLTF2().load(str(self.path))
        except Exception as e:
            raise DataError(f"cannot parse glTF ({type(e).__name__}: {e})", self.path, "re-export the asset as GLB") from None
        if g is None:
            raise DataError("cannot parse glTF", self.path, "re-export the asset as GLB")
        self.g = g
        self._buffers = [self._buffer_bytes(i) for i in range(len(g.buffers))]
        self.animation = self._pick_animation(animation)
        self.primitives = self._load_primitives()
        if not self.primitives:
            raise DataError("the asset has no triangle meshes", self.path, "pass a glTF with a mesh")
        self.parent = {c: i for i, n in enumerate(g.nodes) for c in (n.children or [])}

    # ----------------------------------------------------------- raw data
    def _buffer_bytes(self, i: int) -> bytes:
        buf = self.g.buffers[i]
        if buf.uri is None:
            blob = self.g.binary_blob()
            if blob is None:
                raise DataError("GLB binary chunk is missing (truncated file?)", self.path, "re-export the asset")
            return bytes(blob)
        if buf.uri.startswith("data:"):
            return base64.b64decode(buf.uri.split(",", 1)[1])
        p = self.path.parent / buf.uri
        if not p.is_file():
            raise DataError(f"buffer file '{buf.uri}' is missing", self.path, "keep the .bin next to the .gltf")
        return p.read_bytes()

    def _view_bytes(self, view_index: int) -> tuple[bytes, int | None]:
        v = self.g.bufferViews[view_index]
        data = self._buffers[v.buffer]
        start = v.byteOffset or 0
        return data[start:start + v.byteLength], v.byteStride

    def accessor(self, index: int) -> np.ndarray:
        a = self.g.accessors[index]
        dtype = np.dtype(_COMPONENT[a.componentType])
        nc = _NCOMP[a.type]
        if a.bufferView is None:
            out = np.zeros((a.count, nc), dtype)
        else:
            raw, stride = self._view_bytes(a.bufferView)
            off = a.byteOffset or 0
            elem = dtype.itemsize * nc
            stride = stride or elem
            need = off + stride * (a.count - 1) + elem
            if need > len(raw):
                raise DataError(f"accessor {index} runs past its buffer (truncated file?)", self.path,
                                "re-export or re-copy the asset")
            out = np.lib.stride_tricks.as_strided(
                np.frombuffer(raw, np.uint8, count=need - off, offset=off), (a.count, elem), (stride, 1)
            ).copy().view(dtype).reshape(a.count, nc)
        if a.sparse is not None and a.sparse.count:
            idx_raw, _ = self._view_bytes(a.sparse.indices.bufferView)
            idt = np.dtype(_COMPONENT[a.sparse.indices.componentType])
            ids = np.frombuffer(idx_raw, idt, a.sparse.count, a.sparse.indices.byteOffset or 0)
            val_raw, _ = self._view_bytes(a.sparse.values.bufferView)
            vals = np.frombuffer(val_raw, dtype, a.sparse.count * nc, a.sparse.values.byteOffset or 0)
            out = out.copy()
            out[ids] = vals.reshape(-1, nc)
        if a.normalized and dtype.kind in "iu":
            out = np.maximum(out.astype(np.float32) / np.iinfo(dtype).max, -1.0)
        if a.type.startswith("MAT"):
            k = int(np.sqrt(nc))
            out = out.reshape(-1, k, k).transpose(0, 2, 1)  # glTF matrices are column-major
        return out

    def _image(self, tex_index: int) -> np.ndarray | None:
        import cv2

        tex = self.g.textures[tex_index]
        if tex.source is None:
            return None
        img = self.g.images[tex.source]
        if img.bufferView is not None:
            data, _ = self._view_bytes(img.bufferView)
        elif img.uri and img.uri.startswith("data:"):
            data = base64.b64decode(img.uri.split(",", 1)[1])
        elif img.uri:
            data = (self.path.parent / img.uri).read_bytes()
        else:
            return None
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if arr is None:
            raise DataError(f"texture image {tex.source} cannot be decoded", self.path, "re-export the asset's textures")
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, -1)
        arr = arr[..., [2, 1, 0]] if arr.shape[2] == 3 else arr[..., [2, 1, 0, 3]]
        return np.ascontiguousarray(arr.astype(np.uint8) if arr.dtype == np.uint8 else (arr // 257).astype(np.uint8))

    # ------------------------------------------------------------ meshes
    def _load_primitives(self) -> list[Primitive]:
        g = self.g
        prims = []
        for ni, node in enumerate(g.nodes):
            if node.mesh is None:
                continue
            for p in g.meshes[node.mesh].primitives:
                if p.mode not in (None, 4):  # triangles only
                    continue
                at = p.attributes
                pos = self.accessor(at.POSITION).astype(np.float32)
                faces = (self.accessor(p.indices).reshape(-1, 3) if p.indices is not None
                         else np.arange(len(pos)).reshape(-1, 3)).astype(np.int32)
                uv = self.accessor(at.TEXCOORD_0).astype(np.float32) if at.TEXCOORD_0 is not None else None
                col = None
                if at.COLOR_0 is not None:
                    col = self.accessor(at.COLOR_0).astype(np.float32)
                    if col.shape[1] == 3:
                        col = np.concatenate([col, np.ones_like(col[:, :1])], 1)
                joints = self.accessor(at.JOINTS_0).astype(np.int64) if at.JOINTS_0 is not None else None
                weights = self.accessor(at.WEIGHTS_0).astype(np.float32) if at.WEIGHTS_0 is not None else None
                morph = None
                if p.targets:
                    morph = np.stack([self.accessor(t["POSITION"]) if "POSITION" in t else np.zeros_like(pos)
                                      for t in p.targets]).astype(np.float32)
                base = np.ones(4, np.float32)
                tex = None
                if p.material is not None:
                    pbr = g.materials[p.material].pbrMetallicRoughness
                    if pbr is not None:
                        if pbr.baseColorFactor is not None:
                            base = np.asarray(pbr.baseColorFactor, np.float32)
                        if pbr.baseColorTexture is not None and uv is not None:
                            tex = self._image(pbr.baseColorTexture.index)
                prims.append(Primitive(pos, faces, uv, col, joints, weights, morph, base, tex, ni, node.mesh))
        return prims

    # --------------------------------------------------------- animation
    def _pick_animation(self, animation) -> int | None:
        anims = self.g.animations or []
        if not anims:
            return None
        if animation is None:
            return 0
        if isinstance(animation, str):
            names = [a.name for a in anims]
            if animation not in names:
                raise DataError(f"no animation named '{animation}' (have: {', '.join(self.animation_names)})", self.path,
                                "pass --animation with one of those names")
            return names.index(animation)
        if not 0 <= animation < len(anims):
            raise DataError(f"animation index {animation} out of range (0..{len(anims) - 1})", self.path,
                            "pass an index in range")
        return animation

    @property
    def animation_names(self) -> list[str]:
        return [a.name or f"#{i}" for i, a in enumerate(self.g.animations or [])]

    @property
    def duration(self) -> float:
        if self.animation is None:
            return 0.0
        a = self.g.animations[self.animation]
        return float(max(self.accessor(s.input).max() for s in a.samplers))

    def _sample(self, sampler, t: float) -> np.ndarray:
        times = self.accessor(sampler.input)[:, 0]
        vals = self.accessor(sampler.output)
        interp = sampler.interpolation or "LINEAR"
        if interp == "CUBICSPLINE":  # (in-tangent, value, out-tangent) triplets
            vals3 = vals.reshape(len(times), 3, -1)
            vals = vals3[:, 1]
        vals = vals.reshape(len(times), -1)
        if t <= times[0]:
            return vals[0]
        if t >= times[-1]:
            return vals[-1]
        k = int(np.searchsorted(times, t, side="right") - 1)
        t0, t1 = times[k], times[k + 1]
        s = (t - t0) / max(t1 - t0, 1e-12)
        if interp == "STEP":
            return vals[k]
        if interp == "CUBICSPLINE":
            # glTF stores tangents per unit time: the segment's duration scales them
            return hermite(vals3[k, 1], vals3[k + 1, 1], vals3[k, 2], vals3[k + 1, 0], t1 - t0, s)
        return None if vals is None else (1 - s) * vals[k] + s * vals[k + 1]

    def _local_trs(self, t: float) -> tuple[list[np.ndarray], dict[int, np.ndarray]]:
        g = self.g
        T = [np.asarray(n.translation if n.translation else [0, 0, 0], np.float64) for n in g.nodes]
        Rq = [np.asarray(n.rotation if n.rotation else [0, 0, 0, 1], np.float64) for n in g.nodes]
        S = [np.asarray(n.scale if n.scale else [1, 1, 1], np.float64) for n in g.nodes]
        W: dict[int, np.ndarray] = {}
        if self.animation is not None:
            a = g.animations[self.animation]
            for ch in a.channels:
                node, path = ch.target.node, ch.target.path
                if node is None:
                    continue
                sampler = a.samplers[ch.sampler]
                v = self._sample(sampler, t)
                if path == "rotation":
                    if (sampler.interpolation or "LINEAR") == "LINEAR":
                        times = self.accessor(sampler.input)[:, 0]
                        vals = self.accessor(sampler.output).reshape(len(times), 4).astype(np.float64)
                        if times[0] < t < times[-1]:
                            k = int(np.searchsorted(times, t, side="right") - 1)
                            s = (t - times[k]) / max(times[k + 1] - times[k], 1e-12)
                            v = _slerp(vals[k], vals[k + 1], s)
                    Rq[node] = np.asarray(v, np.float64)
                elif path == "translation":
                    T[node] = np.asarray(v, np.float64)
                elif path == "scale":
                    S[node] = np.asarray(v, np.float64)
                elif path == "weights":
                    W[node] = np.asarray(v, np.float64)
        mats = []
        for i, n in enumerate(g.nodes):
            if n.matrix and not any(c.target.node == i for a in (g.animations or [])[self.animation or 0:][:1]
                                    for c in a.channels):
                mats.append(np.asarray(n.matrix, np.float64).reshape(4, 4).T)
                continue
            M = np.eye(4)
            M[:3, :3] = _quat_to_mat(Rq[i]) * S[i][None]
            M[:3, 3] = T[i]
            mats.append(M)
        return mats, W

    def world_matrices(self, t: float) -> tuple[list[np.ndarray], dict[int, np.ndarray]]:
        local, weights = self._local_trs(t)
        world: list[np.ndarray | None] = [None] * len(local)

        def get(i: int) -> np.ndarray:
            if world[i] is None:
                p = self.parent.get(i)
                world[i] = local[i] if p is None else get(p) @ local[i]
            return world[i]

        return [get(i) for i in range(len(local))], weights

    def pose(self, t: float) -> list[np.ndarray]:
        """World-space vertex positions [V, 3] of every primitive at time ``t`` seconds."""
        world, morph_w = self.world_matrices(t)
        out = []
        for p in self.primitives:
            v = p.positions.astype(np.float64)
            if p.morph_deltas is not None:
                w = morph_w.get(p.node)
                if w is None:
                    w = np.asarray(self.g.meshes[p.mesh].weights or np.zeros(len(p.morph_deltas)), np.float64)
                v = v + np.tensordot(w[: len(p.morph_deltas)], p.morph_deltas, 1)
            skin_i = self.g.nodes[p.node].skin
            if skin_i is not None and p.joints is not None and p.weights is not None:
                skin = self.g.skins[skin_i]
                ibm = (self.accessor(skin.inverseBindMatrices).astype(np.float64) if skin.inverseBindMatrices is not None
                       else np.tile(np.eye(4), (len(skin.joints), 1, 1)))
                J = np.stack([world[j] for j in skin.joints]) @ ibm  # [J, 4, 4]
                wsum = p.weights.sum(1, keepdims=True)
                w = p.weights / np.where(wsum > 0, wsum, 1)
                M = np.einsum("vk,vkij->vij", w, J[p.joints])  # [V, 4, 4]
                v = np.einsum("vij,vj->vi", M[:, :3, :3], v) + M[:, :3, 3]
            else:
                M = world[p.node]
                v = v @ M[:3, :3].T + M[:3, 3]
            out.append(v.astype(np.float32))
        return out

    def merged(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """All primitives at time t as one mesh: (vertices [V, 3], faces [F, 3])."""
        verts = self.pose(t)
        offs = np.cumsum([0] + [len(v) for v in verts])
        faces = np.concatenate([p.faces + o for p, o in zip(self.primitives, offs[:-1])])
        return np.concatenate(verts), faces.astype(np.int32)
