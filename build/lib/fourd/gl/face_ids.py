"""Hard visibility through OpenGL: the index of the nearest triangle at every pixel centre.

The torch mesh rasterizer (:mod:`fourd.gen.softras`) can take these ids instead of searching
for the nearest covering triangle itself; it then computes differentiable barycentrics for
just those (pixel, triangle) pairs.
"""

from __future__ import annotations

import ctypes

import numpy as np
import torch
from torch import Tensor

from fourd.gl.context import headless_context
from fourd.gl.framebuffer import Framebuffer
from fourd.gl.program import compile_program
from fourd.structures.cameras import Cameras


class GLFaceIds:
    def __init__(self, faces: Tensor | np.ndarray, context=None):
        self.ctx = context or headless_context()
        from OpenGL import GL

        self.program = compile_program({"vertex": "face_id.vert", "fragment": "face_id.frag"})
        idx = np.ascontiguousarray(np.asarray(faces.cpu() if isinstance(faces, Tensor) else faces), np.uint32)
        self.n_index = idx.size
        self.vao = GL.glGenVertexArrays(1)
        GL.glBindVertexArray(self.vao)
        self.vbo = GL.glGenBuffers(1)
        self.ebo = GL.glGenBuffers(1)
        GL.glBindBuffer(GL.GL_ELEMENT_ARRAY_BUFFER, self.ebo)
        GL.glBufferData(GL.GL_ELEMENT_ARRAY_BUFFER, idx.nbytes, idx, GL.GL_STATIC_DRAW)
        GL.glBindVertexArray(0)
        self._fbo: Framebuffer | None = None

    def __call__(self, verts: Tensor, camera: Cameras, near: float = 1e-3, far: float = 1e3) -> Tensor:
        """Nearest triangle per pixel [H, W] (long, −1 where empty) for one undistorted camera."""
        from OpenGL import GL

        self.ctx.make_current()
        H, W = int(camera.H[0]), int(camera.W[0])
        if self._fbo is None or (self._fbo.width, self._fbo.height) != (W, H):
            if self._fbo is not None:
                self._fbo.release()
            self._fbo = Framebuffer(W, H, {"face": "r32f"})
        self._fbo.clear()
        v = np.ascontiguousarray(verts.detach().cpu().numpy(), np.float32)
        GL.glBindVertexArray(self.vao)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.vbo)
        GL.glBufferData(GL.GL_ARRAY_BUFFER, v.nbytes, v, GL.GL_STREAM_DRAW)
        GL.glEnableVertexAttribArray(0)
        GL.glVertexAttribPointer(0, 3, GL.GL_FLOAT, GL.GL_FALSE, 0, ctypes.c_void_p(0))
        GL.glEnable(GL.GL_DEPTH_TEST)
        GL.glDepthFunc(GL.GL_LESS)
        GL.glDisable(GL.GL_CULL_FACE)
        GL.glDisable(GL.GL_BLEND)
        GL.glUseProgram(self.program)
        view = camera.gl_view()[0].double().cpu().numpy().astype(np.float32)
        proj = camera.gl_projection(near, far)[0].double().cpu().numpy().astype(np.float32)
        GL.glUniformMatrix4fv(GL.glGetUniformLocation(self.program, "u_view"), 1, GL.GL_TRUE, view)
        GL.glUniformMatrix4fv(GL.glGetUniformLocation(self.program, "u_proj"), 1, GL.GL_TRUE, proj)
        GL.glDrawElements(GL.GL_TRIANGLES, self.n_index, GL.GL_UNSIGNED_INT, ctypes.c_void_p(0))
        GL.glBindVertexArray(0)
        GL.glFinish()
        ids = self._fbo.read("face")
        return torch.from_numpy(np.rint(ids).astype(np.int64) - 1)

    def release(self) -> None:
        from OpenGL import GL

        self.ctx.make_current()
        if self._fbo is not None:
            self._fbo.release()
        GL.glDeleteBuffers(2, [self.vbo, self.ebo])
        GL.glDeleteVertexArrays(1, [self.vao])
