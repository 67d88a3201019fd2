"""The viewer's one-pass renderers (one sorted pass counted in the stencil buffer; the K-buffer)
against their K-pass reference twin: same images (view tables too, ties in depth, every K), any
image size up to the allocation, frames that overflow the node buffer, which method each GL gets."""

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


def test_one_pass_and_peel_images_agree(scene):
    from fourd.gl.baked_renderer import BakedRenderer
    from fourd.train.losses import psnr

    frames, cams = scene
    out = {}
    for method in ("sorted", "kbuffer", "peel"):
        r = BakedRenderer(160, 120, method=method)
        assert r.method == method
        r.upload(frames[1])
        out[method] = {}
        for mode in ("rgb", "depth", "alpha"):
            r.render(cams[1], K=8, background=(0.1, 0.2, 0.3), mode=mode, near=0.1, far=10.0)
            out[method][mode] = _image(r)
        r.release()
    for method in ("sorted", "kbuffer"):
        for mode in ("rgb", "depth", "alpha"):
            assert psnr(out[method][mode], out["peel"][mode]) >= 40, (method, mode)
    assert out["sorted"]["rgb"].std() > 0.05  # a subject, not an empty frame


@pytest.mark.parametrize("K", [1, 2, 3, 5])
def test_sorted_pass_keeps_exactly_the_k_nearest_with_ties_by_index(K):
    """Every K (the stencil count), and splats at exactly the same depth: the peel orders them by
    index, so must the sorted pass (a different order would blend their colours the other way)."""
    from fourd.bake.format import BakedFrame
    from fourd.gl.baked_renderer import BakedRenderer
    from fourd.structures.cameras import Cameras

    g = torch.Generator().manual_seed(K)
    n = 3000
    xyz = (torch.rand(n, 3, generator=g) - 0.5) * torch.tensor([0.8, 0.8, 0.3])
    xyz[n // 2:] = xyz[: n - n // 2]  # exact duplicates, in other colours
    f = BakedFrame(xyz, torch.rand(n, generator=g) * 0.05 + 0.02, torch.rand(n, generator=g) * 0.6 + 0.2,
                   torch.rand(n, 3, generator=g), None)
    cam = Cameras.look_at(torch.tensor([[0.0, 0.0, -2.5]]), [0, 0, 0], H=96, W=128, fov_y_deg=40)
    imgs = {}
    for method in ("sorted", "peel"):
        r = BakedRenderer(128, 96, method=method)
        r.upload(f)
        r.render(cam, K=K, near=0.1, far=10.0)
        imgs[method] = r.read().astype(int)
        r.release()
    diff = np.abs(imgs["sorted"] - imgs["peel"])
    assert imgs["peel"].std() > 10
    assert diff.max() <= 1, diff.max()  # half-float accumulation: the same blend, ±1 LSB


def test_depth_order_breaks_ties_by_index():
    from fourd.gl.baked_renderer import depth_order

    z = np.random.default_rng(0).choice(np.float32([0.5, 1.0, 1.0 + 2**-23, 3.0, 7.25]), 5000)
    assert np.array_equal(depth_order(z), np.argsort(z, kind="stable"))
    assert np.array_equal(depth_order(np.float32([2.0, -1.0, 0.5, -3.0])), [3, 1, 2, 0])


def test_sorted_pass_beyond_the_stencil_count_peels(scene):
    """K above what 8 stencil bits count (255) is drawn by the K-pass path, the same image."""
    from fourd.gl.baked_renderer import BakedRenderer

    frames, cams = scene
    imgs = []
    for method in ("sorted", "peel"):
        r = BakedRenderer(80, 60, method=method)
        r.upload(frames[0])
        small = cams[1].__class__.look_at(cams[1].centers, [0, 0, 0], H=60, W=80, fov_y_deg=40)
        r.render(small, K=256, near=0.1, far=10.0)
        imgs.append(r.read().astype(int))
        r.release()
    assert np.abs(imgs[0] - imgs[1]).max() == 0


@pytest.mark.parametrize("method", ["sorted", "kbuffer"])
def test_view_tables_agree_with_peeling(scene, method):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from bench_viewer import frame, with_views

    from fourd.gl.baked_renderer import BakedRenderer
    from fourd.train.losses import psnr

    _, cams = scene
    f = with_views(frame(4000), 6)
    imgs = []
    for m in (method, "peel"):
        r = BakedRenderer(160, 120, method=m)
        r.upload(f)
        r.render(cams[2], K=6, near=0.1, far=10.0)
        imgs.append(_image(r))
        r.release()
    assert psnr(*imgs) >= 40


@pytest.mark.parametrize("method", ["sorted", "kbuffer"])
def test_smaller_images_in_a_larger_allocation(scene, method):
    """Adaptive quality changes the size every frame: the one-pass renderers draw any size up to
    their allocation without re-allocating, pixel for pixel as a renderer of that size."""
    from fourd.gl.baked_renderer import BakedRenderer
    from fourd.structures.cameras import Cameras

    frames, cams = scene
    small = Cameras.look_at(cams[1].centers, [0, 0, 0], H=60, W=80, fov_y_deg=40)
    big = BakedRenderer(160, 120, method=method)
    big.upload(frames[2])
    big.render(small, K=8, near=0.1, far=10.0)
    assert (big.width, big.height) == (160, 120)  # not re-allocated
    a = big.read()
    exact = BakedRenderer(80, 60, method=method)
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
    ref = BakedRenderer(160, 120, method="kbuffer")
    ref.upload(frames[0])
    ref.render(cams[1], K=8, near=0.1, far=10.0)
    want, n = ref.read(), ref.last_fragments
    ref.release()
    assert n > 20_000
    monkeypatch.setenv("FOURD_KBUFFER_MB", str(20 * 5000 / 2**20))  # 5000 nodes of 20 bytes
    monkeypatch.setattr(kbuffer, "_said_bands", set())
    said = _said(monkeypatch, kbuffer)
    r = BakedRenderer(160, 120, method="kbuffer")
    assert r.nodes.max_nodes == 5000
    r.upload(frames[0])
    r.render(cams[1], K=8, near=0.1, far=10.0)
    assert np.array_equal(r.read(), want)
    assert r.last_fragments <= 5000  # every band fitted
    assert len(said) == 1 and "drawing in" in said[0]
    r.release()


def test_which_method_each_gl_gets():
    """auto: one sorted pass on a software rasterizer, the K-buffer on a hardware GL 4.3+, one
    sorted pass (said in one line) on an older hardware GL; asking for the K-buffer where it cannot
    run, or for an unknown method, is a clear error."""
    from types import SimpleNamespace

    from fourd.errors import FourdError
    from fourd.gl.baked_renderer import choose_method

    llvmpipe = SimpleNamespace(version=(4, 5), is_software=True)
    gpu = SimpleNamespace(version=(4, 6), is_software=False)
    old_gpu = SimpleNamespace(version=(4, 1), is_software=False)
    assert choose_method(llvmpipe, "auto") == ("sorted", None)
    assert choose_method(gpu, "auto") == ("kbuffer", None)
    method, why = choose_method(old_gpu, "auto")
    assert method == "sorted" and "OpenGL 4.1 < 4.3" in why
    for m in ("sorted", "kbuffer", "peel"):
        assert choose_method(gpu, m) == (m, None)
    assert choose_method(old_gpu, "peel") == ("peel", None)
    with pytest.raises(FourdError, match="FOURD_RENDERER=sorted"):
        choose_method(old_gpu, "kbuffer")
    with pytest.raises(FourdError, match="auto, sorted, kbuffer or peel"):
        choose_method(gpu, "fast")


def test_an_older_gl_says_its_method_in_one_line(scene, monkeypatch):
    from fourd.errors import FourdError
    from fourd.gl import baked_renderer, kbuffer
    from fourd.gl.baked_renderer import BakedRenderer

    frames, cams = scene
    monkeypatch.setattr(kbuffer, "kbuffer_support", lambda ctx: "OpenGL 4.1 < 4.3 (test)")
    monkeypatch.setattr(type(baked_renderer.headless_context()), "is_software", property(lambda self: False))
    said = _said(monkeypatch, baked_renderer)
    r = BakedRenderer(160, 120)
    assert r.method == "sorted"
    assert len(said) == 1 and "one sorted pass (no K-buffer: OpenGL 4.1 < 4.3 (test))" in said[0]
    r.upload(frames[0])
    r.render(cams[1], K=4, near=0.1, far=10.0)
    assert r.read().std() > 0
    r.release()
    with pytest.raises(FourdError, match="FOURD_RENDERER=sorted"):
        BakedRenderer(160, 120, method="kbuffer")
    monkeypatch.setenv("FOURD_RENDERER", "fast")
    with pytest.raises(FourdError, match="auto, sorted, kbuffer or peel"):
        BakedRenderer(160, 120)


@pytest.mark.parametrize("method", ["peel", "sorted", "kbuffer"])
def test_the_environment_picks_the_renderer(monkeypatch, method):
    from fourd.gl.baked_renderer import BakedRenderer

    monkeypatch.setenv("FOURD_RENDERER", method)
    r = BakedRenderer(32, 24)
    assert r.method == method
    r.release()


def _hardware_gl() -> str | None:
    from fourd.gl.context import headless_context

    name = headless_context().renderer.lower()
    return None if any(s in name for s in ("llvmpipe", "softpipe", "swrast")) else name


def test_on_a_gpu_one_pass_is_not_slower_than_k_passes(scene):
    """On a hardware GL the one-pass paths (the K-buffer auto picks there, and the sorted pass)
    must not lose to K passes. Timing needs a GPU: on
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
    for method in ("kbuffer", "sorted", "peel"):
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
    assert ms["sorted"] <= 1.1 * ms["peel"], (name, ms)
