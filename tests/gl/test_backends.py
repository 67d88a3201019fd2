"""The three GL backends — EGL, a hidden glfw window (under Xvfb here) and OSMesa — give the same
images; the GL tests pass on each; with EGL gone, fourd falls back and says so; importing fourd
touches no GL at all."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.gl, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
NO_EGL = {"__EGL_VENDOR_LIBRARY_DIRS": "/nonexistent", "__EGL_VENDOR_LIBRARY_FILENAMES": "/nonexistent.json"}


def run(cmd: list[str], backend: str | None, timeout: int = 600, **env) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k not in ("PYOPENGL_PLATFORM", "FOURD_GL", "DISPLAY")}
    e.update(env)
    if backend:
        e["FOURD_GL"] = backend
    if backend == "glfw":
        if not shutil.which("xvfb-run"):
            pytest.skip("no xvfb-run here (scripts/install.sh installs xvfb): the glfw backend needs a display")
        cmd = ["xvfb-run", "-a", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e, cwd=ROOT)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    import torch

    from fourd.bake.bake import bake_scene
    from fourd.structures.points import PointSequence

    d = tmp_path_factory.mktemp("backends")
    g = torch.Generator().manual_seed(0)
    xyz = torch.randn(3000, 3, generator=g) * 0.3
    seq = PointSequence.from_list([xyz], [0], {"colors": [torch.rand(3000, 3, generator=g)],
                                              "radius": [torch.full((3000,), 0.02)]},
                                  {"bounds": [[-1, -1, -1], [1, 1, 1]]})
    return bake_scene(seq.save(d / "points.safetensors"), d / "scene.fourd")


def test_headless_screenshots_are_identical_across_backends(scene, tmp_path):
    import cv2

    shots = {}
    for backend in ("egl", "osmesa", "glfw"):
        out = tmp_path / f"{backend}.png"
        r = run([sys.executable, "-m", "fourd.cli", "view", str(scene), "--headless", "--size", "160x120",
                 "--K", "6", "--screenshot", str(out)], backend)
        assert r.returncode == 0, (backend, r.stderr[-2000:])
        shots[backend] = cv2.imread(str(out)).astype(np.int16)
    assert shots["egl"].std() > 5  # a real picture, not an empty frame
    for b in ("osmesa", "glfw"):
        assert np.abs(shots[b] - shots["egl"]).max() <= 1, b


@pytest.mark.parametrize("backend", ["osmesa", "glfw"])
def test_gl_suite_passes_on_backend(backend):
    """The EGL run is the main suite; the same GL tests again on the other two backends."""
    r = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/gl/test_gl_basics.py",
             "tests/render/test_rasterize.py", "tests/offline/test_render.py", "-k", "not ray"], backend,
            timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert " passed" in r.stdout


def test_without_egl_training_falls_back_and_says_which(tiny_ev, tmp_path):
    r = run([sys.executable, "-m", "fourd.cli", "train", "--dataset", str(tiny_ev), "--out", str(tmp_path / "run"),
             "--steps", "2", "--eval-every", "0", "--eval-frames", "1", "--K", "4", "--source-size", "32",
             "--carve.points", "800", "--carve.resolution", "48", "--model.grid.levels", "1",
             "--model.grid.spatial-min", "8", "--model.grid.spatial-max", "8"], None, **NO_EGL)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "GL: using osmesa" in r.stderr and "egl:" in r.stderr, r.stderr[-2000:]


def test_importing_every_module_touches_no_gl():
    code = ("import importlib, pkgutil, sys, fourd\n"
            "names = [m.name for m in pkgutil.walk_packages(fourd.__path__, 'fourd.')]\n"
            "for n in names: importlib.import_module(n)\n"
            "assert 'OpenGL' not in sys.modules, 'importing fourd imported OpenGL'\n"
            "import fourd.gl.context as c; assert c._shared is None\n"
            "print(len(names))")
    r = run([sys.executable, "-c", code], None, **NO_EGL)
    assert r.returncode == 0, r.stderr[-3000:]
    assert int(r.stdout.strip().splitlines()[-1]) > 50
