"""The K nearest splats per pixel in one pass over the geometry (GL 4.3+: image atomics, atomic
counters, storage buffers, compute shaders).

The K-pass peeler (:class:`~fourd.gl.peeler.DepthPeeler`) draws every point K times. Here every
point is drawn once: each fragment that covers a pixel centre is appended to that pixel's linked
list (shaders/kbuffer_append.frag), and a compute pass walks each list and keeps the K nearest in
(depth, index) order (shaders/kbuffer_resolve.comp) — the same order and the same coverage test
as the peeler, so both give the same :class:`~fourd.structures.fragments.Fragments` whatever
order the GPU produces fragments in.

Memory: the node buffer is sized from the frame's splat areas (an upper bound of its fragments)
and grows to what a frame measured; a frame whose fragments would need more than
``max_bytes`` is drawn in horizontal bands (scissored), each within the limit — an overflow is
detected from the atomic counter, never silent.

    with KBufferRasterizer(W, H) as kb:
        kb.upload(points, radii)
        frags = kb.rasterize(camera, settings)
"""

from __future__ import annotations

import ctypes
import math
import os

import numpy as np
import torch

from fourd.console import log
from fourd.gl.peeler import DepthPeeler, fragments_from_indices
from fourd.gl.program import compile_program
from fourd.structures.cameras import Cameras
from fourd.structures.fragments import Fragments, RasterSettings

KMAX = 32  # shaders/kbuffer_resolve.comp
EMPTY = 0xFFFFFFFF
STRIPES = 4  # shaders/kbuffer_append.frag: node-pool slices, one counter each
DEFAULT_MAX_MB = 1024


def read_buffer(target: int, out: np.ndarray) -> np.ndarray:
    """Copy the start of the buffer bound to ``target`` into ``out`` (PyOpenGL's wrapper of
    glGetBufferSubData allocates its own array; the raw entry point writes where we ask)."""
    from OpenGL.raw.GL.VERSION.GL_1_5 import glGetBufferSubData

    glGetBufferSubData(target, 0, out.nbytes, out.ctypes.data_as(ctypes.c_void_p))
    return out


def kbuffer_support(ctx) -> str | None:
    """None when the context can run the one-pass rasterizer, else why not (one line)."""
    version = tuple(getattr(ctx, "version", (0, 0)) or (0, 0))
    if version < (4, 3):
        return f"OpenGL {version[0]}.{version[1]} < 4.3 (no compute shaders, storage buffers or image atomics)"
    return None


def max_bytes_default() -> int:
    """Node-buffer limit: FOURD_KBUFFER_MB (MiB) or 1 GiB."""
    try:
        return int(float(os.environ.get("FOURD_KBUFFER_MB", DEFAULT_MAX_MB)) * 2**20)
    except ValueError:
        return DEFAULT_MAX_MB * 2**20


def fragment_bound(u, v, r, z, width: int, height: int, near: float, far: float) -> int:
    """An upper bound of the fragments a frame's splats produce: each splat covers at most its
    bounding square clipped to the image (pixel centres strictly within radius r)."""
    vis = (z > near) & (z < far) & (r > 0)
    x0 = (u - r).clamp(0, width)
    x1 = (u + r).clamp(0, width)
    y0 = (v - r).clamp(0, height)
    y1 = (v + r).clamp(0, height)
    area = ((x1 - x0 + 1) * (y1 - y0 + 1)) * vis
    return int(area.sum())


