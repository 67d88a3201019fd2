"""The colour check (fourd.train.colour_check): each training camera's gain and offset from the
colours of feature tracks, before training."""

import json

import numpy as np
import pytest

from fourd.train.bundle import Tracks, collect_tracks
from fourd.train.colour_check import ColourResult, fit_colours


def _ring_tracks(gain, offset, tracks=3000, noise=0.004, seed=0):
    """Tracks of a ring of cameras: each surface point seen by 2–4 consecutive cameras, its colour
    recorded as gain · true + offset + noise."""
    rng = np.random.default_rng(seed)
    C = len(gain)
    t, cam = [], []
    for k in range(tracks):
        first, n = rng.integers(C), rng.integers(2, 5)
        for j in range(n):
            t.append(k)
            cam.append((first + j) % C)
    t, cam = np.array(t), np.array(cam)
    true = rng.uniform(0.1, 0.9, size=(tracks, 3))
    rec = gain[cam] * true[t] + offset[cam] + rng.normal(0, noise, (len(t), 3))
    z = np.zeros((C, 3))
    return Tracks([f"{i:02d}" for i in range(C)], np.zeros((C, 3, 3)), np.zeros((C, 3, 3)), z, t, cam,
                  np.zeros((len(t), 2)), rec), true


def _relative(gain, offset):
    """The responses in the rig's gauge (mean gain one, mean offset zero), as the fit reports them."""
    return gain / gain.mean(0), offset - gain / gain.mean(0) * offset.mean(0)


def _colour_error(res, tr, gain, offset):
    """Mean |corrected − truth| over the observations (truth in the rig's gauge)."""
    g, h = _relative(gain, offset)
    want = (tr.colour - h[tr.cam]) / g[tr.cam]
    got = (tr.colour - res.offset[tr.cam]) / res.gain[tr.cam]
    return float(np.abs(got - want).mean()), float(np.abs(tr.colour - want).mean())


def test_miscoloured_cameras_are_found_and_agreeing_ones_left_alone():
    rng = np.random.default_rng(1)
    C = 16
    gain, offset = rng.uniform(0.92, 1.08, (C, 3)), rng.uniform(-0.02, 0.02, (C, 3))
    tr, _ = _ring_tracks(gain, offset)
    res = fit_colours(tr)
    assert res is not None and res.improves and res.spread_after < 0.5 * res.spread_before
    err, uncorrected = _colour_error(res, tr, gain, offset)
    assert err < 0.5 * uncorrected, (err, uncorrected)
    g, _ = _relative(gain, offset)
    assert np.abs(res.gain / g - 1).mean() < 0.5 * np.abs(1 / g - 1).mean()
    # the correction maps a camera's recorded colours back (A (g x + h) + b = x), and the rig's
    # corrections average to the identity (as CameraCorrections holds them)
    A, b = res.correction()
    assert np.allclose(A.mean(0), np.eye(3)) and np.allclose(b.mean(0), 0)
    x = np.array([0.3, 0.5, 0.7])
    assert np.allclose(A[3] @ (res.gain[3] * x + res.offset[3]) + b[3], x)
    # cameras that agree: nothing to gain, so nothing is applied
    exact, _ = _ring_tracks(np.ones((C, 3)), np.zeros((C, 3)))
    same = fit_colours(exact)
    assert same is not None and not same.improves
    assert np.abs(same.gain - 1).max() < 0.01
    # the report round-trips (RUN/cameras/colour_check.json)
    back = ColourResult.from_json(json.loads(json.dumps(res.to_json())))
    assert np.allclose(back.gain, res.gain) and back.names == res.names and back.improves == res.improves


def test_saturated_colours_are_not_used_and_too_few_tracks_give_no_result():
    C = 8
    tr, _ = _ring_tracks(np.ones((C, 3)), np.zeros((C, 3)), tracks=30)
    assert fit_colours(tr) is None
    # a camera that clips: its saturated observations would read as a gain below one
    gain = np.ones((C, 3))
    gain[2] = 1.3
    tr, _ = _ring_tracks(gain, np.zeros((C, 3)), tracks=2000)
    tr.colour = np.clip(np.round(tr.colour * 255), 0, 255) / 255
    res = fit_colours(tr)
    assert res is not None and res.gain[2].min() > 1.15


