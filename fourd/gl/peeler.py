"""Hardware depth peeling of point splats: K passes, each keeping the nearest splat behind the
previous layer, writing (index, depth, d²) per pixel. Same definition as the torch reference
(:mod:`fourd.render.rasterize_torch`); the result is a :class:`~fourd.structures.fragments.Fragments`.

    with DepthPeeler(W, H) as peeler:
        peeler.upload(points, radii)
        frags = peeler.rasterize(camera, settings)          # or, pass by pass:
        peeler.begin(camera, settings); layer = peeler.rasterize_next_layer()

All multi-pass state (programs, ping-pong framebuffers, buffers) lives on the object.
"""

from __future__ import annotations

import ctypes

import numpy as np
import torch

from fourd.gl.context import headless_context
from fourd.gl.framebuffer import Framebuffer
from fourd.gl.program import compile_program
from fourd.structures.cameras import Cameras
from fourd.structures.fragments import Fragments, RasterSettings, pixel_d2, project_splats

SPRITE_MARGIN = 0.05  # shaders/splat.glsl, sprite_size(): a point sprite's side is 2 r + this


def set_splat_uniforms(prog: int, camera: Cameras, width: int, height: int, near: float, far: float, layer: int,
                       max_point_size: float) -> None:
    """The uniforms of shaders/splat.glsl and the peel fragment shaders, for one OpenCV camera."""
    from OpenGL import GL

    loc = lambda n: GL.glGetUniformLocation(prog, n)  # noqa: E731
    GL.glUniformMatrix3fv(loc("u_R"), 1, GL.GL_TRUE, camera.R[0].numpy().astype(np.float32))
    GL.glUniform3f(loc("u_T"), *camera.T[0].tolist())
    K = camera.K[0]
    GL.glUniform4f(loc("u_K"), float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))
    GL.glUniform1f(loc("u_skew"), float(K[0, 1]))
    GL.glUniform2f(loc("u_size"), float(width), float(height))
    GL.glUniform1f(loc("u_near"), float(near))
    GL.glUniform1f(loc("u_far"), float(far))
    GL.glUniform1f(loc("u_height"), float(height))
    GL.glUniform1i(loc("u_layer"), layer)
    GL.glUniform1i(loc("u_prev_zd"), 0)
    GL.glUniform1i(loc("u_prev_index"), 1)
    GL.glUniform1i(loc("u_points"), 2)
    GL.glUniform1f(loc("u_max_point_size"), max_point_size)


def begin_peel_pass(out: Framebuffer, prev: Framebuffer) -> None:
    """GL state for one peeling pass into ``out``: the previous layer's (index, z) are the textures
    the peel shaders read (units 1 and 0); depth test keeps the nearest remaining splat."""
    from OpenGL import GL

    out.clear({"index": (-1, 0, 0, 0)})
    GL.glEnable(GL.GL_DEPTH_TEST)
    GL.glDepthFunc(GL.GL_LESS)
    GL.glDisable(GL.GL_BLEND)
    GL.glEnable(GL.GL_PROGRAM_POINT_SIZE)
    GL.glActiveTexture(GL.GL_TEXTURE0)
    GL.glBindTexture(GL.GL_TEXTURE_2D, prev.textures[1])
    GL.glActiveTexture(GL.GL_TEXTURE1)
    GL.glBindTexture(GL.GL_TEXTURE_2D, prev.textures[0])


def _host(x) -> torch.Tensor:
    """float32 values in host memory (GL reads them from there), from a tensor on any device or an array."""
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu()
    return torch.from_numpy(np.asarray(x, np.float32))


