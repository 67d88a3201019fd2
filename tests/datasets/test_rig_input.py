"""Calibration and masks a real rig can get wrong: a folding distortion model, a colour matrix of
the wrong shape, a camera whose masks are all empty."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from fourd.datasets import open_dataset
from fourd.errors import DataError
from fourd.structures.cameras import distortion_fold

pytestmark = pytest.mark.gl  # the captures are rendered with GL


def test_distortion_fold_detection():
    K = np.array([[500.0, 0, 256], [0, 500, 256], [0, 0, 1]])
    assert distortion_fold([-0.1, 0.02, 0, 0, 0], K, 512, 512) is None  # a usual lens
    assert distortion_fold([0.0, 0.0, 0, 0, 0], K, 512, 512) is None
    fold = distortion_fold([-1.5, 0.0, 0, 0, 0], K, 512, 512)  # turns back at r_d ≈ 0.31 < corner 0.72
    assert fold is not None and fold < 0.72


def test_folding_distortion_is_refused_naming_the_camera(tiny_ev, tmp_path):
    from fourd.datasets.easyvolcap import write_easyvolcap_cameras

    cap = shutil.copytree(tiny_ev, tmp_path / "cap")
    cams = open_dataset(cap).cameras
    D = cams.D.clone()
    D[3, 0] = -2.0
    cams.D = D
    write_easyvolcap_cameras(cap, cams)
    with pytest.raises(DataError, match=rf"camera {cams.names[3]}: the distortion .* folds") as e:
        open_dataset(cap)
    assert "intri.yml" in str(e.value) and "fix:" in str(e.value)


def test_colour_calibration_of_the_wrong_shape(tiny_smc, tmp_path):
    import h5py

    cap = shutil.copytree(tiny_smc, tmp_path / "cap")
    annots = next((cap / "annotations").glob("*.smc"))
    with h5py.File(annots, "r+") as f:
        cid = sorted(f["Camera_Parameter"].keys())[2]
        del f["Camera_Parameter"][cid]["Color_Calibration"]
        f["Camera_Parameter"][cid]["Color_Calibration"] = np.eye(3, 4)
    with pytest.raises(DataError, match=rf"camera 0*{int(cid)}: Color_Calibration has shape \(3, 4\)"):
        open_dataset(cap)


def test_a_camera_with_every_mask_empty_is_left_out(tiny_ev, tmp_path):
    import cv2

    from fourd.carve.run import carve_sequence
    from fourd.config import CarveConfig
    from fourd.train.data import split_cameras

    cap = shutil.copytree(tiny_ev, tmp_path / "cap")
    video = open_dataset(cap)
    blind = video.train_cameras[1]
    for p in (cap / "masks" / blind).iterdir():
        m = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(p), np.zeros_like(m))
    video = open_dataset(cap)
    assert video.empty_mask_cameras() == [blind]
    train, held = split_cameras(video, None)
    assert blind not in train and blind not in held and len(train) == len(video.train_cameras) - 1
    _, report = carve_sequence(video, CarveConfig(points=1500, resolution=64))
    assert blind not in report["cameras"]


def _toolkit_img_calib(img_bgr: np.ndarray, bgr_calib: np.ndarray) -> np.ndarray:
    """The colour calibration as DNA-Rendering's maintainers apply it (their issue #8): per BGR
    channel a·x² + b·x + c in floating point, then rounded and saturated to 8 bits. Written here
    pixel-wise and independently of fourd's lookup table."""
    out = np.empty(img_bgr.shape, np.float64)
    for i in range(3):
        x = img_bgr[..., i].astype(np.float64)
        out[..., i] = bgr_calib[i, 0] * x ** 2 + bgr_calib[i, 1] * x + bgr_calib[i, 2]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def test_colour_calibration_is_applied_on_load_as_the_toolkit_does(tiny_smc, tmp_path):
    import h5py

    cap = shutil.copytree(tiny_smc, tmp_path / "cap")
    annots = next((cap / "annotations").glob("*.smc"))
    # different quadratics per channel, so a swapped channel order or a missing term shows
    calib = np.array([[4e-4, 0.85, 6.0],     # B
                      [-3e-4, 1.10, -2.0],   # G
                      [0.0, 0.92, 12.0]])    # R
    with h5py.File(annots, "r+") as f:
        cid = sorted(f["Camera_Parameter"].keys())[1]
        del f["Camera_Parameter"][cid]["Color_Calibration"]
        f["Camera_Parameter"][cid]["Color_Calibration"] = calib
    raw = open_dataset(cap, color_calibration=False)
    got = open_dataset(cap)
    name = got.camera_names[1]
    f0 = got.frames[0]
    stored = raw.image(f0, name)  # RGB as stored
    expect = _toolkit_img_calib(stored[..., ::-1], calib)[..., ::-1]
    assert np.array_equal(got.image(f0, name), expect)
    assert not np.array_equal(expect, stored)
    # the other cameras carry the identity ([[0, 1, 0]] × 3) and read as stored
    other = got.camera_names[0]
    assert np.array_equal(got.image(f0, other), raw.image(f0, other))
    assert np.allclose(got.color_calibration[other], [[0, 1, 0]] * 3)
    # undistorted, cropped views carry the corrected colours too
    v = got.view(f0, name)
    assert abs(float(v.image.mean()) - float(expect.mean())) < 3
