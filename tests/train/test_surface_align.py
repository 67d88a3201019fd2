"""The training cameras aligned with the carved surface as the other cameras see it."""

import numpy as np
import pytest
import torch


def _ball(frames):
    from fourd.structures.points import PointSequence

    x = torch.from_numpy(np.random.default_rng(0).normal(size=(6000, 3))).float()
    x = x / x.norm(dim=1, keepdim=True)  # the unit ball's surface (the textured ball of test_bundle), normals the same
    return PointSequence.from_list([x] * len(frames), frames, {"normals": [x] * len(frames)}, meta={"spacing": 0.03})


@pytest.mark.timeout(300)
def test_a_camera_off_by_a_pixel_or_two_is_moved_back_and_an_exact_rig_left_alone():
    """On the textured ball seen by a ring of 16 exact cameras, camera 5's calibration turned so that
    it sees the ball 2 px left of and 1.25 px below where its image shows it: the alignment moves
    that camera's image back (within a grid step) and leaves the others (their best shifts are
    within the carve's own error); on the exact rig nothing moves and it is not applied."""
    from test_bundle import _Rig, _rigs

    from fourd.model.corrections import perturbed
    from fourd.structures.cameras import Cameras
    from fourd.train.surface_align import align_to_surface

    true, _ = _rigs()
    names = true.names
    seq = _ball([0, 1])
    exact = align_to_surface(_Rig(true, true), names, seq, [0, 1], damping=1.0)
    assert exact is not None and not exact.improves, exact.shift
    assert np.abs(exact.shift).max() <= 0.25  # one grid step at most
    assert exact.off_voxels < 0.1  # the carve's 0.03 spacing is about 3 px to these cameras
    assert not any(c["moved"] for c in exact.per_camera.values())
    off = np.array([-2.0, 1.25])  # where the given calibration puts the ball's image, against the true one
    K = true[5].K[0].double()
    w = torch.tensor([-off[1] / float(K[1, 1]), off[0] / float(K[0, 0]), 0.0], dtype=torch.float64)
    given = Cameras.cat([perturbed(true[i].to(dtype=torch.float64), w, torch.zeros(3, dtype=torch.float64))
                         if i == 5 else true[i].to(dtype=torch.float64) for i in range(len(true))]).to(dtype=torch.float32)
    X = seq.frame(0)[:50].double()
    moved = (given[5].to(dtype=torch.float64).project(X)[0] - true[5].to(dtype=torch.float64).project(X)[0])[0]
    assert torch.allclose(moved.mean(0), torch.from_numpy(off), atol=0.05)  # the fault is what it says
    res = align_to_surface(_Rig(true, given), names, seq, [0, 1], damping=1.0)
    assert res is not None and res.improves and res.cost_after < res.cost_before
    vox = res.per_camera[names[5]]["voxel_px"]
    assert 2 < vox < 4.5, vox  # the carve's spacing as the ring's cameras see it
    # one camera of 16 off: the rig as a whole is not (below ACCEPT_OFF), the one camera is moved on its own
    assert res.off_voxels < 0.25 and [n for n, c in res.per_camera.items() if c["moved"]] == [names[5]]
    assert np.abs(res.shift[5] + off).max() <= 0.25, res.shift[5]
    assert np.abs(np.delete(res.shift, 5, 0)).max() == 0
    # the turn that moves the camera's image by its shift puts it back where the true camera sees
    back = perturbed(given[5].to(dtype=torch.float64), torch.from_numpy(res.turns(given)[5]), torch.zeros(3, dtype=torch.float64))
    err = (back.project(X)[0] - true[5].to(dtype=torch.float64).project(X)[0])[0].norm(dim=1).mean()
    assert err < 0.3, err


