"""fourd render: MP4s that decode right, frames equal to the viewer's, Ray chunks identical to a
serial render (even when a worker dies), and bad input refused before rendering."""

import json
import os

import numpy as np
import pytest
import torch

from fourd.cli import main
from fourd.offline.video import RenderJob, checksum, render_chunk, render_ray

pytestmark = pytest.mark.gl


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "viewer"))
    from test_window import make_scene

    path, _, _ = make_scene(tmp_path_factory.mktemp("scene") / "s.fourd", frames=3, N=4000)
    return path


def test_mp4_decodes_with_frames_size_fps(scene, tmp_path):
    import imageio.v3 as iio

    out = tmp_path / "o.mp4"
    assert main(["--quiet", "render", str(scene), "--orbit", "--frames", "12", "--fps", "24", "--size", "96x64",
                 "--out", str(out)]) == 0
    frames = iio.imread(out)
    assert frames.shape == (12, 64, 96, 3)
    assert iio.immeta(out)["fps"] == 24
    assert frames.max() > 100  # something was drawn


def test_frame_equals_viewer_screenshot(scene, tmp_path):
    import cv2

    from fourd.offline.paths import default_orbit
    from fourd.train.losses import psnr

    path = default_orbit(scene, 8, False, 30.0, (96, 64))
    job = RenderJob(str(scene), path.to_json(), 8, K=6)
    frames = render_chunk(job, [5])
    t = path.sample(8)[5]
    cam = path.camera_at(t)
    (tmp_path / "cam.json").write_text(json.dumps(cam.to_dict()))
    shot = tmp_path / "shot.png"
    assert main(["--quiet", "view", str(scene), "--headless", "--camera", str(tmp_path / "cam.json"),
                 "--frame", str(path.scene_frame(t, 3)), "--K", "6", "--screenshot", str(shot)]) == 0
    a = torch.from_numpy(frames[0]).float() / 255
    b = torch.from_numpy(cv2.imread(str(shot))[..., ::-1].copy()).float() / 255
    assert psnr(a, b) >= 40


@pytest.mark.slow
def test_ray_chunks_match_serial_even_when_a_worker_dies(scene, tmp_path, monkeypatch):
    from fourd.offline.paths import default_orbit

    path = default_orbit(scene, 10, True, 30.0, (64, 48))
    job = RenderJob(str(scene), path.to_json(), 10, K=4)
    serial = render_chunk(job, list(range(10)))
    monkeypatch.setenv("FOURD_TEST_FAIL_CHUNK_ONCE", "4")  # the worker rendering frames 4.. dies once
    monkeypatch.setenv("FOURD_TEST_FAIL_MARKER", str(tmp_path / "killed"))
    distributed = render_ray(job, list(range(10)), workers=2, address=None, chunk=4)
    assert (tmp_path / "killed").is_file(), "the failure hook did not fire"
    assert len(distributed) == 10
    assert checksum(distributed) == checksum(serial)


def test_bad_input_is_refused_before_rendering(scene, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"keyframes": [1, 2')
    assert main(["--quiet", "render", str(scene), "--path", str(bad), "--out", str(tmp_path / "x.mp4")]) == 2
    k = {"K": np.eye(3).tolist(), "R": np.eye(3).tolist(), "T": [0, 0, 3], "H": 8, "W": 8}
    zero = tmp_path / "zero.json"
    zero.write_text(json.dumps({"keyframes": [{"time": 0, **k}, {"time": 0, **k}]}))
    assert main(["--quiet", "render", str(scene), "--path", str(zero), "--out", str(tmp_path / "y.mp4")]) == 2
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert main(["--quiet", "render", str(scene), "--orbit", "--frames", "2",
                 "--out", str(blocker / "v.mp4")]) == 2
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "y.mp4").exists()


def test_unwritable_output_is_refused(scene, tmp_path):
    from fourd.errors import FourdError
    from fourd.io import check_output

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: a read-only folder is still writable; the file-as-folder case in "
                        "test_bad_input_is_refused_before_rendering covers the same check")
        with pytest.raises(FourdError, match="permission denied"):
            check_output(ro / "v.mp4")
    finally:
        ro.chmod(0o700)