class NodeBuffer:
    """The per-pixel list storage shared by the index and the baked-colour variants: a head image,
    an atomic counter and a node buffer of ``words`` uint32 per node, grown on demand."""

    def __init__(self, width: int, height: int, words: int, max_bytes: int | None = None):
        from OpenGL import GL

        self.width, self.height, self.words = int(width), int(height), int(words)
        self.max_bytes = max_bytes_default() if max_bytes is None else int(max_bytes)
        self.head = GL.glGenTextures(1)
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.head)
        GL.glTexStorage2D(GL.GL_TEXTURE_2D, 1, GL.GL_R32UI, self.width, self.height)
        self.counter, self.nodes = GL.glGenBuffers(2)
        self._zeros = np.zeros(16 * STRIPES, np.uint32)
        GL.glBindBuffer(GL.GL_SHADER_STORAGE_BUFFER, self.counter)
        GL.glBufferData(GL.GL_SHADER_STORAGE_BUFFER, self._zeros.nbytes, self._zeros, GL.GL_DYNAMIC_COPY)
        GL.glBindBuffer(GL.GL_SHADER_STORAGE_BUFFER, 0)
        self.capacity = 0
        self.reserve(self.width * self.height * 2)
        self._clear_tex = bool(GL.glClearTexImage)
        self._empty = None

    @property
    def max_nodes(self) -> int:
        return max(STRIPES, self.max_bytes // (4 * self.words) // STRIPES * STRIPES)

    def reserve(self, nodes: int) -> None:
        """Make room for ``nodes`` (capped at max_bytes)."""
        from OpenGL import GL

        nodes = int(min(max(nodes, 1024), self.max_nodes)) // STRIPES * STRIPES
        if nodes <= self.capacity:
            return
        GL.glBindBuffer(GL.GL_SHADER_STORAGE_BUFFER, self.nodes)
        GL.glBufferData(GL.GL_SHADER_STORAGE_BUFFER, nodes * self.words * 4, None, GL.GL_DYNAMIC_COPY)
        GL.glBindBuffer(GL.GL_SHADER_STORAGE_BUFFER, 0)
        self.capacity = nodes

    def reset(self) -> None:
        """Empty every list and zero the counters."""
        from OpenGL import GL

        if self._clear_tex:
            GL.glClearTexImage(self.head, 0, GL.GL_RED_INTEGER, GL.GL_UNSIGNED_INT, np.array([EMPTY], np.uint32))
        else:  # GL 4.3: no glClearTexImage
            if self._empty is None:
                self._empty = np.full((self.height, self.width), EMPTY, np.uint32)
            GL.glBindTexture(GL.GL_TEXTURE_2D, self.head)
            GL.glTexSubImage2D(GL.GL_TEXTURE_2D, 0, 0, 0, self.width, self.height, GL.GL_RED_INTEGER,
                               GL.GL_UNSIGNED_INT, self._empty)
        GL.glBindBuffer(GL.GL_SHADER_STORAGE_BUFFER, self.counter)
        GL.glBufferSubData(GL.GL_SHADER_STORAGE_BUFFER, 0, self._zeros.nbytes, self._zeros)
        GL.glBindBuffer(GL.GL_SHADER_STORAGE_BUFFER, 0)

    def bind(self, write: bool) -> None:
        from OpenGL import GL

        access = GL.GL_READ_WRITE if write else GL.GL_READ_ONLY
        GL.glBindImageTexture(0, self.head, 0, GL.GL_FALSE, 0, access, GL.GL_R32UI)
        GL.glBindBufferBase(GL.GL_SHADER_STORAGE_BUFFER, 3, self.counter)
        GL.glBindBufferBase(GL.GL_SHADER_STORAGE_BUFFER, 1, self.nodes)

    def count(self) -> tuple[int, int]:
        """(fragments the last draw produced, stored or not; pool size that would have held them:
        the fullest slice × STRIPES)."""
        from OpenGL import GL

        GL.glMemoryBarrier(GL.GL_SHADER_STORAGE_BARRIER_BIT | GL.GL_BUFFER_UPDATE_BARRIER_BIT)
        GL.glBindBuffer(GL.GL_SHADER_STORAGE_BUFFER, self.counter)
        out = np.zeros(16 * STRIPES, np.uint32)
        read_buffer(GL.GL_SHADER_STORAGE_BUFFER, out)
        GL.glBindBuffer(GL.GL_SHADER_STORAGE_BUFFER, 0)
        per = out[::16].astype(np.int64)
        return int(per.sum()), int(per.max()) * STRIPES

    def bands(self, bound: int) -> int:
        """How many horizontal bands keep a frame of at most ``bound`` fragments within max_bytes."""
        return max(1, math.ceil(bound / self.max_nodes))

    def release(self) -> None:
        from OpenGL import GL

        GL.glDeleteTextures([self.head])
        GL.glDeleteBuffers(2, [self.counter, self.nodes])


_said_bands: set = set()


def draw_banded(nodes: NodeBuffer, bound: int, width: int, height: int, draw, resolve, what: str) -> int:
    """Append every fragment (``draw()``) then resolve (``resolve(y0, y1)``, GL rows), in as few
    horizontal bands as the node limit allows; a band that still overflows is split again.
    Returns the largest fragment count of a band that was resolved."""
    from OpenGL import GL

    nodes.reserve(int(bound * 1.05) + 1024)
    todo = [(0, height)]
    split = nodes.bands(bound)
    if split > 1:
        step = math.ceil(height / split)
        todo = [(y, min(height, y + step)) for y in range(0, height, step)]
        if not _said_bands:
            log(f"[yellow]{what}: {bound:,} fragments may exceed the {nodes.max_bytes >> 20} MiB node buffer "
                f"(FOURD_KBUFFER_MB); drawing in {len(todo)} bands[/]")
            _said_bands.add(what)
    worst = 0
    while todo:
        y0, y1 = todo.pop(0)
        banded = (y0, y1) != (0, height)
        if banded:
            GL.glEnable(GL.GL_SCISSOR_TEST)
            GL.glScissor(0, y0, width, y1 - y0)
        nodes.reset()
        nodes.bind(write=True)
        draw()
        if banded:
            GL.glDisable(GL.GL_SCISSOR_TEST)
        n, need = nodes.count()
        if need > nodes.capacity:
            if need <= nodes.max_nodes:
                nodes.reserve(int(need * 1.1))
                todo.insert(0, (y0, y1))
                continue
            if y1 - y0 <= 1:
                raise RuntimeError(f"{what}: one image row needs {need:,} nodes, more than the node buffer "
                                   f"holds ({nodes.max_nodes:,}); raise FOURD_KBUFFER_MB")
            mid = (y0 + y1) // 2
            todo[:0] = [(y0, mid), (mid, y1)]
            continue
        worst = max(worst, n)
        GL.glMemoryBarrier(GL.GL_SHADER_IMAGE_ACCESS_BARRIER_BIT | GL.GL_SHADER_STORAGE_BARRIER_BIT)
        nodes.bind(write=False)
        resolve(y0, y1)
    return worst


class KBufferRasterizer(DepthPeeler):
    """Same API and Fragments as :class:`DepthPeeler` (which it keeps as its reference twin:
    ``rasterize(..., method="peel")``), one geometry pass instead of K. It draws any image up to
    its allocated size (training crops of varying sizes share one), the peeler only its own size."""

    def __init__(self, width: int, height: int, context=None, max_bytes: int | None = None):
        super().__init__(width, height, context)
        from OpenGL import GL

        why = kbuffer_support(self.ctx)
        if why:
            raise RuntimeError(f"one-pass K-buffer unavailable: {why}")
        self.append_points = compile_program({"vertex": "peel_points.vert", "fragment": "kbuffer_append.frag"})
        self.append_quads = compile_program({"vertex": "peel_quads.vert", "fragment": "kbuffer_append.frag"})
        self._resolve_progs: dict[int, int] = {}  # one per K (compiled in)
        self.nodes = NodeBuffer(self.width, self.height, 3, max_bytes)
        self.out = GL.glGenBuffers(1)
        self._out_k = 0  # ints the index buffer holds
        self.last_fragments = 0

    def release(self) -> None:
        from OpenGL import GL

        if self.vao is None:
            return
        self.ctx.make_current()
        self.nodes.release()
        GL.glDeleteBuffers(1, [self.out])
        for p in (self.append_points, self.append_quads, *self._resolve_progs.values()):
            GL.glDeleteProgram(p)
        super().release()

    def _fits(self, width: int, height: int) -> bool:
        return width <= self.width and height <= self.height  # any image up to the allocation

    def _draw_append(self) -> None:
        from OpenGL import GL

        self.fbos[0].bind()
        GL.glViewport(0, 0, *self.view)
        GL.glDisable(GL.GL_DEPTH_TEST)
        GL.glDisable(GL.GL_BLEND)
        GL.glEnable(GL.GL_PROGRAM_POINT_SIZE)
        GL.glActiveTexture(GL.GL_TEXTURE2)
        GL.glBindTexture(GL.GL_TEXTURE_BUFFER, self.tbo_tex)
        for prog, vao, draw in ((self.append_points, self.vao, self.n_points),
                                (self.append_quads, self.quad_vao, self._n_huge)):
            if not draw:
                continue
            GL.glUseProgram(prog)
            self._uniforms(prog)
            GL.glUniform1ui(GL.glGetUniformLocation(prog, "u_capacity"), self.nodes.capacity)
            GL.glBindVertexArray(vao)
            if prog == self.append_points:
                GL.glDrawArrays(GL.GL_POINTS, 0, draw)
            else:
                GL.glDrawArraysInstanced(GL.GL_TRIANGLE_STRIP, 0, 4, draw)
        GL.glBindVertexArray(0)

    def _resolve(self, K: int, y0: int, y1: int) -> None:
        from OpenGL import GL

        prog = self._resolve_progs.get(K)
        if prog is None:
            prog = self._resolve_progs[K] = compile_program({"compute": "kbuffer_resolve.comp"}, {"K": K})
        GL.glUseProgram(prog)
        GL.glUniform2i(GL.glGetUniformLocation(prog, "u_size"), *self.view)
        GL.glUniform1i(GL.glGetUniformLocation(prog, "u_y0"), y0)
        GL.glUniform1i(GL.glGetUniformLocation(prog, "u_y1"), y1)
        GL.glBindBufferBase(GL.GL_SHADER_STORAGE_BUFFER, 2, self.out)
        GL.glDispatchCompute((self.view[0] + 7) // 8, (y1 - y0 + 7) // 8, 1)

    def rasterize(self, camera: Cameras, settings: RasterSettings, device="cpu", read_depths: bool = False,
                  method: str = "kbuffer") -> Fragments:
        """K nearest splats per pixel; ``method="peel"`` runs the K-pass reference instead (so
        does K = 1: one depth-tested pass is the cheapest way to the nearest splat)."""
        if method == "peel" or read_depths or settings.K > KMAX or settings.K == 1:
            if (int(camera.W[0]), int(camera.H[0])) != (self.width, self.height):
                raise ValueError(f"the K-pass peeler draws {self.width}×{self.height} images only; "
                                 f"got {int(camera.W[0])}×{int(camera.H[0])}")
            return super().rasterize(camera, settings, device, read_depths)
        from OpenGL import GL

        self.begin(camera, settings)
        (W, H), K = self.view, settings.K
        if H * W * K > self._out_k:
            GL.glBindBuffer(GL.GL_SHADER_STORAGE_BUFFER, self.out)
            GL.glBufferData(GL.GL_SHADER_STORAGE_BUFFER, H * W * K * 4, None, GL.GL_DYNAMIC_READ)
            self._out_k = H * W * K
        bound = 0
        if self.n_points:
            u, v, z, r = self._projected  # by begin()
            bound = fragment_bound(u, v, r, z, W, H, settings.near, settings.far)
        self.last_fragments = draw_banded(self.nodes, bound, W, H, self._draw_append,
                                          lambda y0, y1: self._resolve(K, y0, y1), "K-buffer rasterizer")
        GL.glMemoryBarrier(GL.GL_BUFFER_UPDATE_BARRIER_BIT | GL.GL_SHADER_STORAGE_BARRIER_BIT)
        idx = np.empty((H, W, K), np.int32)
        GL.glBindBuffer(GL.GL_SHADER_STORAGE_BUFFER, self.out)
        read_buffer(GL.GL_SHADER_STORAGE_BUFFER, idx)
        GL.glBindBuffer(GL.GL_SHADER_STORAGE_BUFFER, 0)
        idx_t = torch.from_numpy(idx).long()
        frags = fragments_from_indices(idx_t, self._projected)
        if torch.device(device).type != "cpu":
            frags = Fragments(frags.idx.to(device), frags.zbuf.to(device), frags.dists.to(device))
        return frags
