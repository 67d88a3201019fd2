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


def _turned(cams: Cameras, Q: np.ndarray, s: float, t: np.ndarray) -> Cameras:
    """The same rig in a world moved by X' = s Q X + t (images unchanged)."""
    R = cams.R.double() @ torch.from_numpy(Q.T)
    T = s * cams.T.double() - (R @ torch.from_numpy(t))
    return Cameras(cams.K, R, T, cams.H, cams.W, names=list(cams.names))


def test_orbit_goes_round_the_rigs_own_up():
    """A capture whose world is z-up (ZJU-MoCap, many rigs), in millimetres, off the origin: the default
    orbit circles the subject about the rig's up at its cameras' height, as it does for a y-up rig."""
    from fourd.offline.paths import rig_orbit

    ring = Cameras.ring(12, 3.0, 0.6, target=(0, 0.9, 0), H=48, W=64)  # y-up, looking down a little
    Q = np.array([[0.8, -0.6, 0.0], [0.0, 0.0, -1.0], [0.6, 0.8, 0.0]])  # y → −z turned about z: z-up
    s, t = 1000.0, np.array([2500.0, -1000.0, 700.0])
    moved = _turned(ring, Q, s, t)
    up = moved.up_direction()
    np.testing.assert_allclose(up, Q @ [0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(ring.up_direction(), [0, 1, 0], atol=1e-6)
    lo, hi = np.array([-0.3, 0.0, -0.3]), np.array([0.3, 1.8, 0.3])
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]) @ Q.T * s + t
    path = rig_orbit((corners.min(0), corners.max(0)), moved, 40, False, 20.0)
    target = (corners.min(0) + corners.max(0)) / 2
    for f in range(0, 40, 5):
        cam = path.camera_at(f / 20.0)
        C = cam.centers[0].double().numpy() - target
        along = C @ up
        assert abs(along - (0.6 - 0.0) * s) < 0.02 * s  # the rig's height above the subject's middle
        assert abs(np.linalg.norm(C - along * up) - 3.0 * s) < 0.03 * s
        assert float(-cam.R[0, 1].double().numpy() @ up) > 0.9  # upright in the image


def test_up_direction_of_an_arc_and_of_cameras_not_on_a_plane():
    """A frontal arc of cameras all tilted down: the centres' plane gives the true up (their mean
    image-up leans back); cameras scattered in 3D: the mean image-up."""
    arc = Cameras.look_at([[3 * np.sin(a), 1.5, 3 * np.cos(a)] for a in np.linspace(-0.8, 0.8, 7)], [0, 0.5, 0])
    np.testing.assert_allclose(arc.up_direction(), [0, 1, 0], atol=1e-6)
    lean = -arc.R[:, 1].double().numpy().mean(0)
    assert lean[1] / np.linalg.norm(lean) < 0.99  # the image-ups alone lean
    scattered = Cameras.look_at([[3, 0, 0.5], [0, 3, -2.5], [-3, 0, 1], [0, -3, -1], [2, 2, 2.5]], [0, 0, 0], up=(0, 0, 1))
    C = scattered.centers.double().numpy()
    sv = np.linalg.svd(C - C.mean(0), compute_uv=False)
    assert sv[2] > 0.5 * sv[1]  # not near a plane: the image-ups decide
    mean_up = -scattered.R[:, 1].double().numpy().mean(0)
    np.testing.assert_allclose(scattered.up_direction(), mean_up / np.linalg.norm(mean_up), atol=1e-9)
