"""Per-camera colour and pose corrections, source masks and the loss's edge band: the remedies for a
real rig's faults (their effect on held-out quality is measured by scripts/bench_faults.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from fourd.model.appearance import visible_points
from fourd.model.corrections import CameraCorrections, rotation_from_vector
from fourd.structures.cameras import Cameras
from fourd.train.losses import edge_weights


def rig(n=4):
    return Cameras.ring(n, radius=3.0, height=0.5, H=64, W=64)


def test_corrections_start_as_the_identity():
    cams = rig()
    c = CameraCorrections(cams.names, distance=3.0)
    img = torch.rand(3, 8, 8)
    assert torch.equal(c.colour(img, cams.names[1], channels_first=True), img)
    moved = c.camera(cams[1], cams.names[1])
    X = torch.randn(50, 3)
    assert torch.allclose(moved.project(X)[0], cams[1].project(X)[0], atol=1e-4)
    # a camera without a correction (held out) is never touched, even with nonzero parameters
    with torch.no_grad():
        c.colour_matrix.normal_(0, 0.1)
        c.rotation.normal_(0, 0.01)
    assert c.colour(img, "held-out", channels_first=True) is img
    one = cams[0]
    assert c.camera(one, "held-out") is one


def test_colour_mean_is_the_identity_and_gains_invert_the_correction():
    c = CameraCorrections(["a", "b", "c"])
    with torch.no_grad():
        c.colour_matrix.copy_(torch.randn(3, 3, 3) * 0.1)
        c.colour_offset.copy_(torch.randn(3, 3) * 0.05)
    A, b = c.colour_params()
    assert torch.allclose(A.mean(0), torch.eye(3), atol=1e-6) and torch.allclose(b.mean(0), torch.zeros(3), atol=1e-6)
    # channels-first and channels-last agree; a diagonal correction's gain is its inverse
    img = torch.rand(3, 5, 7)
    first = c.colour(img, "b", channels_first=True)
    last = c.colour(img.permute(1, 2, 0), "b")
    assert torch.allclose(first.permute(1, 2, 0), last, atol=1e-6)
    with torch.no_grad():
        c.colour_matrix.zero_()
        c.colour_matrix[0] = torch.diag(torch.tensor([0.25, -0.1, 0.0]))
    A, _ = c.colour_params()
    assert torch.allclose(c.gains(), 1 / torch.diagonal(A, dim1=1, dim2=2))


def test_pose_correction_rotates_about_the_centre_and_keeps_the_mean():
    """The centre shifts' mean is held at zero; the turns' only as old runs did (hold_turn_mean): a
    turn of every camera alike about its own centre is a real error, not a motion of the rig."""
    cams = rig()
    old = CameraCorrections(cams.names, distance=3.0, hold_turn_mean=True)
    c = CameraCorrections(cams.names, distance=3.0)
    with torch.no_grad():
        for k in (old, c):
            k.rotation[:] = torch.tensor([0.0, 0.002, 0.0])  # every camera turned alike
            k.rotation[2] = torch.tensor([0.0, 0.01, 0.0])
            k.shift[:] = torch.tensor([0.01, 0.0, 0.0])
    w, s = old.pose_params()
    assert torch.allclose(w.mean(0), torch.zeros(3), atol=1e-9) and torch.allclose(s.mean(0), torch.zeros(3))
    w, s = c.pose_params()
    assert torch.allclose(w, c.rotation) and torch.allclose(s.mean(0), torch.zeros(3))
    moved = c.camera(cams[2], cams.names[2])
    assert torch.allclose(moved.centers, cams[2].centers, atol=1e-5)  # a rotation about the centre
    R_rel = moved.R[0] @ cams[2].R[0].T
    angle = math.degrees(math.acos(max(-1.0, min(1.0, (float(torch.trace(R_rel.detach())) - 1) / 2))))
    assert abs(angle - math.degrees(float(w[2].detach().norm()))) < 1e-3
    # the whole refined rig (what RUN/cameras holds) agrees with the per-camera correction
    whole = c.refined(cams)
    assert torch.allclose(whole.R[2], moved.R[0], atol=1e-6) and torch.allclose(whole.T[2], moved.T[0], atol=1e-5)
    # a gradient reaches the pose through the projection
    X = torch.randn(20, 3) * 0.3
    moved.project(X)[0].sum().backward()
    assert c.rotation.grad is not None and c.rotation.grad.abs().sum() > 0
    assert torch.allclose(rotation_from_vector(torch.zeros(1, 3)), torch.eye(3)[None])


def test_learned_turns_align_a_camera_with_their_mean_held_at_zero():
    """The turns training learns (TrainConfig.lr_pose) act in each camera's frame on top of the
    checks' rotation; their mean is held at zero (every camera tilting alike reads as the subject
    moving). Fitted by Adam to the true projections, one camera turned off by the checks is turned
    back up to the part every camera shares."""
    cams = rig(6)
    c = CameraCorrections(cams.names, distance=3.0)
    w0 = torch.tensor([0.004, -0.006, 0.002])
    with torch.no_grad():
        c.rotation[2] = w0  # a camera the checks left turned
    X = torch.rand(200, 3) - 0.5
    true = [cams[j].project(X)[0].detach() for j in range(len(cams))]
    c.rotation.requires_grad_(False)
    opt = torch.optim.Adam([c.turn], lr=2e-4)

    def error():
        return sum(((c.camera(cams[j], n).project(X)[0] - true[j]) ** 2).sum(-1).mean() for j, n in enumerate(cams.names))

    before = float(error().detach())
    for _ in range(300):
        opt.zero_grad()
        error().backward()
        opt.step()
    w, _ = c.pose_params()
    w = w.detach()
    assert torch.allclose((w - c.rotation).mean(0), torch.zeros(3), atol=1e-7)  # the learned part's mean: zero
    # what is left is about the part every camera shares (w0 / 6 in pan and tilt; the roll's share
    # depends on how the points spread in each image): no camera stands out
    assert torch.allclose(w[:, :2], (w0[:2] / 6).expand(6, 2), atol=2e-5), w
    assert float(w.norm(dim=1).max()) < 0.25 * float(w0.norm()), w
    assert float(error().detach()) < before / 4


def test_a_source_sees_a_point_only_inside_its_mask():
    cam = Cameras.look_at((0, 0, 3), (0, 0, 0), H=32, W=32)
    xyz = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0]])
    uv, vis = visible_points(cam, xyz, torch.full((2,), 0.01), None, (32, 32))
    assert vis.all()
    mask = torch.zeros(32, 32, dtype=torch.bool)
    ij = uv[0].floor().long()
    mask[ij[1], ij[0]] = True  # only the first point's pixel shows the subject
    _, vis = visible_points(cam, xyz, torch.full((2,), 0.01), None, (32, 32), mask)
    assert vis.tolist() == [True, False]


def test_edge_band_leaves_out_both_sides_of_the_edge():
    m = torch.zeros(12, 12)
    m[3:9, 3:9] = 1
    w = edge_weights(m, 1)
    assert edge_weights(m, 0) is None
    assert w[5, 5] == 1 and w[0, 0] == 1  # deep inside, far outside
    assert w[3, 5] == 0 and w[2, 5] == 0  # the last pixel inside, the first outside
    assert w[4, 5] == 1
    assert w[1, 5] == 1
    assert int((w == 0).sum()) == 8 * 8 - 4 * 4


@pytest.mark.gl
def test_training_moves_the_corrections_and_writes_the_refined_rig(tiny_ev, tmp_path):
    from conftest import tiny_train_config

    from fourd.datasets import open_dataset
    from fourd.datasets.easyvolcap import read_easyvolcap_cameras
    from fourd.train.trainer import Trainer

    tr = Trainer(tiny_train_config(tiny_ev, tmp_path / "run", refine_after=2, refine_every=2, steps=6,
                                   colour_correction=True, pose_refinement=True))  # both opt-in
    corr = tr.model.corrections
    assert set(corr.names) == set(tr.train_cams) and not set(corr.names) & set(tr.eval_cams)
    tr.fit()
    assert corr.colour_matrix.abs().sum() > 0 and corr.rotation.abs().sum() > 0
    video = open_dataset(tiny_ev)
    refined = read_easyvolcap_cameras(tmp_path / "run" / "cameras")
    assert refined.names == video.camera_names
    for n in tr.eval_cams:  # held-out cameras are written as given
        i = video.cameras.index(n)
        assert np.allclose(refined.R[i].numpy(), video.cameras.R[i].numpy(), atol=1e-6)
    moved = [n for n in tr.train_cams
             if not np.allclose(refined.R[refined.index(n)].numpy(), video.cameras.R[video.cameras.index(n)].numpy(),
                                atol=1e-9)]
    assert moved
    tr.run.release()
    # turns learned with the model: on an exact rig only when asked (the checks moved nothing)
    tr = Trainer(tiny_train_config(tiny_ev, tmp_path / "turns", steps=6, lr_pose=1e-3, pose_after=2))
    assert not tr.model.corrections.turn.requires_grad  # auto: no check moved this rig
    tr.run.release()
    tr = Trainer(tiny_train_config(tiny_ev, tmp_path / "turns_on", steps=6, lr_pose=1e-3, pose_after=2,
                                   learn_pose="on"))
    tr.fit()
    t = tr.model.corrections.turn.detach()
    assert t.abs().sum() > 0 and not tr.model.corrections.rotation.any()
    refined = read_easyvolcap_cameras(tmp_path / "turns_on" / "cameras")
    w, _ = tr.model.corrections.pose_params()
    for n in tr.train_cams:  # the refined rig written is the learned one
        i, k = refined.index(n), tr.model.corrections.names.index(n)
        want = (rotation_from_vector(w[k:k + 1].detach()) @ video.cameras.R[video.cameras.index(n)])[0]
        assert np.allclose(refined.R[i].numpy(), want.numpy(), atol=1e-6)
    tr.run.release()
    # switched off: the parameters stay exactly at the identity
    tr = Trainer(tiny_train_config(tiny_ev, tmp_path / "off", refine_after=2, refine_every=2, steps=6, colour_correction=False,
                                   pose_refinement=False))
    tr.fit()
    c = tr.model.corrections
    assert c.colour_matrix.abs().sum() == 0 and c.rotation.abs().sum() == 0 and c.shift.abs().sum() == 0
    assert c.turn.abs().sum() == 0
    # no refined rig written (the checks' own reports may be there, saying they were not applied)
    cams = tmp_path / "off" / "cameras"
    assert not (cams / "extri.yml").exists() and not (cams / "intri.yml").exists()
    assert not (cams / "colour.json").exists()
    for report in cams.glob("*_check.json"):
        assert json.loads(report.read_text())["applied"] is False
    tr.run.release()


def test_affine_colour_fit_recovers_a_gain_and_offset():
    from fourd.train.align import fit_affine_colour

    g = torch.Generator().manual_seed(0)
    y = torch.rand(5000, 3, generator=g)  # the render's colours
    gain, off = torch.tensor([1.08, 0.95, 0.92]), torch.tensor([0.02, -0.01, 0.03])
    x = y * gain + off + 0.01 * torch.randn(5000, 3, generator=g)  # what the camera recorded
    A, b = fit_affine_colour(x, y, ridge=1e-4)
    assert torch.allclose(torch.diagonal(A), 1 / gain, atol=0.01)
    assert (A - torch.diag(torch.diagonal(A))).abs().max() < 0.01
    assert torch.allclose(b, -off / gain, atol=0.01)
    # a strong ridge holds the correction at the identity
    A, b = fit_affine_colour(x, y, ridge=1e3)
    assert torch.allclose(A, torch.eye(3), atol=1e-3) and b.abs().max() < 1e-3

