"""Viewer state and input handling, without GL or a window."""

import numpy as np
import pytest
import torch

from fourd.structures.cameras import Cameras
from fourd.viewer.controls import Controls
from fourd.viewer.state import OrbitCamera, ViewerState


def test_orbit_camera_looks_at_its_target():
    oc = OrbitCamera(target=np.array([0.2, 0.5, -0.1]), yaw=0.7, pitch=0.3, distance=2.5)
    cam = oc.cameras(320, 240)
    uv, z = cam.project(torch.tensor(oc.target[None], dtype=torch.float32))
    torch.testing.assert_close(uv[0, 0], torch.tensor([160.0, 120.0]), atol=1e-3, rtol=0)
    assert abs(float(z[0, 0]) - 2.5) < 1e-4


def test_snapping_reproduces_a_capture_camera():
    target = np.array([0.0, 0.4, 0.0])
    cam = Cameras.look_at([[1.5, 1.2, -2.0]], target, H=240, W=320, fov_y_deg=35)
    oc = OrbitCamera()
    oc.set_from(cam, target)
    back = oc.cameras(320, 240)
    torch.testing.assert_close(back.R, cam.R, atol=1e-4, rtol=0)
    torch.testing.assert_close(back.centers, cam.centers, atol=1e-4, rtol=0)
    torch.testing.assert_close(back.K, cam.K, atol=1e-2, rtol=0)


def test_mouse_and_keys_edit_the_state():
    s = ViewerState(n_frames=10)
    c = Controls(s)
    yaw, dist = s.camera.yaw, s.camera.distance
    c.mouse_move(100, 100)
    c.mouse_button("left", True)
    c.mouse_move(150, 100)
    c.mouse_button("left", False)
    assert s.camera.yaw != yaw and s.moving
    c.scroll(2)
    assert s.camera.distance < dist
    t0 = s.camera.target.copy()
    c.key("w", True)
    c.update(0.1)
    c.key("w", False)
    assert np.linalg.norm(s.camera.target - t0) > 0
    c.key("space", True)
    assert s.playing
    c.update(0.2)  # 0.2 s at 30 fps: six frames
    assert s.frame == 6
    c.key("right", True)
    assert not s.playing and s.frame == 7
    c.key("m", True)
    assert s.mode == "depth"
    c.key("k", True)
    c.key("delete", True)
    assert s.keyframes == []
    c.key("p", True)
    assert s.screenshot_requested


def test_playback_loops_or_stops():
    s = ViewerState(n_frames=5, fps=10, playing=True)
    s.advance(0.7)
    assert s.frame == 2  # 7 frames later, wrapped
    s.loop, s.time, s.playing = False, 3.0, True
    s.advance(1.0)
    assert s.frame == 4 and not s.playing


def test_adaptive_quality_only_while_moving():
    s = ViewerState(K=8, target_fps=10)
    assert s.effective_quality() == (8, 1.0, 1.0)
    s.moving = True
    assert s.effective_quality()[0] <= 2  # a K-pass renderer peels less while moving
    s.adapt(500.0)  # too slow: resolution goes first, points are kept
    assert s.motion_scale < 1 and s.motion_fraction == 1.0
    for _ in range(5):
        s.adapt(500.0)
    assert s.motion_scale == pytest.approx(0.5) and s.motion_fraction < 1.0  # then points
    for _ in range(40):
        s.adapt(500.0)
    assert s.motion_scale == pytest.approx(0.25) and s.motion_fraction == pytest.approx(0.05)  # then pixels again
    for _ in range(200):
        s.adapt(10.0)  # fast again: back in the reverse order, up to full quality
    assert s.effective_quality() == (2, 1.0, 1.0)
    s.one_pass = True  # a one-pass renderer keeps K while moving (its cost is in the resolve)
    assert s.effective_quality()[0] == 8


def test_meshes_and_point_folders_open_as_scenes(tmp_path):
    from fourd.datasets.synth import resolve_asset
    from fourd.structures.points import write_ply
    from fourd.viewer.scene import MeshScene, PointsScene, open_scene

    sc = open_scene(resolve_asset("Fox.glb"))
    assert isinstance(sc, MeshScene) and len(sc) == 1
    f = sc.frame(0)
    assert f.xyz.shape == (200_000, 3)
    assert f.rgb[:, 0].mean() > f.rgb[:, 2].mean() + 0.2  # the fox's texture is orange
    for i in range(2):
        write_ply(tmp_path / f"{i:06d}.ply", torch.rand(50, 3) + i, {"colors": torch.rand(50, 3)})
    ps = open_scene(tmp_path)
    assert isinstance(ps, PointsScene) and ps.frames == [0, 1] and ps.frame(1).xyz.shape == (50, 3)


def test_adaptive_quality_ignores_one_slow_frame_and_settles():
    from fourd.viewer.state import ViewerState

    s = ViewerState(K=8, target_fps=10.0, moving=True)
    for _ in range(3):
        s.adapt(50.0)
    s.adapt(400.0)  # one hitch (a new frame uploaded): the median of three is still fast
    assert (s.motion_scale, s.motion_fraction) == (1.0, 1.0)
    for _ in range(3):
        s.adapt(150.0)  # really slow now
    assert s.motion_scale < 1.0
    s.adapt(90.0)
    s.adapt(90.0)  # the median follows after two frames
    scale = s.motion_scale
    for _ in range(10):
        s.adapt(90.0)  # within the budget but near it: keep what works, no back and forth
    assert s.motion_scale == scale
    for _ in range(10):
        s.adapt(40.0)
    assert s.motion_scale > scale
