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


def test_training_leaves_out_the_camera_the_carve_found_out_of_step(tiny_ev, tmp_path):
    """carve.json's cameras_out_of_step: the camera is not trained on (or on with
    --no-drop-out-of-step); a report without the entry (older carves) changes nothing."""
    import json

    from fourd.config import TrainConfig
    from fourd.train.data import split_cameras
    from fourd.train.run import leave_out_of_step

    (tmp_path / "carve").mkdir()
    report = tmp_path / "carve" / "carve.json"
    everyone = split_cameras(open_dataset(tiny_ev), None)[0]
    late = everyone[2]
    report.write_text(json.dumps({"cameras_out_of_step": [{"camera": late, "shift": -2}]}))
    for drop, want in ((True, [c for c in everyone if c != late]), (False, everyone)):
        video = open_dataset(tiny_ev)
        leave_out_of_step(video, TrainConfig(dataset=str(tiny_ev), drop_out_of_step=drop), tmp_path)
        assert split_cameras(video, None)[0] == want
    report.write_text(json.dumps({"frames": []}))
    video = open_dataset(tiny_ev)
    leave_out_of_step(video, TrainConfig(dataset=str(tiny_ev)), tmp_path)
    assert split_cameras(video, None)[0] == everyone
