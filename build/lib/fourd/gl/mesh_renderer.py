"""Rasterize textured triangle meshes through OpenGL: colour, exact coverage mask and depth.

Used to synthesize captures from animated glTF assets and to preview meshes. Topology, UVs and
textures are uploaded once; vertex positions change per frame (:meth:`MeshRenderer.update`).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from fourd.gl.context import headless_context
from fourd.gl.framebuffer import Framebuffer
from fourd.gl.program import compile_program
from fourd.structures.cameras import Cameras


@dataclass
class MeshPart:
    """One drawable part: topology and surface attributes (positions come per frame)."""

    faces: np.ndarray  # [F, 3] int
    uvs: np.ndarray | None = None  # [V, 2]
    colors: np.ndarray | None = None  # [V, 4] in [0, 1]
    base_color: np.ndarray | None = None  # [4]
    texture: np.ndarray | None = None  # [h, w, 3|4] uint8, top row first


@dataclass
class MeshRender:
    rgb: np.ndarray  # [H, W, 3] uint8
    mask: np.ndarray  # [H, W] bool, exact triangle coverage
    depth: np.ndarray  # [H, W] float32 camera z, 0 where empty


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals [V, 3]."""
    fn = np.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]])
    n = np.zeros_like(verts)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


class MeshRenderer:
    def __init__(self, parts: list[MeshPart], n_verts: list[int], context=None):
        self.ctx = context or headless_context()  # before importing OpenGL: it fixes the GL platform
        from OpenGL import GL

        self.program = compile_program({"vertex": "mesh.vert", "fragment": "mesh.frag"})
        self.parts = parts
        self.n_verts = n_verts
        self._fbo: Framebuffer | None = None
        self._vaos, self._pos_vbos, self._nrm_vbos, self._textures = [], [], [], []
        for part, nv in zip(parts, n_verts):
            vao = GL.glGenVertexArrays(1)
            GL.glBindVertexArray(vao)
            pos_vbo = self._buffer(0, np.zeros((nv, 3), np.float32), 3, GL.GL_DYNAMIC_DRAW)
            nrm_vbo = self._buffer(1, np.zeros((nv, 3), np.float32), 3, GL.GL_DYNAMIC_DRAW)
            uv = part.uvs if part.uvs is not None else np.zeros((nv, 2), np.float32)
            self._buffer(2, np.asarray(uv, np.float32), 2, GL.GL_STATIC_DRAW)
            col = part.colors if part.colors is not None else np.ones((nv, 4), np.float32)
            self._buffer(3, np.asarray(col, np.float32), 4, GL.GL_STATIC_DRAW)
            ebo = GL.glGenBuffers(1)
            GL.glBindBuffer(GL.GL_ELEMENT_ARRAY_BUFFER, ebo)
            idx = np.ascontiguousarray(part.faces, np.uint32)
            GL.glBufferData(GL.GL_ELEMENT_ARRAY_BUFFER, idx.nbytes, idx, GL.GL_STATIC_DRAW)
            GL.glBindVertexArray(0)
            tex = None
            if part.texture is not None:
                tex = GL.glGenTextures(1)
                GL.glBindTexture(GL.GL_TEXTURE_2D, tex)
                img = np.ascontiguousarray(part.texture, np.uint8)
                fmt = GL.GL_RGBA if img.shape[2] == 4 else GL.GL_RGB
                GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
                GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, GL.GL_RGBA8, img.shape[1], img.shape[0], 0, fmt,
                                GL.GL_UNSIGNED_BYTE, img)
                GL.glGenerateMipmap(GL.GL_TEXTURE_2D)
                GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MIN_FILTER, GL.GL_LINEAR_MIPMAP_LINEAR)
                GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MAG_FILTER, GL.GL_LINEAR)
                GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_WRAP_S, GL.GL_REPEAT)
                GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_WRAP_T, GL.GL_REPEAT)
            self._vaos.append(vao)
            self._pos_vbos.append(pos_vbo)
            self._nrm_vbos.append(nrm_vbo)
            self._textures.append(tex)

    @staticmethod
    def _buffer(location: int, data: np.ndarray, size: int, usage) -> int:
        from OpenGL import GL

        vbo = GL.glGenBuffers(1)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, vbo)
        data = np.ascontiguousarray(data, np.float32)
        GL.glBufferData(GL.GL_ARRAY_BUFFER, data.nbytes, data, usage)
        GL.glEnableVertexAttribArray(location)
        GL.glVertexAttribPointer(location, size, GL.GL_FLOAT, GL.GL_FALSE, 0, ctypes.c_void_p(0))
        return vbo

    def update(self, positions: list[np.ndarray]) -> None:
        """Upload new vertex positions [V, 3] per part (normals are recomputed)."""
        from OpenGL import GL

        self.ctx.make_current()
        if len(positions) != len(self.parts):
            raise ValueError(f"expected positions for {len(self.parts)} parts, got {len(positions)}")
        for part, v, pv, nv, n in zip(self.parts, positions, self._pos_vbos, self._nrm_vbos, self.n_verts):
            if v.shape != (n, 3):
                raise ValueError(f"part positions must be [{n}, 3], got {list(v.shape)}")
            normals = vertex_normals(v.astype(np.float64), part.faces).astype(np.float32)
            for vbo, arr in ((pv, np.ascontiguousarray(v, np.float32)), (nv, normals)):
                GL.glBindBuffer(GL.GL_ARRAY_BUFFER, vbo)
                GL.glBufferSubData(GL.GL_ARRAY_BUFFER, 0, arr.nbytes, arr)

    def render(self, camera: Cameras, near: float, far: float, up=(0.0, 1.0, 0.0), lit: bool = True,
               background=(0, 0, 0)) -> MeshRender:
        """Render with one (undistorted) camera. Background pixels get ``background`` (0–255)."""
        from OpenGL import GL

        if len(camera) != 1:
            raise ValueError("render takes exactly one camera")
        self.ctx.make_current()
        H, W = int(camera.H[0]), int(camera.W[0])
        if self._fbo is None or (self._fbo.width, self._fbo.height) != (W, H):
            if self._fbo is not None:
                self._fbo.release()
            self._fbo = Framebuffer(W, H, {"color": "rgba8", "depth": "r32f"})
        fbo = self._fbo
        fbo.clear()
        GL.glEnable(GL.GL_DEPTH_TEST)
        GL.glDepthFunc(GL.GL_LESS)
        GL.glDisable(GL.GL_CULL_FACE)
        GL.glDisable(GL.GL_BLEND)
        GL.glUseProgram(self.program)
        loc = lambda n: GL.glGetUniformLocation(self.program, n)  # noqa: E731
        view = camera.gl_view()[0].double().cpu().numpy()
        proj = camera.gl_projection(near, far)[0].double().cpu().numpy()
        GL.glUniformMatrix4fv(loc("u_view"), 1, GL.GL_TRUE, view.astype(np.float32))
        GL.glUniformMatrix4fv(loc("u_proj"), 1, GL.GL_TRUE, proj.astype(np.float32))
        GL.glUniform3f(loc("u_up"), *map(float, np.asarray(up) / np.linalg.norm(up)))
        GL.glUniform3f(loc("u_eye"), *map(float, camera.centers[0].tolist()))
        GL.glUniform1i(loc("u_lit"), int(lit))
        GL.glUniform1i(loc("u_texture"), 0)
        for part, vao, tex in zip(self.parts, self._vaos, self._textures):
            bc = part.base_color if part.base_color is not None else np.ones(4)
            GL.glUniform4f(loc("u_base_color"), *map(float, bc))
            GL.glUniform1i(loc("u_has_texture"), int(tex is not None))
            if tex is not None:
                GL.glActiveTexture(GL.GL_TEXTURE0)
                GL.glBindTexture(GL.GL_TEXTURE_2D, tex)
            GL.glBindVertexArray(vao)
            GL.glDrawElements(GL.GL_TRIANGLES, part.faces.size, GL.GL_UNSIGNED_INT, ctypes.c_void_p(0))
        GL.glBindVertexArray(0)
        GL.glFinish()
        rgba = fbo.read("color")
        depth = fbo.read("depth")
        mask = rgba[..., 3] > 0
        rgb = rgba[..., :3].copy()
        rgb[~mask] = np.asarray(background, np.uint8)
        return MeshRender(rgb, mask, np.where(mask, depth, 0).astype(np.float32))

    def release(self) -> None:
        from OpenGL import GL

        self.ctx.make_current()
        if self._fbo is not None:
            self._fbo.release()
        GL.glDeleteVertexArrays(len(self._vaos), self._vaos)
        GL.glDeleteTextures([t for t in self._textures if t is not None] or [0])
        GL.glDeleteProgram(self.program)
