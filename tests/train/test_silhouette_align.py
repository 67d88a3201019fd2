"""The training cameras aligned with the carved hull's silhouette."""

import numpy as np
import pytest
import torch


class _Video:
    """The ball rig of test_bundle read by name, as :func:`fourd.carve.run.frame_views` reads a capture."""

    def __init__(self, rig):
        self.rig, self.cameras, self.frames = rig, rig.cameras, rig.frames

    def cameras_at(self, frame, names):
        return [n for n in names if self.rig.has(frame, n)]

    def view(self, frame, name, scale=1.0, image=False):
        assert scale == 1.0
        return self.rig.view(frame, self.cameras.index(name))


def _turned(true, px):
    """The ring ``true`` with every camera turned about its centre so that it sees the scene
    ``px`` [C, 2] pixels off (x right, y down) from where its image shows it."""
    from fourd.model.corrections import perturbed
    from fourd.structures.cameras import Cameras

    out = []
    for i in range(len(true)):
        K = true[i].K[0].double()
        w = torch.tensor([-px[i, 1] / float(K[1, 1]), px[i, 0] / float(K[0, 0]), 0.0], dtype=torch.float64)
        out.append(perturbed(true[i].to(dtype=torch.float64), w, torch.zeros(3, dtype=torch.float64)))
    return Cameras.cat(out).to(dtype=torch.float32)


@pytest.mark.timeout(300)
def test_a_ring_turned_alike_is_turned_back_and_an_exact_ring_left_alone():
    """Every camera of a ring of 16 turned so that it sees the ball 0.8 px to the left of where its
    image shows it (plus 0.3 px of its own): neighbouring cameras agree with each other, so the rig
    check and the colour alignment cannot see it, but each mask then pokes out of the ball's
    silhouette on one side. The fitted shifts point back (within 0.2 px of the truth on average),
    the alignment is applied, and the turned-back ring is at least twice as close to the truth; on
    the exact ring the fitted shifts are below ACCEPT_PX and nothing moves."""
    from test_bundle import _px_error, _Rig, _rigs
    from test_surface_align import _ball

    from fourd.structures.cameras import Cameras
    from fourd.train.silhouette_align import ACCEPT_PX, align_to_silhouettes

    true, _ = _rigs()
    names, seq = true.names, _ball([0, 1])
    exact = align_to_silhouettes(_Video(_Rig(true, true)), names, seq, [0, 1])
    assert exact is not None and exact.off_voxels < ACCEPT_PX, exact.off_voxels
    assert not exact.improves and not np.abs(exact.shift).any()

    rng = np.random.default_rng(0)
    off = np.array([-0.8, 0.0]) + rng.normal(scale=0.3, size=(len(true), 2))
    given = _turned(true, off)
    res = align_to_silhouettes(_Video(_Rig(true, given)), names, seq, [0, 1], damping=1.0)
    assert res is not None and res.improves
    fitted = np.array([res.per_camera[n]["best_px"] for n in names])
    assert np.linalg.norm(fitted + off, axis=1).mean() < 0.2, fitted + off
    from fourd.model.corrections import perturbed

    w = res.turns(given)
    fixed = Cameras.cat([perturbed(given[i].to(dtype=torch.float64), torch.from_numpy(w[i]), torch.zeros(3, dtype=torch.float64))
                         for i in range(len(given))])
    assert _px_error(fixed, true) < 0.5 * _px_error(given, true)


def test_a_run_reads_its_silhouette_report_and_starts_from_its_turns(tiny_ev, tmp_path):
    """A run measures the silhouette shifts on its carve and writes RUN/cameras/silhouette_align.json
    (the tiny exact capture: not applied, the corrections stay at zero); an applied report, as an
    earlier session leaves it, is read instead of measured and sets the starting turns — all of
    them, their mean included — and the surface alignment is then not made."""
    import json

    from conftest import tiny_train_config

    from fourd.train.silhouette_align import SilhouetteResult
    from fourd.train.trainer import Trainer

    out = tmp_path / "run"
    cfg = {"refine_rig": False, "refine_colour": False, "align_surface": False, "align_silhouettes": True}
    tr = Trainer(tiny_train_config(tiny_ev, out, **cfg))
    path = out / "cameras" / "silhouette_align.json"
    got = SilhouetteResult.from_json(json.loads(path.read_text()))
    assert got.names == tr.model.corrections.names and not got.applied
    assert not tr.model.corrections.rotation.detach().abs().any()
    tr.run.release()
    shift = np.zeros((len(got.names), 2))
    shift[:] = [0.5, 0.0]  # every camera alike
    shift[1] = [1.0, -0.5]
    res = SilhouetteResult(got.names, shift, 0.9, 0.8, {n: {"moved": True} for n in got.names}, True)
    path.write_text(json.dumps(res.to_json()))
    tr = Trainer(tiny_train_config(tiny_ev, out, **cfg))
    w, _ = tr.model.corrections.pose_params()
    assert np.allclose(w.detach().numpy(), res.turns(tr.video.cameras), atol=1e-6)
    tr.run.release()
    # with the cameras moved by it, the surface alignment is not made (it would only add its bias)
    tr = Trainer(tiny_train_config(tiny_ev, out, **{**cfg, "align_surface": True}))
    assert tr.aligned is None and not (out / "cameras" / "surface_align.json").exists()
    tr.run.release()
