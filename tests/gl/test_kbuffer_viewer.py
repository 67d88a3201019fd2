"""The viewer's one-pass K-buffer renderer against its K-pass reference twin: same images (view
tables too), any image size up to the allocation, frames that overflow the node buffer, and the
fallback on a GL without compute shaders."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.gl

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "viewer"))
from test_window import make_scene  # noqa: E402


def _image(r) -> torch.Tensor:
    return torch.from_numpy(r.read()).float() / 255


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    _, frames, cams = make_scene(tmp_path_factory.mktemp("kb") / "s.fourd")
    return frames, cams


def test_kbuffer_and_peel_images_agree(scene):
    from fourd.gl.baked_renderer import BakedRenderer
    from fourd.train.losses import psnr

    frames, cams = scene
    out = {}
    for method in ("kbuffer", "peel"):
        r = BakedRenderer(160, 120, method=method)
        assert r.method == method
        r.upload(frames[1])
        out[method] = {}
        for mode in ("rgb", "depth", "alpha"):
            r.render(cams[1], K=8, background=(0.1, 0.2, 0.3), mode=mode, near=0.1, far=10.0)
            out[method][mode] = _image(r)
        r.release()
    for mode in ("rgb", "depth", "alpha"):
        assert psnr(out["kbuffer"][mode], out["peel"][mode]) >= 40, mode
    assert out["kbuffer"]["rgb"].std() > 0.05  # a subject, not an empty frame


def test_kbuffer_view_tables_agree_with_peeling(scene):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from bench_viewer import frame, with_views

    from fourd.gl.baked_renderer import BakedRenderer
    from fourd.train.losses import psnr

    _, cams = scene
    f = with_views(frame(4000), 6)
    imgs = []
    for method in ("kbuffer", "peel"):
        r = BakedRenderer(160, 120, method=method)
        r.upload(f)
        r.render(cams[2], K=6, near=0.1, far=10.0)
        imgs.append(_image(r))
        r.release()
    assert psnr(*imgs) >= 40


def test_smaller_images_in_a_larger_allocation(scene):
    """Adaptive quality changes the size every frame: the K-buffer renderer draws any size up to
    its allocation without re-allocating, pixel for pixel as a renderer of that size."""
    from fourd.gl.baked_renderer import BakedRenderer
    from fourd.structures.cameras import Cameras

    frames, cams = scene
    small = Cameras.look_at(cams[1].centers, [0, 0, 0], H=60, W=80, fov_y_deg=40)
    big = BakedRenderer(160, 120)
    big.upload(frames[2])
    big.render(small, K=8, near=0.1, far=10.0)
    assert (big.width, big.height) == (160, 120)  # not re-allocated
    a = big.read()
    exact = BakedRenderer(80, 60)
    exact.upload(frames[2])
    exact.render(small, K=8, near=0.1, far=10.0)
    assert a.shape == (60, 80, 3)
    assert np.array_equal(a, exact.read())
    big.release()
    exact.release()


def _said(monkeypatch, module) -> list[str]:
    """What ``module`` logs (the console may hold a stream captured before this test)."""
    lines: list[str] = []
    monkeypatch.setattr(module, "log", lambda *a, **k: lines.append(" ".join(map(str, a))))
    return lines


def test_a_frame_that_overflows_the_node_buffer_renders_correctly(scene, monkeypatch):
    """A node-buffer limit below one frame's fragments: the frame is drawn in bands (said once),
    and the image is the same."""
    from fourd.gl import kbuffer
    from fourd.gl.baked_renderer import BakedRenderer

    frames, cams = scene
    ref = BakedRenderer(160, 120)
    ref.upload(frames[0])
    ref.render(cams[1], K=8, near=0.1, far=10.0)
    want, n = ref.read(), ref.last_fragments
    ref.release()
    assert n > 20_000
    monkeypatch.setenv("FOURD_KBUFFER_MB", str(20 * 5000 / 2**20))  # 5000 nodes of 20 bytes
    monkeypatch.setattr(kbuffer, "_said_bands", set())
    said = _said(monkeypatch, kbuffer)
    r = BakedRenderer(160, 120)
    assert r.nodes.max_nodes == 5000
    r.upload(frames[0])
    r.render(cams[1], K=8, near=0.1, far=10.0)
    assert np.array_equal(r.read(), want)
    assert r.last_fragments <= 5000  # every band fitted
    assert len(said) == 1 and "drawing in" in said[0]
    r.release()


def test_gl_without_compute_falls_back_to_peeling_in_one_line(scene, monkeypatch):
    from fourd.errors import FourdError
    from fourd.gl import baked_renderer, kbuffer
    from fourd.gl.baked_renderer import BakedRenderer

    frames, cams = scene
    monkeypatch.setattr(kbuffer, "kbuffer_support", lambda ctx: "OpenGL 4.1 < 4.3 (test)")
    said = _said(monkeypatch, baked_renderer)
    r = BakedRenderer(160, 120)
    assert r.method == "peel"
    assert len(said) == 1 and "K-pass depth peeling (OpenGL 4.1 < 4.3 (test))" in said[0]
    r.upload(frames[0])
    r.render(cams[1], K=4, near=0.1, far=10.0)
    assert r.read().std() > 0
    r.release()
    with pytest.raises(FourdError, match="FOURD_RENDERER=peel"):
        BakedRenderer(160, 120, method="kbuffer")
    monkeypatch.setenv("FOURD_RENDERER", "fast")
    with pytest.raises(FourdError, match="auto, kbuffer or peel"):
        BakedRenderer(160, 120)


def test_the_environment_picks_the_renderer(monkeypatch):
    from fourd.gl.baked_renderer import BakedRenderer

    monkeypatch.setenv("FOURD_RENDERER", "peel")
    r = BakedRenderer(32, 24)
    assert r.method == "peel"
    r.release()


def _hardware_gl() -> str | None:
    from fourd.gl.context import headless_context

    name = headless_context().renderer.lower()
    return None if any(s in name for s in ("llvmpipe", "softpipe", "swrast")) else name


def test_on_a_gpu_one_pass_is_not_slower_than_k_passes(scene):
    """On a hardware GL the one-pass path must not lose to K passes. Timing needs a GPU: on
    Mesa's software rasterizer it is skipped (the CPU measurements are scripts/bench_viewer.py
    and bench_render.py; the images are checked above)."""
    name = _hardware_gl()
    if name is None:
        pytest.skip("no hardware GL here (Mesa llvmpipe): the GPU timing comparison needs a GPU")
    import time

    from OpenGL import GL

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from bench_viewer import frame

    from fourd.gl.baked_renderer import BakedRenderer
    from fourd.viewer.state import OrbitCamera

    cam = OrbitCamera(target=np.zeros(3), distance=3.2, pitch=0.15).cameras(1920, 1080)
    f = frame(250_000)
    ms = {}
    for method in ("kbuffer", "peel"):
        r = BakedRenderer(1920, 1080, method=method)
        r.upload(f)
        best = 1e9
        for _ in range(5):
            t = time.perf_counter()
            r.render(cam, K=8, near=0.1, far=10.0)
            GL.glFinish()
            best = min(best, time.perf_counter() - t)
        ms[method] = best
        r.release()
    assert ms["kbuffer"] <= 1.1 * ms["peel"], (name, ms)
