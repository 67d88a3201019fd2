"""Cameras that dropped frames: each sits out the frames it lacks (its views of them are skipped by
carving, training, evaluation, the bake and the writers) instead of every camera's sequence being
cut to the frames all of them have."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from fourd.datasets.base import frames_with_gaps
from fourd.datasets.easyvolcap import EasyVolcapCapture
from fourd.errors import DataError


def test_the_rule_on_frame_sets(tmp_path, capsys, monkeypatch):
    from fourd import console

    monkeypatch.setattr(console.console, "quiet", False)  # (an earlier test's --quiet may linger)
    full = set(range(30))
    rig = {f"{i:02d}": set(full) for i in range(8)}
    assert frames_with_gaps(rig, tmp_path) == (sorted(full), {})
    # one camera dropped a frame, another started late: both sit those frames out, none is cut
    frames, absent = frames_with_gaps({**rig, "03": full - {7}, "05": full - set(range(10))}, tmp_path)
    assert frames == sorted(full) and absent == {"03": frozenset({7}), "05": frozenset(range(10))}
    # a frame more than a quarter of the cameras (2 of 8) lack is left out for every camera
    frames, absent = frames_with_gaps({**rig, "01": full - {4}, "02": full - {4}, "03": full - {4, 9}}, tmp_path)
    assert 4 not in frames and len(frames) == 29 and absent == {"03": frozenset({9})}
    # a rig whose every camera dropped its own frame: four named, the rest in one line
    capsys.readouterr()
    frames, absent = frames_with_gaps({n: full - {i} for i, n in enumerate(rig)}, tmp_path)
    said = " ".join(capsys.readouterr().err.split())
    assert frames == sorted(full) and len(absent) == 8
    assert said.count("lacks frame(s)") == 4 and "4 more cameras lack frames (04, 05, 06, 07: 4 views)" in said, said
    # a camera with no image at all is a copy that failed: refused, naming it
    with pytest.raises(DataError, match="'03' has no image at all"):
        frames_with_gaps({**rig, "03": set()}, tmp_path)
    with pytest.raises(DataError, match="enough cameras"):  # nothing left
        frames_with_gaps({n: {i} for i, n in enumerate(rig)}, tmp_path)


def _gappy(tiny_ev, tmp_path, meta: dict | None = None):
    """The tiny capture with training camera 'a' lacking frame 1 and held-out camera 'h' frame 2."""
    cap = shutil.copytree(tiny_ev, tmp_path / "gappy")
    src = EasyVolcapCapture(tiny_ev)
    a = src.train_cameras[1]
    h = src.held_out[0]
    (cap / "images" / a / "000001.jpg").unlink()
    (cap / "images" / h / "000002.jpg").unlink()
    (cap / "masks" / h / "000002.png").unlink(missing_ok=True)
    if meta is not None:
        old = json.loads((cap / "fourd.json").read_text()) if (cap / "fourd.json").is_file() else {}
        (cap / "fourd.json").write_text(json.dumps({**old, **meta}))
    return cap, src, a, h


def test_a_capture_with_dropped_frames_keeps_them(tiny_ev, tmp_path, capsys, monkeypatch):
    from fourd import console

    monkeypatch.setattr(console.console, "quiet", False)  # (an earlier test's --quiet may linger)
    cap, src, a, h = _gappy(tiny_ev, tmp_path)
    capsys.readouterr()
    got = EasyVolcapCapture(cap)
    said = " ".join(capsys.readouterr().err.split())
    assert f"camera '{a}' lacks frame(s) 1" in said and "skipped" in said
    assert got.frames == src.frames == [0, 1, 2] and got.camera_names == src.camera_names
    assert not got.has(1, a) and got.has(0, a) and got.has(2, a) and not got.has(2, h)
    assert got.cameras_at(1) == [n for n in src.camera_names if n != a] and got.frames_of(h) == [0, 1]
    assert got.info()["gaps"] == {a: 1, h: 1} and got.info()["left_out"] == {}
    np.testing.assert_array_equal(got.image(1, src.train_cameras[0]), src.image(1, src.train_cameras[0]))
    with pytest.raises(DataError, match=f"camera '{a}' has no image of frame 1"):
        got.view(1, a)
    # written as EasyVolcap or SMC, the gaps stay gaps, read so again
    from fourd.datasets.easyvolcap import write_easyvolcap
    from fourd.datasets.smc import SMCCapture, write_smc

    again = EasyVolcapCapture(write_easyvolcap(got, tmp_path / "ev"))
    assert again.frames == [0, 1, 2] and again.absent == got.absent
    smc = SMCCapture(write_smc(got, tmp_path / "smc"))
    assert smc.frames == [0, 1, 2] and smc.absent == got.absent
    np.testing.assert_array_equal(smc.mask(2, a), got.mask(2, a))


def test_the_older_choices_stay_in_fourd_json(tiny_ev, tmp_path):
    cap, _, a, h = _gappy(tiny_ev, tmp_path / "l", {"incomplete_cameras": "leave_out"})
    got = EasyVolcapCapture(cap)  # each lacks a third of the sequence: left out
    assert got.frames == [0, 1, 2] and a not in got.camera_names and h not in got.held_out and not got.absent
    cap, _, a, h = _gappy(tiny_ev, tmp_path / "k", {"incomplete_cameras": "keep"})
    got = EasyVolcapCapture(cap)
    assert got.frames == [0] and a in got.camera_names and not got.absent


def test_train_eval_and_bake_skip_the_missing_views(tiny_ev, tmp_path):
    """Carving, the trainer's draws and source choice, evaluation and both bakes pass over the
    missing views: every frame is carved and baked, the held-out camera is scored on the frames it
    has, no training step or source list asks for a missing view, and the view-table bake still
    reproduces the model on the frame a training camera dropped."""
    from conftest import tiny_train_config

    from fourd.bake.bake import bake_frame_views
    from fourd.bake.render import render_baked
    from fourd.train.evaluate import evaluate
    from fourd.train.losses import psnr
    from fourd.train.trainer import Trainer

    cap, src, a, h = _gappy(tiny_ev, tmp_path)
    tr = Trainer(tiny_train_config(cap, tmp_path / "run"))
    assert tr.run.points.frames == [0, 1, 2]
    asked = []
    real = tr.video.view
    tr.video.view = lambda f, n, *k, **kw: asked.append((int(f), tr.video._cam(n)[1])) or real(f, n, *k, **kw)
    for _ in range(10):
        tr.train_step()
    assert asked and (1, a) not in asked and (2, h) not in asked
    # the sources of a render of frame 1 from near camera a are the nearest that have it
    near = tr.run.sampler.source_names(tr.video.cameras[a], None, 3, frame=1)
    assert a not in near and len(near) == 3
    m = evaluate(tr.run, tmp_path / "ev", frames=None, write_images=False)
    pairs = {(r["frame"], r["camera"]) for r in m["per_frame"]}
    assert len(pairs) == 3 * 2 - 1 and (2, h) not in pairs
    tr.video.view = real
    baked = bake_frame_views(tr.run, 1)
    row = baked.views.names.index(a)
    assert not baked.views.visible[row].any()
    assert a not in [baked.views.names[i] for i in baked.views.nearest(tr.video.cameras[a].centers[0]).tolist()]
    tgt = tr.run.sampler.target(1, src.held_out[0], crop=False, scale=1.0)
    with torch.no_grad():
        model_img = tr.render(1, tgt.camera, None).image.rgb.clamp(0, 1)
    table_img = render_baked(baked, tgt.camera, K=tr.cfg.K, near=tr.settings.near, far=tr.settings.far)
    assert psnr(table_img, model_img) > 30
