"""A camera whose frame numbers run ahead of or behind the rest is named with the shift that fixes it."""

import dataclasses
import shutil

import pytest
from conftest import TINY

from fourd.carve.run import carve_sequence
from fourd.config import CarveConfig
from fourd.datasets import open_dataset
from fourd.datasets.synth import synthesize

CFG = CarveConfig(points=3000, resolution=96, vote=0.95)


@pytest.fixture(scope="module")
def walking(tmp_path_factory):
    """Nine frames of the walk, a third of a second apart (the legs move between frames)."""
    recipe = dataclasses.replace(TINY, frames=9, fps=10.0)
    return synthesize(recipe, tmp_path_factory.mktemp("walk9"), "easyvolcap")


def _renumbered(src, dst, cam, shift):
    """A copy of the capture where camera ``cam``'s file f holds the source's frame f + shift
    (the ends repeat the nearest frame)."""
    shutil.copytree(src, dst)
    for kind in ("images", "masks"):
        folder = dst / kind / cam
        files = sorted(folder.iterdir())
        data = [p.read_bytes() for p in files]
        for f, p in enumerate(files):
            p.write_bytes(data[min(max(f + shift, 0), len(files) - 1)])
    return dst


def test_a_camera_out_of_step_is_named_with_its_shift(walking, tmp_path):
    video = open_dataset(walking)
    _, clean = carve_sequence(video, CFG)
    assert clean["cameras_out_of_step"] == []  # an exact rig: every camera in step
    cam = video.train_cameras[1]
    _, late = carve_sequence(open_dataset(_renumbered(walking, tmp_path / "late", cam, 2)), CFG)
    got = late["cameras_out_of_step"]
    assert [(o["camera"], o["shift"]) for o in got] == [(cam, -2)]  # its frame f − 2 shows the others' f
    assert got[0]["iou_shifted"] > got[0]["iou_in_step"]


def test_a_still_subject_names_no_camera(walking, tmp_path):
    """Every frame the same: no shift matches better than another, nothing is named."""
    still = shutil.copytree(walking, tmp_path / "still")
    for kind in ("images", "masks"):
        for folder in (still / kind).iterdir():
            files = sorted(folder.iterdir())
            for p in files[1:]:
                p.write_bytes(files[0].read_bytes())
    _, report = carve_sequence(open_dataset(still), CFG)
    assert report["cameras_out_of_step"] == []


def test_training_reads_the_camera_shifted_or_leaves_it_out(walking, tmp_path):
    """carve.json's cameras_out_of_step: with --out-of-step shift (the default) the camera's frame f
    is read from its file f + shift (the ends repeat the nearest frame), with drop it is not trained
    on, with keep it is read as numbered; a report without the entry (older carves) changes nothing."""
    import json

    import numpy as np

    from fourd.config import TrainConfig
    from fourd.train.data import split_cameras
    from fourd.train.run import handle_out_of_step

    src = open_dataset(walking)
    everyone = split_cameras(src, None)[0]
    late = everyone[1]
    cap = _renumbered(walking, tmp_path / "late", late, 2)
    (tmp_path / "run" / "carve").mkdir(parents=True)
    report = tmp_path / "run" / "carve" / "carve.json"
    report.write_text(json.dumps({"cameras_out_of_step": [{"camera": late, "shift": -2}]}))

    def handled(mode):
        video = open_dataset(cap)
        handle_out_of_step(video, TrainConfig(dataset=str(cap), out_of_step=mode), tmp_path / "run")
        return video

    shifted = handled("shift")
    assert split_cameras(shifted, None)[0] == everyone
    for f in src.frames[2:]:  # back in step (the first two frames repeat its file 0)
        assert np.array_equal(shifted.mask(f, late), src.mask(f, late))
        assert np.array_equal(shifted.view(f, late).image, src.view(f, late).image)
    assert np.array_equal(shifted.mask(src.frames[0], late), src.mask(src.frames[2], late))
    assert split_cameras(handled("drop"), None)[0] == [c for c in everyone if c != late]
    kept = handled("keep")
    assert split_cameras(kept, None)[0] == everyone and not kept.frame_shift
    report.write_text(json.dumps({"frames": []}))
    assert not handled("shift").frame_shift