@pytest.mark.timeout(300)
def test_a_rig_off_everywhere_by_less_than_the_one_camera_threshold_is_moved_as_a_whole():
    """Every camera of the ring off by 1.2 px in its own direction (0.37 of a carve voxel: below
    what moves a camera on its own, above what moves the rig): every camera is moved, and the
    cameras are left off by a third of that or less (each is compared with the others, which are
    off too)."""
    from test_bundle import _Rig, _rigs

    from fourd.model.corrections import perturbed
    from fourd.structures.cameras import Cameras
    from fourd.train.surface_align import ACCEPT_OFF, ACCEPT_ONE, align_to_surface

    true, _ = _rigs()
    names = true.names
    seq = _ball([0, 1])
    a = np.random.default_rng(3).uniform(0, 2 * np.pi, len(true))
    off = 1.2 * np.stack([np.cos(a), np.sin(a)], 1)
    off -= off.mean(0)  # the rig's mean motion is not observable
    cams = []
    for i in range(len(true)):
        K = true[i].K[0].double()
        w = torch.tensor([-off[i, 1] / float(K[1, 1]), off[i, 0] / float(K[0, 0]), 0.0], dtype=torch.float64)
        cams.append(perturbed(true[i].to(dtype=torch.float64), w, torch.zeros(3, dtype=torch.float64)))
    res = align_to_surface(_Rig(true, Cameras.cat(cams).to(dtype=torch.float32)), names, seq, [0, 1], damping=1.0)
    vox = np.mean([c["voxel_px"] for c in res.per_camera.values()])
    assert ACCEPT_OFF < 1.2 / vox < ACCEPT_ONE, vox  # the case this test is about
    assert res.off_voxels >= ACCEPT_OFF and res.improves
    assert all(c["moved"] for c in res.per_camera.values())
    err = np.linalg.norm(res.shift + off, axis=1)
    assert err.mean() < 0.4 * np.linalg.norm(off, axis=1).mean(), err  # measured: 0.33 px of 1.2


def test_the_colour_checks_corrections_are_applied_before_the_cameras_are_compared():
    """Camera 2 of the exact ring records the ball darker and bluer (gain 0.7, 0.8, 1.1, offset
    0.05): read with the colour check's correction for it, the alignment measures exactly what it
    measures on the rig without the cast."""
    from test_bundle import _Rig, _rigs

    from fourd.train.colour_check import ColourResult
    from fourd.train.surface_align import align_to_surface

    true, _ = _rigs()
    names = true.names
    seq = _ball([0, 1])
    gain, offset = np.array([0.7, 0.8, 1.1]), np.full(3, 0.05)
    plain, cast = _Rig(true, true), _Rig(true, true)
    for key, (img, mask) in list(cast._views.items()):
        if key[1] == 2:
            cast._views[key] = (np.clip((img / 255 * gain + offset) * 255 + 0.5, 0, 255).astype(np.uint8), mask)
    g, o = np.ones((len(names), 3)), np.zeros((len(names), 3))
    g[2], o[2] = gain, offset
    colours = ColourResult(list(names), g, o, applied=True)
    want = align_to_surface(plain, names, seq, [0, 1])
    got = align_to_surface(cast, names, seq, [0, 1], colours=colours)
    assert np.array_equal(got.shift, want.shift)
    assert abs(got.cost_before - want.cost_before) < 0.02 * want.cost_before  # up to the cast's rounding


def test_a_run_aligns_its_cameras_on_its_carve_and_resumes_with_the_same(tiny_ev, tmp_path):
    """With --align-surface a run measures the shifts on its carved points, writes them
    (RUN/cameras/surface_align.json) and, when applied, starts its pose corrections from the turns
    they make; a second session reads the report instead of measuring again."""
    import json

    from conftest import tiny_train_config

    from fourd.train.surface_align import AlignResult
    from fourd.train.trainer import Trainer

    out = tmp_path / "run"
    tr = Trainer(tiny_train_config(tiny_ev, out, refine_rig=False, refine_colour=False, align_surface=True,
                                   align_silhouettes=False))
    path = out / "cameras" / "surface_align.json"
    got = AlignResult.from_json(json.loads(path.read_text()))
    assert got.names == tr.model.corrections.names and got.cost_after <= got.cost_before
    tr.run.release()
    # an applied report (as an earlier session leaves it) sets the starting turns
    names = got.names
    shift = np.zeros((len(names), 2))
    shift[1] = [1.0, -0.5]
    res = AlignResult(names, shift, 0.02, 0.01, {}, True)
    path.write_text(json.dumps(res.to_json()))
    tr = Trainer(tiny_train_config(tiny_ev, out, refine_rig=False, refine_colour=False, align_surface=True,
                                   align_silhouettes=False))
    corr = tr.model.corrections
    w, _ = corr.pose_params()
    turns = res.turns(tr.video.cameras)
    assert np.allclose(w.detach().numpy(), turns, atol=1e-6)  # the turns' mean is kept (not a rig motion)
    assert (out / "cameras" / "extri.yml").is_file()
    tr.run.release()
