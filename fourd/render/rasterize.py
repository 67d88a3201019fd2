"""``rasterize_points``: one entry point, several backends returning the same Fragments.

* ``torch`` — the pure-torch reference (CPU or CUDA), always available;
* ``gl`` — hardware rasterization, Mesa's llvmpipe included; fastest on CPU-only machines: the
  one-pass K-buffer (:class:`fourd.gl.kbuffer.KBufferRasterizer`) on GL 4.3+, else K-pass depth
  peeling (:class:`fourd.gl.peeler.DepthPeeler`, GL 3.3+, said in one line);
* ``gl-kbuffer`` / ``gl-peel`` — one of the two, forced (``gl-peel`` is the reference twin);
* ``pytorch3d`` — pytorch3d's point rasterizer when ``import pytorch3d`` works;
* ``auto`` — gl when a GL context can be made, else torch.
"""

from __future__ import annotations

import functools

from torch import Tensor

from fourd.console import log
from fourd.render.rasterize_torch import check_inputs, rasterize_points_torch
from fourd.structures.cameras import Cameras
from fourd.structures.fragments import Fragments, RasterSettings

BACKENDS = ("auto", "torch", "gl", "gl-kbuffer", "gl-peel", "pytorch3d")


class GLRasterizer:
    """Keeps one GL rasterizer per image size, so repeated calls reuse programs and buffers.
    ``method``: "auto" (the one-pass K-buffer where GL 4.3+ allows, else K-pass peeling),
    "kbuffer" or "peel"."""

    def __init__(self, method: str = "auto"):
        if method not in ("auto", "kbuffer", "peel"):
            raise ValueError(f"unknown GL rasterizer method '{method}' (auto, kbuffer or peel)")
        self.method = method
        self._peelers: dict = {}

    def _kbuffer(self) -> bool:
        """Whether the one-pass K-buffer is used (decided once; a fallback is said once)."""
        if self.method == "peel":
            return False
        if not hasattr(self, "_kb_ok"):
            from fourd.gl.context import headless_context
            from fourd.gl.kbuffer import kbuffer_support

            why = kbuffer_support(headless_context())
            if why and self.method == "kbuffer":
                raise RuntimeError(f"the one-pass K-buffer rasterizer needs {why}; use the gl-peel backend")
            if why and not _said_fallback:
                log(f"[yellow]GL rasterizer: K-pass depth peeling ({why})[/]")
                _said_fallback.append(why)
            self._kb_ok = why is None
        return self._kb_ok

    def __call__(self, points: Tensor, radii: Tensor, camera: Cameras, settings: RasterSettings,
                 device="cpu") -> Fragments:
        from fourd.gl.kbuffer import KMAX, KBufferRasterizer
        from fourd.gl.peeler import DepthPeeler

        W, H = int(camera.W[0]), int(camera.H[0])
        if self._kbuffer() and 1 < settings.K <= KMAX:
            # one K-buffer serves every image up to its size (training crops vary from step to step)
            kb = self._peelers.get("kbuffer")
            if kb is None or W > kb.width or H > kb.height:
                size = (W, H) if kb is None else (max(W, kb.width), max(H, kb.height))
                if kb is not None:
                    kb.release()
                kb = self._peelers["kbuffer"] = KBufferRasterizer(*(-(-x // 64) * 64 for x in size))
            kb.upload(points, radii)
            return kb.rasterize(camera, settings, device)
        peeler = self._peelers.get((W, H))
        if peeler is None:
            if len(self._peelers) >= 4:  # crops of many sizes: keep a few
                old = next(k for k in self._peelers if k != "kbuffer")
                self._peelers.pop(old).release()
            peeler = self._peelers[(W, H)] = DepthPeeler(W, H)
        peeler.upload(points, radii)
        return peeler.rasterize(camera, settings, device)

    def release(self) -> None:
        for p in self._peelers.values():
            p.release()
        self._peelers.clear()


_said_fallback: list = []


@functools.lru_cache(maxsize=1)
def gl_available() -> bool:
    try:
        from fourd.gl.context import headless_context

        headless_context()
        return True
    except Exception as e:  # any failure means "no GL here"; say which
        log(f"[yellow]GL rasterizer unavailable ({type(e).__name__}: {e}); using the torch rasterizer[/]")
        return False


_default_gl: dict = {}


def gl_method(backend: str) -> str:
    """The GLRasterizer method of a ``gl*`` backend name."""
    return {"gl": "auto", "auto": "auto", "gl-kbuffer": "kbuffer", "gl-peel": "peel"}[backend]


def rasterize_points(points: Tensor, radii: Tensor, camera: Cameras, settings: RasterSettings,
                     backend: str = "auto", gl: GLRasterizer | None = None) -> Fragments:
    """points [P, 3], radii [P] world units → Fragments [H, W, K] on ``points.device``."""
    radii = check_inputs(points, radii, camera)
    if backend not in BACKENDS:
        raise ValueError(f"unknown rasterizer backend '{backend}' (use one of {', '.join(BACKENDS)})")
    if backend == "auto":
        backend = "gl" if gl_available() else "torch"
    if backend == "torch":
        return rasterize_points_torch(points, radii, camera.to(points.device), settings)
    if backend == "pytorch3d":
        from fourd.render.rasterize_pytorch3d import rasterize_points_pytorch3d

        return rasterize_points_pytorch3d(points, radii, camera, settings)
    if gl is None:
        method = gl_method(backend)
        if method not in _default_gl:
            _default_gl[method] = GLRasterizer(method)
        gl = _default_gl[method]
    frags = gl(points, radii, camera, settings, points.device)
    return frags.to(points.device)