def test_a_channel_that_clips_leaves_the_pixels_other_channels_in_use():
    """White fur through a camera whose red and green gains are high: those two clip on every bright
    point, but its blue there is still read (the bright end of blue's range), and its gains come
    out right in every channel."""
    rng = np.random.default_rng(0)
    C, N = 12, 3000
    gain = np.ones((C, 3))
    gain[3] = [1.3, 1.3, 0.9]
    t = np.repeat(np.arange(N), 3)
    cam = (rng.integers(C, size=N)[:, None] + np.arange(3)).ravel() % C
    grey = rng.uniform(0.05, 0.95, N)[:, None] + rng.normal(0, 0.03, (N, 3))  # greys and whites, as fur
    rec = np.clip(gain[cam] * grey[t] + rng.normal(0, 0.004, (len(t), 3)), 0, 1)
    z = np.zeros((C, 3))
    tr = Tracks([f"{i:02d}" for i in range(C)], np.zeros((C, 3, 3)), np.zeros((C, 3, 3)), z, t, cam,
                np.zeros((len(t), 2)), rec)
    res = fit_colours(tr, iterations=100)
    clipped = (cam == 3) & (rec[:, 0] >= 253.5 / 255)
    assert clipped.sum() > 100  # a sixth of its points or more
    assert res.per_camera["03"]["observations"] == (cam == 3).sum()  # blue read on those too
    g, _ = _relative(gain, np.zeros_like(gain))
    assert np.abs(res.gain / g - 1).max() < 0.01


def test_local_spread_marks_texture_edges_and_not_flat_colour():
    from fourd.train.colour_check import FLAT, local_spread

    img = np.full((40, 40, 3), 120, np.uint8)
    img[:, 20:] = (np.indices((40, 20)).sum(0) % 2 * 200)[..., None]  # a one-pixel checkerboard
    sd = local_spread(img, 5)
    assert sd[:, :17].max() < 1e-3 and sd[:, 23:].min() > FLAT
    img[:, :20, 2] = 10  # a single channel's edge counts too
    img[:, 10:20, 2] = 250
    assert local_spread(img, 5)[20, 10] > FLAT


@pytest.mark.timeout(300)
def test_tracks_carry_the_colour_each_camera_recorded():
    """Through the images: a textured ball seen by a ring, three cameras' images with a colour
    cast; the tracks' colours reveal it, and the exact images do not."""
    from test_bundle import _Rig, _rigs

    true, _ = _rigs()
    rig = _Rig(true, true)
    names = true.names
    clean = fit_colours(collect_tracks(rig, names, rig.frames, neighbours=4))
    assert clean is not None and not clean.improves
    cast = {2: [1.1, 1.0, 0.9], 7: [0.9, 0.95, 1.05], 11: [1.08, 1.08, 1.08]}
    for key, (img, mask) in list(rig._views.items()):
        if key[1] in cast:
            out = np.clip(img.astype(np.float64) * np.array(cast[key[1]]), 0, 255).round().astype(np.uint8)
            rig._views[key] = (out, mask)
    res = fit_colours(collect_tracks(rig, names, rig.frames, neighbours=4))
    assert res is not None and res.improves
    gain = np.ones((len(names), 3))
    for i, g in cast.items():
        gain[i] = g
    g, _ = _relative(gain, np.zeros_like(gain))
    got = np.abs(res.gain / g - 1)[list(cast)].mean()
    assert got < 0.5 * np.abs(1 / g - 1)[list(cast)].mean(), got


