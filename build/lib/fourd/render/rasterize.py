"""``rasterize_points``: one entry point, several backends returning the same Fragments.

* ``torch`` — the pure-torch reference (CPU or CUDA), always available;
* ``gl`` — hardware depth peeling (:class:`fourd.gl.peeler.DepthPeeler`) on any GL 3.3+
  implementation, Mesa's llvmpipe included; fastest on CPU-only machines;
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

BACKENDS = ("auto", "torch", "gl", "pytorch3d")


class GLRasterizer:
    """Keeps one DepthPeeler per image size, so repeated calls reuse programs and framebuffers."""

    def __init__(self):
        self._peelers: dict = {}

    def __call__(self, points: Tensor, radii: Tensor, camera: Cameras, settings: RasterSettings,
                 device="cpu") -> Fragments:
        from fourd.gl.peeler import DepthPeeler

        key = (int(camera.W[0]), int(camera.H[0]))
        peeler = self._peelers.get(key)
        if peeler is None:
            if len(self._peelers) >= 4:  # crops of many sizes: keep a few
                self._peelers.pop(next(iter(self._peelers))).release()
            peeler = self._peelers[key] = DepthPeeler(*key)
        peeler.upload(points, radii)
        return peeler.rasterize(camera, settings, device)

    def release(self) -> None:
        for p in self._peelers.values():
            p.release()
        self._peelers.clear()


@functools.lru_cache(maxsize=1)
def gl_available() -> bool:
    try:
        from fourd.gl.context import headless_context

        headless_context()
        return True
    except Exception as e:  # any failure means "no GL here"; say which
        log(f"[yellow]GL rasterizer unavailable ({type(e).__name__}: {e}); using the torch rasterizer[/]")
        return False


_default_gl: GLRasterizer | None = None


def rasterize_points(points: Tensor, radii: Tensor, camera: Cameras, settings: RasterSettings,
                     backend: str = "auto", gl: GLRasterizer | None = None) -> Fragments:
    """points [P, 3], radii [P] world units → Fragments [H, W, K] on ``points.device``."""
    global _default_gl
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
        _default_gl = _default_gl or GLRasterizer()
        gl = _default_gl
    frags = gl(points, radii, camera, settings, points.device)
    return Fragments(frags.idx.to(points.device), frags.zbuf.to(points.device), frags.dists.to(points.device))
