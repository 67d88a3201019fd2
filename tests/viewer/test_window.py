"""The viewer in a real glfw window under Xvfb (input replayed through the same handlers), and the
same GL renderer headless through EGL, checked against the torch renderer."""

import json
import os
import shutil
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch

from fourd.bake.format import BakedFrame, write_baked
from fourd.structures.cameras import Cameras

pytestmark = pytest.mark.gl


def make_scene(path, frames=4, N=6000, seed=0):
    g = torch.Generator().manual_seed(seed)
    fr = []
    for t in range(frames):
        d = torch.nn.functional.normalize(torch.randn(N, 3, generator=g), dim=1) * torch.tensor([0.3, 0.8, 0.25])
        d = d + torch.tensor([0.15 * t, 0, 0])
        fr.append(BakedFrame(d, torch.full((N,), 0.03), torch.full((N,), 0.9), (d + 1) / 2,
                             (torch.rand(N, 3, 3, generator=g) - 0.5) * 0.1))
    cams = Cameras.ring(6, 3.0, 0.5, H=120, W=160)
    meta = {"names": cams.names, "K": cams.K.tolist(), "R": cams.R.tolist(), "T": cams.T.tolist(),
            "H": cams.H.tolist(), "W": cams.W.tolist(), "held_out": ["02"], "near": 0.1, "far": 10.0}
    return write_baked(path, fr, list(range(frames)), ([-1, -1, -1], [1.5, 1, 1]), meta, 30.0), fr, cams


@pytest.fixture(scope="module")
def xvfb():
    if shutil.which("Xvfb") is None:
        pytest.fail("Xvfb is missing: scripts/install.sh installs it (apt package xvfb)")
    display = f":{90 + os.getpid() % 9}"
    proc = subprocess.Popen(["Xvfb", display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    assert proc.poll() is None, "Xvfb did not start"
    yield display
    proc.terminate()
    proc.wait()


def test_window_input_changes_state_and_screenshots(xvfb, tmp_path):
    scene, _, _ = make_scene(tmp_path / "s.fourd")
    data = bytearray(scene.read_bytes())
    data[-20] ^= 0xFF  # damage the last frame: the viewer must say so and keep going
    scene.write_bytes(bytes(data))
    script = [{"frame": 2, "event": "drag", "from": [300, 300], "to": [420, 330]},
              {"frame": 3, "event": "key", "key": "p"},
              {"frame": 5, "event": "key", "key": "space"},
              {"frame": 9, "event": "key", "key": "space"},
              {"frame": 10, "event": "key", "key": "right"},
              {"frame": 11, "event": "key", "key": "h"},
              {"frame": 12, "event": "scroll", "dy": 3},
              {"frame": 13, "event": "key", "key": "p"}]
    (tmp_path / "script.json").write_text(json.dumps(script))
    env = {k: v for k, v in os.environ.items() if k != "PYOPENGL_PLATFORM"}  # a GLX window, not EGL
    env["DISPLAY"] = xvfb
    r = subprocess.run([sys.executable, "-m", "fourd.cli", "--quiet", "view", str(scene), "--size", "640x480",
                        "--script", str(tmp_path / "script.json"), "--max-frames", "16",
                        "--screenshot-dir", str(tmp_path / "shots"), "--state-out", str(tmp_path / "state.json"),
                        "--window-capture", str(tmp_path / "window.png")],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    st = json.loads((tmp_path / "state.json").read_text())
    assert abs(st["yaw"]) > 0.5  # the drag orbited the camera
    assert st["frame"] == 1 and not st["playing"]  # played 4 frames (wrapping at 4), paused, stepped
    assert any("frame 3 failed to load" in e and "checksum" in e for e in st["errors"])
    assert st["info"].startswith("s.fourd: 4 frames, compact colours + SH") and st["points"] == 6000
    assert len(st["screenshots"]) == 2
    a, b = (cv2.imread(p) for p in st["screenshots"])
    assert a.shape == (480, 640, 3) and a.max() > 100
    assert np.abs(a.astype(int) - b).mean() > 1  # zoom, playback and step changed the view
    win = cv2.imread(str(tmp_path / "window.png"))
    assert win.shape == (480, 640, 3)
    panel = win[20:200, 20:250]
    assert (panel.std() > 20), "the imgui panel should be drawn"


def test_headless_gl_matches_torch_renderer(tmp_path):
    from fourd.bake.render import render_baked
    from fourd.gl.baked_renderer import BakedRenderer
    from fourd.train.losses import psnr

    _, frames, cams = make_scene(tmp_path / "s.fourd")
    cam = cams[1]
    r = BakedRenderer(160, 120)
    r.upload(frames[2])
    r.render(cam, K=8, background=(0.1, 0.2, 0.3), near=0.1, far=10.0)
    gl = torch.from_numpy(r.read()).float() / 255
    r.release()
    ref = render_baked(frames[2], cam, K=8, near=0.1, far=10.0, background=(0.1, 0.2, 0.3), backend="torch")
    assert psnr(gl, ref) >= 40