@pytest.mark.timeout(300)
def test_the_carved_surface_gives_each_cameras_gain_within_two_percent():
    """Through the images again, from surface points (as the trainer runs it: the carved surface
    seen by every camera in front of it): the exact ring is left alone, and three cameras' casts
    are recovered within 2 % (feature tracks reach about half the cast)."""
    import torch
    from test_bundle import _Rig, _rigs

    from fourd.structures.points import PointSequence
    from fourd.train.colour_check import ITERATIONS, surface_tracks

    true, _ = _rigs()
    rig = _Rig(true, true)
    names = true.names
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(6000, 3))).float()
    x = x / x.norm(dim=1, keepdim=True)  # the unit ball's surface, its normals the same
    seq = PointSequence.from_list([x] * len(rig.frames), rig.frames, {"normals": [x] * len(rig.frames)},
                                  meta={"spacing": 0.03})
    clean = fit_colours(surface_tracks(rig, names, seq, rig.frames), iterations=ITERATIONS)
    assert clean is not None and not clean.improves
    assert np.abs(clean.gain - 1).max() < 0.01
    cast = {2: [1.1, 1.0, 0.9], 7: [0.9, 0.95, 1.05], 11: [1.08, 1.08, 1.08]}
    for key, (img, mask) in list(rig._views.items()):
        if key[1] in cast:
            out = np.clip(img.astype(np.float64) * np.array(cast[key[1]]), 0, 255).round().astype(np.uint8)
            rig._views[key] = (out, mask)
    tracks = surface_tracks(rig, names, seq, rig.frames)
    # read where the texture is flat: this ball is blotched all over, so about a third of its points
    assert tracks.count > 1500 and len(tracks.track) / tracks.count > 3  # each point seen all round
    res = fit_colours(tracks, iterations=ITERATIONS)
    assert res is not None and res.improves
    gain = np.ones((len(names), 3))
    for i, g in cast.items():
        gain[i] = g
    g, _ = _relative(gain, np.zeros_like(gain))
    assert np.abs(res.gain / g - 1).max() < 0.02, np.abs(res.gain / g - 1).max()


def test_trainer_starts_from_an_applied_colour_check(tiny_ev, tmp_path):
    """A colour check that was applied (RUN/cameras/colour_check.json, as an earlier session leaves
    it) sets the model's starting colour corrections, which the targets and blended sources then
    carry; one that was not applied changes nothing."""
    import torch
    from conftest import tiny_train_config

    from fourd.datasets import open_dataset
    from fourd.train.data import split_cameras
    from fourd.train.trainer import Trainer

    video = open_dataset(tiny_ev)
    train, _ = split_cameras(video, None)
    rng = np.random.default_rng(0)
    gain = rng.uniform(0.9, 1.1, (len(train), 3))
    gain /= gain.mean(0)
    offset = rng.uniform(-0.02, 0.02, (len(train), 3))
    offset -= offset.mean(0)
    for applied in (True, False):
        out = tmp_path / f"run_{applied}"
        (out / "cameras").mkdir(parents=True)
        res = ColourResult(train, gain, offset, 100, 0.02, 0.01, {}, applied)
        (out / "cameras" / "colour_check.json").write_text(json.dumps(res.to_json()))
        tr = Trainer(tiny_train_config(tiny_ev, out, refine_rig=False))
        corr = tr.model.corrections
        name = train[1]
        x = torch.tensor([[0.2, 0.5, 0.8]])
        i = train.index(name)
        recorded = torch.from_numpy(gain[i] * x.numpy() + offset[i]).float()
        if applied:
            # the corrections' mean is re-centred at the identity, so compare up to that
            assert torch.allclose(corr.colour(recorded, name), x, atol=0.01)
            assert json.loads((out / "cameras" / "colour.json").read_text())["cameras"][name]["colour_gain"]
        else:
            assert torch.equal(corr.colour(recorded, name), recorded)
        tr.run.release()


def test_a_run_checks_its_colours_on_its_carve(tiny_run):
    """Training with the defaults measures the colours on the carved points (after carving) and
    leaves an exact capture's colours alone."""
    d = json.loads((tiny_run / "cameras" / "colour_check.json").read_text())
    assert d["tracks"] > 100 and d["applied"] is False
    assert set(d["names"]) == set(d["cameras"]) and all(c["observations"] > 0 for c in d["cameras"].values())
