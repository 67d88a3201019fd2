"""ZJU-MoCap's own folders (annots.npy + camera folders + mask_cihp/ or mask/), read without unpickling."""

import shutil

import numpy as np
import pytest
import torch
from zju_capture import RunsCode, write_zju  # tests/zju_capture.py

from fourd.datasets import open_dataset
from fourd.datasets.easyvolcap import EasyVolcapCapture, write_easyvolcap
from fourd.datasets.zju import ZjuMocapCapture
from fourd.errors import DataError


def test_a_zju_mocap_folder_reads_as_the_capture_it_holds(tiny_ev, tmp_path):
    src = EasyVolcapCapture(tiny_ev)
    names = write_zju(src, tmp_path / "CoreView_377")
    z = open_dataset(tmp_path / "CoreView_377")
    assert isinstance(z, ZjuMocapCapture) and z.camera_names == names and z.frames == src.frames
    for attr in ("K", "R", "T", "D"):  # T back in metres
        torch.testing.assert_close(getattr(z.cameras, attr), getattr(src.cameras, attr), atol=1e-5, rtol=1e-5)
    for f in src.frames:
        for n, own in zip(names, src.camera_names):
            np.testing.assert_array_equal(z.image(f, n), src.image(f, own))
            np.testing.assert_array_equal(z.mask(f, n), src.mask(f, own))  # part id 14: the subject
    info = z.info(coverage_frames=1)
    assert info["layout"] == "zju_mocap" and info["masks_from"] == "mask_cihp/"
    # other tools read it after `fourd data convert`
    write_easyvolcap(z, tmp_path / "ev")
    back = EasyVolcapCapture(tmp_path / "ev")
    torch.testing.assert_close(back.cameras.T, src.cameras.T, atol=1e-5, rtol=1e-5)


def test_the_older_mask_folder_is_used_when_there_is_no_mask_cihp(tiny_ev, tmp_path):
    src = EasyVolcapCapture(tiny_ev)
    names = write_zju(src, tmp_path / "z", mask_dir="mask")
    z = open_dataset(tmp_path / "z")
    np.testing.assert_array_equal(z.mask(0, names[2]), src.mask(0, src.camera_names[2]))


def test_an_annots_file_that_asks_to_run_code_is_refused_without_running_it(tiny_ev, tmp_path):
    src = EasyVolcapCapture(tiny_ev)
    write_zju(src, tmp_path / "z")
    marker = tmp_path / "ran"
    ann = np.load(tmp_path / "z" / "annots.npy", allow_pickle=True).item()  # our own file: safe here
    ann["extra"] = RunsCode(marker)
    np.save(tmp_path / "z" / "annots.npy", np.array(ann, dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="annots.npy asks to build .*mkdir.*nothing run") as e:
        open_dataset(tmp_path / "z")
    assert not marker.exists()
    assert "annots.npy" in e.value.one_line()


@pytest.mark.parametrize("damage", ["truncated", "no_cams", "nan", "missing_image"])
def test_a_damaged_zju_folder_is_named(tiny_ev, tmp_path, damage):
    src = EasyVolcapCapture(tiny_ev)
    names = write_zju(src, tmp_path / "z")
    p = tmp_path / "z" / "annots.npy"
    ann = np.load(p, allow_pickle=True).item()
    if damage == "truncated":
        p.write_bytes(p.read_bytes()[:300])
    elif damage == "no_cams":
        del ann["cams"]
    elif damage == "nan":
        ann["cams"]["R"][1] = ann["cams"]["R"][1] * np.nan
    else:
        shutil.rmtree(tmp_path / "z" / names[0])
    if damage in ("no_cams", "nan"):
        np.save(p, np.array(ann, dtype=object), allow_pickle=True)
    with pytest.raises(DataError) as e:
        open_dataset(tmp_path / "z")
    assert ("annots.npy" in e.value.one_line()) or (names[0] in e.value.one_line())


def test_camera_folders_with_parentheses_become_names_calibration_files_hold(tiny_ev, tmp_path):
    """ZJU-MoCap 313/315 name their folders "Camera (1)": OpenCV's YAML cannot hold "K_Camera (1)" as
    a key, and `fourd data convert` (or a run writing its refined rig) stopped with a bare cv2.error.
    The cameras are read as "Camera_1" …, and the converted capture reads back."""
    from fourd.datasets.convert import convert

    src = EasyVolcapCapture(tiny_ev)
    names = write_zju(src, tmp_path / "z")
    ann = np.load(tmp_path / "z" / "annots.npy", allow_pickle=True).item()
    for i, n in enumerate(names):
        (tmp_path / "z" / n).rename(tmp_path / "z" / f"Camera ({i + 1})")
        (tmp_path / "z" / "mask_cihp" / n).rename(tmp_path / "z" / "mask_cihp" / f"Camera ({i + 1})")
    for fr in ann["ims"]:
        fr["ims"] = [f"Camera ({names.index(p.split('/')[0]) + 1})/{p.split('/')[1]}" for p in fr["ims"]]
    np.save(tmp_path / "z" / "annots.npy", np.array(ann, dtype=object), allow_pickle=True)
    z = open_dataset(tmp_path / "z")
    assert z.camera_names == [f"Camera_{i + 1}" for i in range(len(names))]
    convert(tmp_path / "z", tmp_path / "ev")
    back = EasyVolcapCapture(tmp_path / "ev")
    assert back.camera_names == z.camera_names
    np.testing.assert_array_equal(back.image(1, "Camera_2"), src.image(1, src.camera_names[1]))


def test_names_calibration_files_cannot_hold_are_refused_in_one_line(tmp_path):
    from fourd.datasets.easyvolcap import write_easyvolcap_cameras
    from fourd.structures.cameras import Cameras

    cams = Cameras.ring(2, radius=3.0)
    cams.names = ["cam.left", "cam.right"]
    with pytest.raises(DataError, match=r"cannot be keys of intri.yml.*'cam_left'"):
        write_easyvolcap_cameras(tmp_path, cams)


def test_more_calibrated_cameras_than_image_folders_are_matched_by_the_folders_numbers(tiny_ev, tmp_path):
    """CoreView_313/315 calibrate 23 cameras and ship images of 21: each folder's number is its
    camera's place in cams."""
    src = EasyVolcapCapture(tiny_ev)
    names = write_zju(src, tmp_path / "z")
    p = tmp_path / "z" / "annots.npy"
    ann = np.load(p, allow_pickle=True).item()
    drop = 2  # Camera_B3's images are not shipped
    shutil.rmtree(tmp_path / "z" / names[drop])
    for fr in ann["ims"]:
        fr["ims"].pop(drop)
    np.save(p, np.array(ann, dtype=object), allow_pickle=True)
    z = open_dataset(tmp_path / "z")
    assert z.camera_names == names[:drop] + names[drop + 1:]
    keep = [i for i in range(len(names)) if i != drop]
    torch.testing.assert_close(z.cameras.R, src.cameras.R[keep], atol=1e-6, rtol=1e-6)
    np.testing.assert_array_equal(z.image(0, names[4]), src.image(0, src.camera_names[4]))
