"""Camera-path math: keyframes hit exactly, rotations orthonormal, orbits round, splines C1, loops close."""

import json

import numpy as np
import pytest
import torch

from fourd.errors import FourdError
from fourd.offline.paths import CameraPath, Keyframe, orbit
from fourd.structures.cameras import Cameras


def keyed_path(interp="catmull_rom"):
    eyes = [[0, 0.5, -3.0], [2.0, 0.8, -2.0], [3.0, 1.5, 0.5], [1.0, 0.2, 2.5]]
    keys = [Keyframe(t, Cameras.look_at([e], [0, 0.3, 0], H=120, W=160, fov_y_deg=30 + 5 * i), frame=10 * i)
            for i, (t, e) in enumerate(zip([0.0, 1.0, 2.5, 3.0], eyes))]
    return CameraPath(keys, interp, fps=20)


@pytest.mark.parametrize("interp", ["catmull_rom", "linear"])
def test_keyframes_are_hit_exactly(interp):
    p = keyed_path(interp)
    for k in p.keyframes:
        c = p.camera_at(k.time)
        torch.testing.assert_close(c.centers, k.camera.centers, atol=1e-5, rtol=0)
        torch.testing.assert_close(c.R, k.camera.R, atol=1e-5, rtol=0)
        torch.testing.assert_close(c.K, k.camera.K, atol=1e-4, rtol=0)


def test_rotations_stay_orthonormal_and_intrinsics_linear():
    p = keyed_path()
    for t in np.linspace(0, 3, 37):
        c = p.camera_at(float(t))  # Cameras validates R (orthonormal, det +1) on construction
        R = c.R[0].double()
        assert torch.allclose(R @ R.T, torch.eye(3, dtype=torch.float64), atol=1e-5)
    mid = p.camera_at(0.5)
    torch.testing.assert_close(mid.K, (p.keyframes[0].camera.K + p.keyframes[1].camera.K) / 2, atol=1e-3, rtol=0)


def test_spline_is_c1():
    p = keyed_path()
    h = 1e-4
    for t in (1.0, 2.5):  # across interior keyframes
        before = (p.camera_at(t).centers - p.camera_at(t - h).centers) / h
        after = (p.camera_at(t + h).centers - p.camera_at(t).centers) / h
        assert torch.allclose(before, after, atol=2e-2 * float(after.norm())), (before, after)


def test_orbit_radius_constant_and_loop_closes():
    p = orbit([0.1, 0.4, 0.0], radius=2.0, height=0.5, n_keys=8, seconds=4.0)
    assert p.loop
    for t in np.linspace(0, 4, 41):
        C = p.camera_at(float(t)).centers[0].double()
        r = float(torch.hypot(C[0] - 0.1, C[2] - 0.0))
        assert abs(r - 2.0) < 0.02 and abs(float(C[1]) - 0.9) < 1e-4
    torch.testing.assert_close(p.camera_at(0.0).centers, p.camera_at(4.0).centers, atol=1e-5, rtol=0)
    h = 1e-3
    v_end = (p.camera_at(4.0).centers - p.camera_at(4.0 - h).centers) / h
    v_start = (p.camera_at(h).centers - p.camera_at(0.0).centers) / h
    assert torch.allclose(v_end, v_start, atol=0.05 * float(v_start.norm()))
    assert p.n_frames() == 120  # a loop does not repeat its first frame


def test_time_modes():
    p = keyed_path()
    assert p.scene_frame(2.5, 100) == 50  # realtime: 2.5 s × 20 fps
    p.time_mode = "follow"
    assert p.scene_frame(1.75, 100) == 15  # halfway between keyframe frames 10 and 20
    p.time_mode, p.frozen_frame = "frozen", 7
    assert p.scene_frame(2.9, 100) == 7


def test_json_round_trip(tmp_path):
    p = keyed_path()
    back = CameraPath.load(p.save(tmp_path / "p.json"))
    for t in (0.3, 1.7, 2.9):
        torch.testing.assert_close(back.camera_at(t).R, p.camera_at(t).R, atol=1e-5, rtol=0)


def test_bad_paths(tmp_path):
    bad = tmp_path / "b.json"
    bad.write_text("{not json")
    with pytest.raises(FourdError, match="malformed"):
        CameraPath.load(bad)
    d = keyed_path().to_json()
    d["keyframes"][2]["time"] = d["keyframes"][1]["time"]
    bad.write_text(json.dumps(d))
    with pytest.raises(FourdError, match="zero or negative duration"):
        CameraPath.load(bad)
    d = keyed_path().to_json()
    del d["keyframes"][0]["R"]
    bad.write_text(json.dumps(d))
    with pytest.raises(FourdError, match="needs time, K, R, T"):
        CameraPath.load(bad)
