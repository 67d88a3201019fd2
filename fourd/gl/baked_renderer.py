"""Real-time rendering of baked frames: the K nearest splats of each pixel composited front to back.

Three methods, the same image (the K nearest in (depth, index) order, blended front to back over
the background; the same splat and α definitions as the training renderer):

* ``sorted`` — one pass. Every splat has one depth (its centre's camera z), so sorting the points
  by (z, index) once per view puts every pixel's fragments in the peel's order. The points are
  drawn in that order (an index buffer sorted on the CPU); the stencil buffer counts the fragments
  that cover each pixel centre and passes only the first K, which are blended front to back
  (ONE_MINUS_DST_ALPHA, ONE). GL 3.3; the fastest on a software rasterizer, where the cost is per
  point drawn (bench_viewer.py).
* ``kbuffer`` — one pass into per-pixel fragment lists, the K nearest composited in a compute pass
  (GL 4.3+; no CPU work per view).
* ``peel`` — K depth-peeling passes, each blended into an accumulation buffer: the reference.

The result goes into a texture that is read back (headless) or drawn to the window. Frames with
view tables (``fourd bake --appearance views``) are drawn by the same shaders compiled with
``VIEWS``: the tables go into texture buffers and the vertex shader blends the nearest training
cameras' colours as the model does, choosing the cameras for each render.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np
import torch

from fourd.bake.format import BakedFrame, pack_views, view_sh_steps
from fourd.console import log
from fourd.errors import FourdError
from fourd.gl.context import headless_context
from fourd.gl.framebuffer import Framebuffer
from fourd.gl.kbuffer import KMAX
from fourd.gl.peeler import begin_peel_pass, set_splat_uniforms
from fourd.gl.program import compile_program
from fourd.structures.cameras import Cameras

MODE_IDS = {"rgb": 0, "depth": 1, "alpha": 2, "radius": 3}
METHODS = ("auto", "sorted", "kbuffer", "peel")
MAX_K_SORTED = 255  # the stencil buffer's 8 bits count the fragments of a pixel
MAX_SELECT = 8  # shaders/baked_points.vert
MIN_K_ONE_PASS = 3  # below this, K peeling passes are cheaper than one pass through fragment lists
_TABLE_UNIT = 4  # first texture unit of the view tables (0 and 1 hold the previous peel layer)


def choose_method(ctx, method: str) -> tuple[str, str | None]:
    """(method to use, a line saying why when "auto" could not take its first choice). "auto": one
    sorted pass on a software rasterizer (its cost is per point drawn; bench_viewer.py), the
    K-buffer on a hardware GL 4.3+ (no CPU sort per view), else one sorted pass."""
    from fourd.gl.kbuffer import kbuffer_support

    if method not in METHODS:
        raise FourdError(f"unknown renderer '{method}'", "FOURD_RENDERER",
                         "set FOURD_RENDERER to " + ", ".join(METHODS[:-1]) + " or " + METHODS[-1])
    why = kbuffer_support(ctx) if method in ("auto", "kbuffer") else None
    if method == "kbuffer" and why:
        raise FourdError(f"the one-pass K-buffer renderer needs {why}", fix="set FOURD_RENDERER=sorted (or peel)")
    if method != "auto":
        return method, None
    if getattr(ctx, "is_software", True):
        return "sorted", None
    if why:
        return "sorted", f"viewer: one sorted pass (no K-buffer: {why})"
    return "kbuffer", None


def depth_order(z: np.ndarray) -> np.ndarray:
    """argsort of float32 depths, equal depths by index (a stable sort's answer): one sort of
    64-bit keys (depth bits mapped to unsigned order, then the index) — at 250k points ~2 ms,
    where numpy's stable argsort takes ~20 (float32 depths tie often: thousands per frame).
    −0 sorts before +0; both are behind the near plane and never drawn."""
    b = np.ascontiguousarray(z, np.float32).view(np.int32)
    u = np.where(b < 0, ~b, b | np.int32(-2**31)).view(np.uint32)
    key = (u.astype(np.uint64) << np.uint64(32)) | np.arange(z.size, dtype=np.uint64)
    key.sort()
    return (key & np.uint64(0xFFFFFFFF)).astype(np.uint32)


class BakedRenderer:
    """``method``: "sorted" (one pass in depth order, K counted in the stencil buffer), "kbuffer"
    (one pass into per-pixel fragment lists, the K nearest composited in a compute pass; GL 4.3+),
    "peel" (K depth-peeling passes; the reference) or "auto" (see :func:`choose_method`);
    default: the environment variable FOURD_RENDERER, else auto."""

    def __init__(self, width: int, height: int, context=None, method: str | None = None):
        self.ctx = context or headless_context()  # a window's context when the viewer passes one
        from OpenGL import GL

        if method is None:  # fourd view / fourd render: the environment chooses, like FOURD_GL
            method = os.environ.get("FOURD_RENDERER", "auto").strip().lower() or "auto"
        self.method, why = choose_method(self.ctx, method)
        if why:
            log(f"[yellow]{why}[/]")
        stages = {"vertex": "baked_points.vert", "fragment": "peel.frag"}
        self.peel = self.peel_compact = compile_program(stages, {"BAKED": 1})
        self.peel_views = compile_program(stages, {"BAKED": 1, "VIEWS": 1})
        stages = {"vertex": "baked_points.vert", "fragment": "sorted_splat.frag"}
        self.sorted_compact = compile_program(stages, {"BAKED": 1})
        self.sorted_views = compile_program(stages, {"BAKED": 1, "VIEWS": 1})
        self.sorted = self.sorted_compact
        self.ebo = GL.glGenBuffers(1)  # the draw order of the sorted pass
        self._xyz = np.zeros((0, 3), np.float32)
        self._order_key = self._ebo_key = None  # the draw order computed, and the one in the index buffer
        self._uploads = 0
        self.nodes = None
        self._resolve_progs: dict[int, int] = {}
        if self.method == "kbuffer":
            stages = {"vertex": "baked_points.vert", "fragment": "kbuffer_append.frag"}
            self.append_compact = compile_program(stages, {"BAKED": 1})
            self.append_views = compile_program(stages, {"BAKED": 1, "VIEWS": 1})
            self.last_fragments = 0
        self.accumulate = compile_program({"vertex": "fullscreen.vert", "fragment": "accumulate.frag"})
        self.present = compile_program({"vertex": "fullscreen.vert", "fragment": "present.frag"})
        self.max_point_size = float(GL.glGetFloatv(GL.GL_POINT_SIZE_RANGE)[1])
        self.vao = GL.glGenVertexArrays(1)
        self.empty_vao = GL.glGenVertexArrays(1)
        self.vbos = GL.glGenBuffers(7)
        self.table_buffers = GL.glGenBuffers(3)  # src, logit, shv
        self.table_textures = GL.glGenTextures(3)
        self.max_texels = int(GL.glGetIntegerv(GL.GL_MAX_TEXTURE_BUFFER_SIZE))
        self.views = None  # the uploaded frame's ViewTables
        self.n = 0
        self.radius_range = (0.0, 1.0)
        self.width = self.height = 0
        self.view = (int(width), int(height))
        self.fbos: list[Framebuffer] = []
        self.resize(width, height)

    def resize(self, width: int, height: int) -> None:
        if (width, height) == (self.width, self.height):
            return
        for f in self.fbos:
            f.release()
        self.width, self.height = int(width), int(height)
        if self.method == "kbuffer":
            from fourd.gl.kbuffer import NodeBuffer

            if self.nodes is not None:
                self.nodes.release()
            self.nodes = NodeBuffer(self.width, self.height, 5)
        self.fbos = [Framebuffer(width, height, {"index": "r32i", "zd": "rg32f", "rgba": "rgba16f"}) for _ in range(2)]
        self.accum = Framebuffer(width, height, {"rgba": "rgba16f"}, stencil=True)
        self.output = Framebuffer(width, height, {"color": "rgba8"})
        self.fbos.extend([self.accum, self.output])
        self._peels = self.fbos[:2]

    def upload(self, f: BakedFrame) -> None:
        from OpenGL import GL

        self.ctx.make_current()
        n = f.xyz.shape[0]
        sh = f.sh if f.sh is not None else torch.zeros(n, 3, 3)
        rgb = f.views.fallback if f.views is not None else f.rgb
        arrays = [(f.xyz, 3), (f.radius[:, None], 1), (f.density[:, None], 1), (rgb, 3),
                  (sh[:, 0], 3), (sh[:, 1], 3), (sh[:, 2], 3)]
        GL.glBindVertexArray(self.vao)
        for loc, ((a, size), vbo) in enumerate(zip(arrays, self.vbos)):
            data = np.ascontiguousarray(a.detach().float().cpu().numpy())
            if loc == 0:
                self._xyz = data  # the sorted pass orders the points by depth on the CPU
            GL.glBindBuffer(GL.GL_ARRAY_BUFFER, vbo)
            GL.glBufferData(GL.GL_ARRAY_BUFFER, max(data.nbytes, 4), data if data.nbytes else None, GL.GL_DYNAMIC_DRAW)
            GL.glEnableVertexAttribArray(loc)
            GL.glVertexAttribPointer(loc, size, GL.GL_FLOAT, GL.GL_FALSE, 0, ctypes.c_void_p(0))
        GL.glBindVertexArray(0)
        self.n = n
        self._uploads += 1
        if n:
            self.radius_range = (float(f.radius.min()), float(f.radius.max()) + 1e-9)
        self.views = f.views
        self.peel = self.peel_compact
        self.sorted = self.sorted_compact
        if self.method == "kbuffer":
            self.append = self.append_compact
        if f.views is not None and n:
            self._upload_tables(f.views, n)
            self.peel = self.peel_views
            self.sorted = self.sorted_views
            if self.method == "kbuffer":
                self.append = self.append_views

    def _upload_tables(self, v, n: int) -> None:
        from OpenGL import GL

        S = v.rgb.shape[0]
        if S * n > self.max_texels:
            raise FourdError(f"view tables of {S} cameras × {n} points exceed this GL's texture-buffer limit "
                             f"({self.max_texels} texels)", fix="bake with --appearance compact")
        packed = pack_views(v)
        tables = [(packed["src"], GL.GL_RGBA8), (packed["logit"], GL.GL_R16F)]
        if v.sh is not None:
            q = packed["shv"].reshape(n, -1)
            q = torch.cat([q, torch.zeros(n, (-q.shape[1]) % 4, dtype=torch.int8)], 1)  # whole RGBA8I texels
            tables.append((q, GL.GL_RGBA8I))
            self._sh = (v.sh.shape[1], q.shape[1] // 4, view_sh_steps(v.sh))
        else:
            self._sh = (0, 0, [])
        for (data, fmt), buf, tex in zip(tables, self.table_buffers, self.table_textures):
            arr = np.ascontiguousarray(data.numpy())
            GL.glBindBuffer(GL.GL_TEXTURE_BUFFER, buf)
            GL.glBufferData(GL.GL_TEXTURE_BUFFER, arr.nbytes, arr, GL.GL_DYNAMIC_DRAW)
            GL.glBindTexture(GL.GL_TEXTURE_BUFFER, tex)
            GL.glTexBuffer(GL.GL_TEXTURE_BUFFER, fmt, buf)
        GL.glBindBuffer(GL.GL_TEXTURE_BUFFER, 0)

    def _set_view_uniforms(self, prog: int, eye: torch.Tensor) -> None:
        from OpenGL import GL

        v = self.views
        sel = v.nearest(eye).tolist()[:MAX_SELECT]
        loc = lambda n: GL.glGetUniformLocation(prog, n)  # noqa: E731
        for i, name in enumerate(("u_src", "u_logit", "u_shv")):
            GL.glActiveTexture(GL.GL_TEXTURE0 + _TABLE_UNIT + i)
            GL.glBindTexture(GL.GL_TEXTURE_BUFFER, self.table_textures[i])
            GL.glUniform1i(loc(name), _TABLE_UNIT + i)
        GL.glActiveTexture(GL.GL_TEXTURE0)
        GL.glUniform1i(loc("u_n"), self.n)
        GL.glUniform1i(loc("u_nsel"), len(sel))
        GL.glUniform1iv(loc("u_sel"), len(sel), np.asarray(sel, np.int32))
        GL.glUniform3fv(loc("u_src_eye"), len(sel), np.ascontiguousarray(v.centers[sel].numpy(), np.float32))
        GL.glUniform1f(loc("u_prior"), v.prior)
        GL.glUniform1f(loc("u_sh_scale"), v.sh_scale)
        basis, texels, steps = self._sh
        GL.glUniform1i(loc("u_sh_basis"), basis)
        GL.glUniform1i(loc("u_sh_texels"), texels)
        if basis:
            GL.glUniform1fv(loc("u_sh_step"), basis, np.asarray(steps, np.float32))

    def render(self, camera: Cameras, K: int = 8, background=(0.0, 0.0, 0.0), mode: str = "rgb",
               radius_scale: float = 1.0, near: float = 0.01, far: float = 100.0, target: int | None = None,
               fraction: float = 1.0) -> None:
        """Draw into the output texture (or into framebuffer ``target``, e.g. 0 for the window).

        ``fraction`` < 1 draws only that share of the points (they are stored in random order, so a
        prefix is an even subsample) with radii grown by 1/sqrt(fraction): a level of detail for
        interaction, where the per-point cost of a software rasterizer dominates."""
        fraction = float(min(max(fraction, 1e-3), 1.0))
        radius_scale = radius_scale / fraction ** 0.5
        count = max(1, int(round(self.n * fraction))) if self.n else 0
        from OpenGL import GL

        cam = camera.to("cpu", torch.float32)
        W, H = int(cam.W[0]), int(cam.H[0])
        # one or two layers: that many plain passes beat the lists (bench_viewer.py: K = 1 at 720p,
        # 250k points, 215 ms peeled vs 341 ms through the K-buffer)
        one_pass = self.method == "kbuffer" and MIN_K_ONE_PASS <= K <= KMAX
        in_order = self.method == "sorted" and K <= MAX_K_SORTED
        if one_pass or in_order:
            # any image up to the allocation (adaptive quality changes the size every frame)
            if W > self.width or H > self.height:
                self.resize(max(W, self.width), max(H, self.height))
        elif (W, H) != (self.width, self.height):
            self.resize(W, H)
        self.view = (W, H)
        self.ctx.make_current()
        point_uniforms = (cam, near, far, radius_scale, mode)
        if one_pass:
            self._render_kbuffer(point_uniforms, K, count, background, target)
            return
        if in_order:
            self._render_sorted(point_uniforms, K, count)
            self._present(background, target)
            return
        self.accum.clear()
        for k in range(K):
            out, prev = self._peels[k % 2], self._peels[(k + 1) % 2]
            begin_peel_pass(out, prev)
            GL.glUseProgram(self.peel)
            self._point_uniforms(self.peel, *point_uniforms, layer=k)
            if count:
                GL.glBindVertexArray(self.vao)
                GL.glDrawArrays(GL.GL_POINTS, 0, count)
            # blend this layer into the accumulation buffer, front to back
            self.accum.bind()
            GL.glDisable(GL.GL_DEPTH_TEST)
            GL.glEnable(GL.GL_BLEND)
            GL.glBlendFuncSeparate(GL.GL_ONE_MINUS_DST_ALPHA, GL.GL_ONE, GL.GL_ONE_MINUS_DST_ALPHA, GL.GL_ONE)
            GL.glUseProgram(self.accumulate)
            GL.glActiveTexture(GL.GL_TEXTURE0)
            GL.glBindTexture(GL.GL_TEXTURE_2D, out.textures[2])
            GL.glUniform1i(GL.glGetUniformLocation(self.accumulate, "u_layer_rgba"), 0)
            GL.glBindVertexArray(self.empty_vao)
            GL.glDrawArrays(GL.GL_TRIANGLES, 0, 3)
        GL.glDisable(GL.GL_BLEND)
        self._present(background, target)

    def _present(self, background, target: int | None) -> None:
        """The accumulation buffer over the background into the output texture (or ``target``)."""
        from OpenGL import GL

        W, H = self.view
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.output.fbo if target is None else target)
        GL.glViewport(0, 0, W, H)
        GL.glDisable(GL.GL_BLEND)
        GL.glDisable(GL.GL_DEPTH_TEST)
        GL.glUseProgram(self.present)
        GL.glActiveTexture(GL.GL_TEXTURE0)
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.accum.textures[0])
        GL.glUniform1i(GL.glGetUniformLocation(self.present, "u_accum"), 0)
        GL.glUniform3f(GL.glGetUniformLocation(self.present, "u_background"), *map(float, background))
        GL.glBindVertexArray(self.empty_vao)
        GL.glDrawArrays(GL.GL_TRIANGLES, 0, 3)
        GL.glBindVertexArray(0)

    def _point_uniforms(self, prog: int, cam: Cameras, near: float, far: float, radius_scale: float, mode: str,
                        layer: int = 0) -> None:
        """Uniforms of shaders/baked_points.vert (and the layer of a peeling pass)."""
        from OpenGL import GL

        set_splat_uniforms(prog, cam, *self.view, near, far, layer, self.max_point_size)
        loc = lambda n: GL.glGetUniformLocation(prog, n)  # noqa: E731
        GL.glUniform1f(loc("u_radius_scale"), radius_scale)
        GL.glUniform3f(loc("u_eye"), *cam.centers[0].tolist())
        GL.glUniform1i(loc("u_mode"), MODE_IDS[mode])
        rng = (near, far) if mode == "depth" else self.radius_range
        GL.glUniform2f(loc("u_range"), *rng)
        if prog in (self.peel_views, self.sorted_views, getattr(self, "append_views", None)):
            self._set_view_uniforms(prog, cam.centers[0])

    def draw_order(self, camera: Cameras, count: int) -> np.ndarray:
        """Indices of the first ``count`` points in (camera depth, index) order — every pixel's
        fragments in the order the peel finds them. Cached while the frame and camera stay."""
        R, T = camera.R[0, 2].numpy().astype(np.float32), float(camera.T[0, 2])
        key = (self._uploads, count, R.tobytes(), T)
        if key != self._order_key:
            x = self._xyz[:count]
            # elementwise, not a matmul: a BLAS call leaves its worker threads spinning for a while,
            # taking the cores llvmpipe's rasterizer threads need (~20 ms more per frame measured)
            z = x[:, 0] * R[0] + x[:, 1] * R[1] + x[:, 2] * R[2] + np.float32(T)
            self._order = depth_order(z)
            self._order_key = key
        return self._order

    def _render_sorted(self, point_uniforms: tuple, K: int, count: int) -> None:
        """The points once, nearest first; the stencil buffer lets each pixel's first K covering
        fragments through, blended front to back into the accumulation buffer."""
        from OpenGL import GL

        W, H = self.view
        self.accum.clear()
        GL.glViewport(0, 0, W, H)
        if not count:
            return
        order = self.draw_order(point_uniforms[0], count)
        GL.glBindVertexArray(self.vao)
        GL.glBindBuffer(GL.GL_ELEMENT_ARRAY_BUFFER, self.ebo)
        if self._ebo_key != self._order_key:  # a still camera on a still frame draws the same order
            GL.glBufferData(GL.GL_ELEMENT_ARRAY_BUFFER, order.nbytes, order, GL.GL_STREAM_DRAW)
            self._ebo_key = self._order_key
        GL.glDisable(GL.GL_DEPTH_TEST)
        GL.glEnable(GL.GL_STENCIL_TEST)
        GL.glStencilFunc(GL.GL_GREATER, K, 0xFF)  # passes while fewer than K fragments were counted
        GL.glStencilOp(GL.GL_KEEP, GL.GL_KEEP, GL.GL_INCR)
        GL.glEnable(GL.GL_BLEND)
        GL.glBlendFuncSeparate(GL.GL_ONE_MINUS_DST_ALPHA, GL.GL_ONE, GL.GL_ONE_MINUS_DST_ALPHA, GL.GL_ONE)
        GL.glEnable(GL.GL_PROGRAM_POINT_SIZE)
        GL.glUseProgram(self.sorted)
        self._point_uniforms(self.sorted, *point_uniforms)
        GL.glDrawElements(GL.GL_POINTS, count, GL.GL_UNSIGNED_INT, None)
        GL.glBindVertexArray(0)
        GL.glDisable(GL.GL_STENCIL_TEST)
        GL.glDisable(GL.GL_BLEND)

    def _render_kbuffer(self, point_uniforms: tuple, K: int, count: int, background, target: int | None) -> None:
        """Every point once into per-pixel fragment lists; a compute pass composites each pixel's
        K nearest front to back over the background into the output texture."""
        from OpenGL import GL

        from fourd.gl.kbuffer import draw_banded

        def draw():
            GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.fbos[0].fbo)
            GL.glViewport(0, 0, W, H)
            GL.glDisable(GL.GL_DEPTH_TEST)
            GL.glDisable(GL.GL_BLEND)
            GL.glEnable(GL.GL_PROGRAM_POINT_SIZE)
            if not count:
                return
            GL.glUseProgram(self.append)
            self._point_uniforms(self.append, *point_uniforms)
            GL.glUniform1ui(GL.glGetUniformLocation(self.append, "u_capacity"), self.nodes.capacity)
            GL.glBindVertexArray(self.vao)
            GL.glDrawArrays(GL.GL_POINTS, 0, count)
            GL.glBindVertexArray(0)

        def resolve(y0: int, y1: int):
            prog = self._resolve_progs.get(K)
            if prog is None:
                prog = self._resolve_progs[K] = compile_program({"compute": "kbuffer_resolve.comp"},
                                                                {"K": K, "BAKED": 1})
            GL.glUseProgram(prog)
            GL.glUniform2i(GL.glGetUniformLocation(prog, "u_size"), W, H)
            GL.glUniform1i(GL.glGetUniformLocation(prog, "u_y0"), y0)
            GL.glUniform1i(GL.glGetUniformLocation(prog, "u_y1"), y1)
            GL.glUniform3f(GL.glGetUniformLocation(prog, "u_background"), *map(float, background))
            GL.glBindImageTexture(1, self.output.textures[0], 0, GL.GL_FALSE, 0, GL.GL_WRITE_ONLY, GL.GL_RGBA8)
            GL.glDispatchCompute((W + 7) // 8, (y1 - y0 + 7) // 8, 1)

        # the node buffer is sized from the last frame's fragments (frames change little); a frame
        # with more grows it and is drawn again (draw_banded reads the counter)
        W, H = self.view
        bound = max(self.last_fragments, W * H * 2)
        self.last_fragments = draw_banded(self.nodes, bound, W, H, draw, resolve, "viewer")
        GL.glMemoryBarrier(GL.GL_FRAMEBUFFER_BARRIER_BIT | GL.GL_TEXTURE_FETCH_BARRIER_BIT
                           | GL.GL_TEXTURE_UPDATE_BARRIER_BIT)
        if target is not None:
            GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, self.output.fbo)
            GL.glBindFramebuffer(GL.GL_DRAW_FRAMEBUFFER, target)
            GL.glBlitFramebuffer(0, 0, W, H, 0, 0, W, H,
                                 GL.GL_COLOR_BUFFER_BIT, GL.GL_NEAREST)
            GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, target)

    def read(self) -> np.ndarray:
        """The last render as [H, W, 3] uint8 RGB, top row first (the rendered image is the
        bottom-left W×H of the output texture, which may be larger)."""
        W, H = self.view
        return self.output.read("color")[self.height - H:, :W, :3]

    def release(self) -> None:
        from OpenGL import GL

        self.ctx.make_current()
        for f in self.fbos:
            f.release()
        GL.glDeleteBuffers(len(self.vbos), list(self.vbos))
        GL.glDeleteBuffers(1, [self.ebo])
        GL.glDeleteBuffers(len(self.table_buffers), list(self.table_buffers))
        GL.glDeleteTextures(list(self.table_textures))
        GL.glDeleteVertexArrays(2, [self.vao, self.empty_vao])
        for p in (self.peel_compact, self.peel_views, self.sorted_compact, self.sorted_views, self.accumulate, self.present,
                  getattr(self, "append_compact", 0), getattr(self, "append_views", 0), *self._resolve_progs.values()):
            if p:
                GL.glDeleteProgram(p)
        if self.nodes is not None:
            self.nodes.release()