class IndexFragments(Fragments):
    """Fragments read back as indices only: depths and squared distances follow from them and the
    splats' projection (u, v, z — the contract's formulas, already computed by the rasterizer) on
    first use. The compositor recomputes d² itself, so training never pays for them; the
    visibility test reads only the front layer's depth."""

    def __init__(self, idx: torch.Tensor, u: torch.Tensor, v: torch.Tensor, z: torch.Tensor):
        if idx.dim() != 3:
            raise ValueError(f"Fragments: idx must be [H, W, K], got {list(idx.shape)}")
        self._zd = None
        self._uvz = (u, v, z)
        self.idx = idx

    def _derived(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._zd is None:
            self._zd = _depths_and_d2(self.idx, *self._uvz)
        return self._zd

    zbuf = property(lambda self: self._derived()[0])
    dists = property(lambda self: self._derived()[1])

    def front_depth(self) -> torch.Tensor:
        front = self.idx[..., 0]
        z = self._uvz[2].to(front.device)
        far = torch.full(front.shape, 1e30, device=front.device)
        return torch.where(front >= 0, z[front.clamp_min(0)], far) if z.numel() else far

    def __setattr__(self, name, value):
        if name == "idx" and "idx" in self.__dict__ and self._zd is None:
            self._derived()  # depths and d² belong to the old indices: derive them before they change
        super().__setattr__(name, value)

    def reindex(self, local: torch.Tensor, keep: torch.Tensor) -> "Fragments":
        idx = torch.where(self.idx >= 0, local[self.idx.clamp_min(0)], self.idx)
        out = IndexFragments(idx, *(t[keep.to(t.device)] for t in self._uvz))
        out._zd = self._zd
        return out

    def to(self, device) -> "Fragments":
        out = IndexFragments(self.idx.to(device), *self._uvz)
        if self._zd is not None:
            out._zd = (self._zd[0].to(device), self._zd[1].to(device))
        return out


def _depths_and_d2(idx: torch.Tensor, u: torch.Tensor, v: torch.Tensor, z: torch.Tensor):
    neg = torch.tensor(-1.0, device=idx.device)
    if z.numel() == 0:
        return torch.full(idx.shape, -1.0, device=idx.device), torch.full(idx.shape, -1.0, device=idx.device)
    u, v, z = u.to(idx.device), v.to(idx.device), z.to(idx.device)
    H, W, _ = idx.shape
    valid = idx >= 0
    d2 = pixel_d2(u, v, idx, torch.arange(W, device=idx.device)[None, :, None],
                  torch.arange(H, device=idx.device)[:, None, None])
    return torch.where(valid, z[idx.clamp_min(0)], neg), torch.where(valid, d2, neg)


def fragments_from_indices(idx: torch.Tensor, projected: tuple | None) -> Fragments:
    """Fragments from the chosen points' indices and the splats' projection ``(u, v, z, r)`` (None:
    no points); depths and d² by the contract's formulas, on demand."""
    if projected is None:
        empty = torch.zeros(0)
        return IndexFragments(idx, empty, empty, empty)
    return IndexFragments(idx, *projected[:3])


class DepthPeeler:
    def __init__(self, width: int, height: int, context=None):
        self.ctx = context or headless_context()  # before importing OpenGL: it fixes the GL platform
        from OpenGL import GL

        self.width, self.height = int(width), int(height)
        self.points_prog = compile_program({"vertex": "peel_points.vert", "fragment": "peel.frag"})
        self.quads_prog = compile_program({"vertex": "peel_quads.vert", "fragment": "peel.frag"})
        self.fbos = [Framebuffer(self.width, self.height, {"index": "r32i", "zd": "rg32f"}) for _ in range(2)]
        self.max_point_size = float(GL.glGetFloatv(GL.GL_POINT_SIZE_RANGE)[1])
        self.vao = GL.glGenVertexArrays(1)
        self.vbo_pos, self.vbo_rad, self.vbo_huge, self.tbo = GL.glGenBuffers(4)
        self.tbo_tex = GL.glGenTextures(1)
        self.quad_vao = GL.glGenVertexArrays(1)
        self.n_points = 0
        self._points = torch.zeros(0, 3)
        self._radii = torch.zeros(0)
        self._layer = 0
        self._n_huge = 0

    # ----------------------------------------------------------- lifetime
    def __enter__(self) -> "DepthPeeler":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        from OpenGL import GL

        if self.vao is None:
            return
        self.ctx.make_current()
        for f in self.fbos:
            f.release()
        GL.glDeleteBuffers(4, [self.vbo_pos, self.vbo_rad, self.vbo_huge, self.tbo])
        GL.glDeleteTextures([self.tbo_tex])
        GL.glDeleteVertexArrays(2, [self.vao, self.quad_vao])
        GL.glDeleteProgram(self.points_prog)
        GL.glDeleteProgram(self.quads_prog)
        self.vao = None

    # --------------------------------------------------------------- data
    def upload(self, points, radii) -> None:
        """points [P, 3], radii [P] (world units); stays on the GPU until the next upload."""
        from OpenGL import GL

        self.ctx.make_current()
        pts = _host(points).contiguous()
        rad = _host(radii).reshape(-1)
        if rad.numel() == 1:
            rad = rad.expand(pts.shape[0])
        rad = rad.contiguous()
        if pts.dim() != 2 or pts.shape[1] != 3 or rad.shape != (pts.shape[0],):
            raise ValueError(f"points [P, 3] and radii [P] expected, got {list(pts.shape)}, {list(rad.shape)}")
        self._points, self._radii, self.n_points = pts, rad, pts.shape[0]
        GL.glBindVertexArray(self.vao)
        for loc, vbo, arr, size in ((0, self.vbo_pos, pts, 3), (1, self.vbo_rad, rad, 1)):
            GL.glBindBuffer(GL.GL_ARRAY_BUFFER, vbo)
            data = arr.numpy()
            GL.glBufferData(GL.GL_ARRAY_BUFFER, max(data.nbytes, 4), data if data.nbytes else None, GL.GL_DYNAMIC_DRAW)
            GL.glEnableVertexAttribArray(loc)
            GL.glVertexAttribPointer(loc, size, GL.GL_FLOAT, GL.GL_FALSE, 0, ctypes.c_void_p(0))
        GL.glBindVertexArray(0)
        self._huge_ready = False

    def _prepare_huge(self, camera: Cameras) -> None:
        """Splats wider than the largest point sprite, or centred off-screen yet reaching into the
        image (GL would clip the whole sprite), go through the instanced-quad program."""
        from OpenGL import GL

        self._n_huge = 0
        self._projected = None
        if self.n_points == 0:
            return
        u, v, z, r = self._projected = project_splats(self._points, self._radii, camera)
        W, H = self.view
        off = (u < 0) | (v < 0) | (u >= W) | (v >= H)
        reaches = (u + r > 0) & (v + r > 0) & (u - r < W) & (v - r < H)
        front = (z > self.settings.near) & (z < self.settings.far)
        huge = (front & (((2 * r + SPRITE_MARGIN) > self.max_point_size) | (off & reaches))).nonzero()[:, 0].int().contiguous()
        self._n_huge = int(huge.numel())
        if not self._n_huge:
            return
        xyzr = torch.cat([self._points, self._radii[:, None]], 1).contiguous().numpy()
        GL.glBindBuffer(GL.GL_TEXTURE_BUFFER, self.tbo)
        GL.glBufferData(GL.GL_TEXTURE_BUFFER, xyzr.nbytes, xyzr, GL.GL_DYNAMIC_DRAW)
        GL.glBindTexture(GL.GL_TEXTURE_BUFFER, self.tbo_tex)
        GL.glTexBuffer(GL.GL_TEXTURE_BUFFER, GL.GL_RGBA32F, self.tbo)
        GL.glBindVertexArray(self.quad_vao)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.vbo_huge)
        data = huge.numpy()
        GL.glBufferData(GL.GL_ARRAY_BUFFER, data.nbytes, data, GL.GL_DYNAMIC_DRAW)
        GL.glEnableVertexAttribArray(0)
        GL.glVertexAttribIPointer(0, 1, GL.GL_INT, 0, ctypes.c_void_p(0))
        GL.glVertexAttribDivisor(0, 1)
        GL.glBindVertexArray(0)

    # -------------------------------------------------------------- peeling
    def _fits(self, width: int, height: int) -> bool:
        return (width, height) == (self.width, self.height)

    def begin(self, camera: Cameras, settings: RasterSettings) -> None:
        if len(camera) != 1:
            raise ValueError("one camera at a time")
        if not self._fits(int(camera.W[0]), int(camera.H[0])):
            raise ValueError(f"camera is {int(camera.W[0])}×{int(camera.H[0])} but the peeler is "
                             f"{self.width}×{self.height}")
        self.ctx.make_current()
        self.view = (int(camera.W[0]), int(camera.H[0]))  # the image drawn (≤ the allocation in a K-buffer)
        self.camera, self.settings = camera.to("cpu", torch.float32), settings
        self._prepare_huge(self.camera)
        self._layer = 0

    def _uniforms(self, prog: int) -> None:
        set_splat_uniforms(prog, self.camera, *self.view, self.settings.near, self.settings.far,
                           self._layer, self.max_point_size)

    def draw_layer(self) -> Framebuffer:
        """Render the next layer into a framebuffer (no read-back)."""
        from OpenGL import GL

        out, prev = self.fbos[self._layer % 2], self.fbos[(self._layer + 1) % 2]
        begin_peel_pass(out, prev)
        GL.glActiveTexture(GL.GL_TEXTURE2)
        GL.glBindTexture(GL.GL_TEXTURE_BUFFER, self.tbo_tex)
        if self.n_points:
            GL.glUseProgram(self.points_prog)
            self._uniforms(self.points_prog)
            GL.glBindVertexArray(self.vao)
            GL.glDrawArrays(GL.GL_POINTS, 0, self.n_points)
        if self._n_huge:
            GL.glUseProgram(self.quads_prog)
            self._uniforms(self.quads_prog)
            GL.glBindVertexArray(self.quad_vao)
            GL.glDrawArraysInstanced(GL.GL_TRIANGLE_STRIP, 0, 4, self._n_huge)
        GL.glBindVertexArray(0)
        self._layer += 1
        return out

    def rasterize_next_layer(self) -> tuple[np.ndarray, np.ndarray]:
        """Draw and read back one layer: (index [H, W] int32, zd [H, W, 2] float32), top row first."""
        fbo = self.draw_layer()
        return fbo.read("index"), fbo.read("zd")

    def rasterize(self, camera: Cameras, settings: RasterSettings, device="cpu", read_depths: bool = False
                  ) -> Fragments:
        """All K layers as Fragments. On a CUDA ``device`` with CUDA-GL interop available, layers go
        from GL textures to CUDA tensors directly; otherwise through host memory.

        Only the indices are read back by default; depths and d² are then computed from them with
        the contract's formulas (a third of the read-back). ``read_depths`` reads GL's own values."""
        if torch.device(device).type == "cuda":
            from fourd.gl.interop import cuda_gl_available

            if cuda_gl_available():
                return self._rasterize_interop(camera, settings)
        self.begin(camera, settings)
        H, W, K = self.height, self.width, settings.K
        idx = np.full((H, W, K), -1, np.int64)
        zd = np.full((H, W, K, 2), -1.0, np.float32) if read_depths else None
        for k in range(K):
            fbo = self.draw_layer()
            i = fbo.read("index")
            idx[..., k] = i
            if read_depths:
                zd[..., k, :] = np.where(i[..., None] >= 0, fbo.read("zd"), -1.0)
            if not (i >= 0).any():
                break  # every later layer is empty too
        idx_t = torch.from_numpy(idx)
        if read_depths:
            return Fragments(idx_t, torch.from_numpy(zd[..., 0].copy()), torch.from_numpy(zd[..., 1].copy()))
        return fragments_from_indices(idx_t, self._projected)

    def _rasterize_interop(self, camera: Cameras, settings: RasterSettings) -> Fragments:
        from fourd.gl.interop import TextureReader

        if not hasattr(self, "_readers"):
            self._readers = [(TextureReader(f.textures[0], self.height, self.width, 1, torch.int32),
                              TextureReader(f.textures[1], self.height, self.width, 2, torch.float32))
                             for f in self.fbos]
        self.begin(camera, settings)
        idx, zd = [], []
        for k in range(settings.K):
            self.draw_layer()
            r_idx, r_zd = self._readers[k % 2]
            i = r_idx.read()[..., 0].long()
            idx.append(i)
            d = r_zd.read()
            zd.append(torch.where(i[..., None] >= 0, d, torch.full_like(d, -1.0)))
        idx_t, zd_t = torch.stack(idx, -1), torch.stack(zd, -2)
        return Fragments(idx_t, zd_t[..., 0].contiguous(), zd_t[..., 1].contiguous())
