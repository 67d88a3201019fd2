"""A capture laid out the way 4K4D's users and other renderers hand them over — RGBA cut-outs with no
mask folder, refined cameras in optimized/, background pictures in bkgd/, another tool's file
names — trains end to end with no extra options, and each part is taken up."""

import json
import shutil

import cv2
import numpy as np
from conftest import tiny_train_config

from fourd.datasets.easyvolcap import EasyVolcapCapture, read_easyvolcap_cameras, write_easyvolcap_cameras
from fourd.train.trainer import Trainer


def _four_k_four_d_style(src, dst):
    c = shutil.copytree(src, dst)
    for p in sorted((c / "images").rglob("*.jpg")):  # cut-outs over a grey plate, named by another tool
        m = cv2.imread(str(c / "masks" / p.parent.name / f"{p.stem}.png"), cv2.IMREAD_GRAYSCALE)
        bgr = cv2.imread(str(p))
        bgr[m == 0] = 0
        cv2.imwrite(str(p.with_name(f"frame_{int(p.stem):04d}.png")), np.dstack([bgr, m]))
        p.unlink()
    shutil.rmtree(c / "masks")
    (c / "optimized").mkdir()
    write_easyvolcap_cameras(c / "optimized", read_easyvolcap_cameras(c))
    (c / "bkgd").mkdir()
    video = EasyVolcapCapture(c)
    for i, n in enumerate(video.camera_names):  # a plate 60 levels from the training background
        cv2.imwrite(str(c / "bkgd" / f"{n}.jpg"), np.full((int(video.cameras.H[i]), int(video.cameras.W[i]), 3), 60, np.uint8))
    return c


def test_a_4k4d_style_capture_trains_with_no_options(tiny_ev, tmp_path):
    c = _four_k_four_d_style(tiny_ev, tmp_path / "cap")
    video = EasyVolcapCapture(c)
    info = video.info()
    assert (info["masks_from"], info["calibration"], info["backdrops"]) == (
        "alpha of the images", "optimized/intri.yml", len(video.camera_names))
    out = tmp_path / "run"
    tr = Trainer(tiny_train_config(c, out, refine_rig=False, align_surface=False, align_silhouettes=False))
    for _ in range(3):
        assert np.isfinite(tr.train_step()["loss"])
    rep = json.loads((out / "cameras" / "plate.json").read_text())["per_camera"]
    assert rep and all(r["plate"] == "given" for r in rep.values())
    tr.run.release()
