"""A run on some of a capture's frames: ``--frames`` (a segment of a long capture, the frames the
subject is in) and carved points of fewer frames than the capture."""

import shutil

import cv2
import numpy as np
import pytest

from conftest import tiny_train_config
from fourd.errors import DataError, FourdError
from fourd.train.evaluate import evaluate
from fourd.train.run import load_run
from fourd.train.trainer import Trainer


def test_frames_limit_the_run_and_load_run_reopens_them(tiny_ev, tmp_path):
    """A capture whose first frame has no subject (every mask empty, as when a performer walks in)
    is refused with the fix `--frames`; with it the run carves, trains, saves and evaluates only
    those frames, and load_run opens the capture limited to them again."""
    c = shutil.copytree(tiny_ev, tmp_path / "cap")
    for p in (c / "masks").rglob("000000.png"):
        cv2.imwrite(str(p), np.zeros_like(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)))
    with pytest.raises(DataError, match="--frames"):
        Trainer(tiny_train_config(c, tmp_path / "refused"))
    out = tmp_path / "run"
    tr = Trainer(tiny_train_config(c, out, frames="1:"))
    assert tr.video.frames == [1, 2] and tr.model.frames == [1, 2]
    for _ in range(3):
        assert tr.train_step()["frame"] in (1, 2)
    tr.save()
    tr.run.release()
    r = load_run(out)
    assert r.video.frames == [1, 2]
    m = evaluate(r, tmp_path / "eval", write_images=False)
    assert {row["frame"] for row in m["per_frame"]} <= {1, 2}
    with pytest.raises(FourdError, match="not in the capture"):
        Trainer(tiny_train_config(c, tmp_path / "bad", frames="5:9"))


def test_points_of_some_frames_train_those_frames(tiny_ev, tmp_path):
    """Points carved from two of the capture's three frames (`fourd carve --frames 0:2`) given to a
    run: it trains those two, said; points the capture has no frame for are refused."""
    from fourd.cli import main

    assert main(["--quiet", "carve", "--dataset", str(tiny_ev), "--out", str(tmp_path / "pts"), "--frames", "0:2",
                 "--points", "2000", "--resolution", "64"]) == 0
    path = tmp_path / "pts" / "points.safetensors"
    tr = Trainer(tiny_train_config(tiny_ev, tmp_path / "run", points_file=str(path)))
    assert tr.video.frames == [0, 1] and tr.model.frames == [0, 1]
    assert tr.train_step()["frame"] in (0, 1)
    tr.save()
    tr.run.release()
    assert load_run(tmp_path / "run").video.frames == [0, 1]
    with pytest.raises(FourdError, match="frames the capture does not have"):
        Trainer(tiny_train_config(tiny_ev, tmp_path / "other", points_file=str(path), frames="1:"))


def test_a_run_whose_capture_moved_is_evaluated_and_baked_with_its_new_place(tiny_ev, tmp_path):
    """The run's config names the capture's old path: eval and bake refuse in one line naming
    config.json with the fix `--dataset PATH`, and work with it."""
    import json

    from fourd.cli import main

    c = shutil.copytree(tiny_ev, tmp_path / "cap")
    out = tmp_path / "run"
    tr = Trainer(tiny_train_config(c, out, frames="0:2"))
    tr.train_step()
    tr.save()
    tr.run.release()
    c.rename(tmp_path / "moved")
    with pytest.raises(FourdError, match="--dataset PATH") as e:
        load_run(out)
    assert "config.json" in e.value.one_line()
    assert main(["--quiet", "eval", str(out), "--out", str(tmp_path / "ev"), "--frames", "1"]) == 2
    assert main(["--quiet", "eval", str(out), "--out", str(tmp_path / "ev"), "--frames", "1",
                 "--dataset", str(tmp_path / "moved")]) == 0
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert {r["frame"] for r in m["per_frame"]} <= {0, 1}
    assert main(["--quiet", "bake", str(out), "--out", str(tmp_path / "s.fourd"), "--appearance", "views",
                 "--dataset", str(tmp_path / "moved")]) == 0
    assert (tmp_path / "s.fourd").stat().st_size > 0
    # fourd render of the run itself (unbaked): refused without --dataset, drawn with it; a baked
    # scene refuses --dataset (it holds what it renders)
    video = tmp_path / "orbit"
    args = ["--quiet", "render", str(out), "--orbit", "--frames", "2", "--size", "48x32", "--out", str(video)]
    assert main(args) == 2
    assert main(args + ["--dataset", str(tmp_path / "moved")]) == 0
    assert len(list(video.glob("*.png"))) == 2
    assert main(["--quiet", "render", str(tmp_path / "s.fourd"), "--orbit", "--frames", "2", "--size", "48x32",
                 "--out", str(tmp_path / "o2"), "--dataset", str(tmp_path / "moved")]) == 2
