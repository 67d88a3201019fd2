"""The carve's flagged masks repaired from its hull (fourd.carve.repair)."""

import json

import numpy as np
import torch

from fourd.carve.metrics import mask_disagreement, splat_masks
from fourd.carve.repair import MaskRepair, repair_mask
from fourd.structures.cameras import Cameras
from fourd.structures.points import PointSequence


def _ball(n=20_000, r=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    return x / x.norm(dim=1, keepdim=True) * r * torch.rand(n, 1, generator=g) ** (1 / 3)


def _scene():
    cam = Cameras.look_at([[0.0, 0.0, -3.0]], [0.0, 0.0, 0.0], H=128, W=128, names=["a"])
    pts = _ball()
    spacing = 0.02
    truth = splat_masks(pts, cam, spacing)[0]
    return cam, pts, spacing, truth


def test_a_hole_and_a_blob_are_undone_and_the_outline_kept():
    cam, pts, spacing, truth = _scene()
    bad = truth.copy()
    yy, xx = np.mgrid[:128, :128]
    bad[(yy - 64) ** 2 + (xx - 60) ** 2 < 36] = False  # a hole inside the subject
    bad[(yy - 10) ** 2 + (xx - 10) ** 2 < 25] = True  # a stray blob far outside
    assert (bad != truth).sum() > 150
    fixed = repair_mask(bad, pts, cam, spacing)
    assert (fixed != truth).sum() == 0
    # the repaired mask is what the carve's disagreement no longer counts
    assert mask_disagreement(pts, cam, [bad], spacing)[0] > 0.02
    assert mask_disagreement(pts, cam, [fixed], spacing)[0] == 0.0
    # a pixel of erosion is within the tolerance: left as it is (the matte may be right)
    import cv2

    eroded = cv2.erode(truth.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert (repair_mask(eroded, pts, cam, spacing) == eroded).all()


def test_only_the_flagged_masks_are_touched(tmp_path):
    cam, pts, spacing, truth = _scene()
    seq = PointSequence.from_list([pts, pts], frames=[0, 1])
    carve = tmp_path / "carve.json"
    carve.write_text(json.dumps({"masks_flagged": [{"frame": 1, "camera": "a", "disagreement": 0.1}],
                                 "frames": [{"frame": 0, "spacing": spacing}, {"frame": 1, "spacing": spacing}]}))
    rep = MaskRepair.from_carve(carve, seq, 0.05)
    bad = truth.copy()
    bad[60:68, 56:64] = False
    assert (rep(0, "a", bad, cam) == bad).all()  # not flagged: as given
    assert (rep(1, "a", bad, cam) == truth).all() and rep.repaired == 1
    # nothing flagged (a clean capture), or no report: no repair at all
    carve.write_text(json.dumps({"masks_flagged": [], "frames": []}))
    assert MaskRepair.from_carve(carve, seq, spacing) is None
    assert MaskRepair.from_carve(tmp_path / "missing.json", seq, spacing) is None


def test_load_run_repairs_the_masks_its_carve_flagged(tiny_run, tmp_path):
    """A run whose carve flagged a mask reads that mask repaired (and load_run writes nothing)."""
    import shutil

    from fourd.train.run import load_run

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["repair_masks"] is True  # on by default (old runs' configs read False: test_config)
    cfg["repair_masks"] = True
    (run / "config.json").write_text(json.dumps(cfg))
    rep = json.loads((run / "carve" / "carve.json").read_text())
    r = load_run(run)
    f, cam = r.video.frames[0], r.train_cams[0]
    given = r.video.mask(f, cam).copy()
    assert r.video.mask_repair is None or (f, cam) not in r.video.mask_repair.flagged
    rep["masks_flagged"] = [{"frame": f, "camera": cam, "disagreement": 0.5}]
    (run / "carve" / "carve.json").write_text(json.dumps(rep))
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    r = load_run(run)
    assert r.video.mask_repair is not None and (f, cam) in r.video.mask_repair.flagged
    damaged = given.copy()
    ys, xs = np.nonzero(given)
    cy, cx = int(np.median(ys)), int(np.median(xs))
    damaged[cy - 2:cy + 3, cx - 2:cx + 3] = False  # a hole in the subject
    r.video._cache.put(("mask", f, cam), damaged)  # as if the file held the damaged mask
    v = r.video.view(f, cam)
    assert r.video.mask_repair.repaired == 1
    assert v.mask[cy - 2:cy + 3, cx - 2:cx + 3].all()  # filled from the hull
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == before


def test_edge_offset_reads_erosion_and_dilation_and_ignores_holes():
    """The outline's mean offset from the silhouette: about ∓1 for a pixel of erosion / dilation, 0
    for the same outline with a hole deep inside (the band keeps it out)."""
    import cv2

    from fourd.carve.metrics import edge_offset, grow

    _, _, _, truth = _scene()
    assert edge_offset(truth, truth) == 0.0
    assert (grow(truth, 0) == truth).all()
    outline = int((truth.astype(np.uint8) - cv2.erode(truth.astype(np.uint8), np.ones((3, 3), np.uint8))).sum())
    for px in (-2, -1, 1, 2):  # the outline moves by |px| on the average (area per outline pixel)
        moved = (int(grow(truth, px).sum()) - int(truth.sum())) / outline
        assert abs(moved - px) < 0.25 * abs(px), (px, moved)
    # a matte a pixel too loose or tight all round (3×3 square) is put back nearly exactly
    square = np.ones((3, 3), np.uint8)
    for damage, px in ((cv2.dilate, -1), (cv2.erode, 1)):
        damaged = damage(truth.astype(np.uint8), square) > 0
        back = grow(damaged, px)  # (a radius-1 disk, a cross, left a quarter of the damage)
        assert (back != truth).sum() < 0.1 * (damaged != truth).sum()
    eroded = grow(truth, -1)
    assert -1.3 < edge_offset(truth, eroded) < -0.6
    assert 0.6 < edge_offset(truth, grow(truth, 1)) < 1.3
    assert 1.5 < edge_offset(truth, grow(truth, 2)) < 2.6
    holed = truth.copy()
    yy, xx = np.mgrid[:128, :128]
    holed[(yy - 64) ** 2 + (xx - 64) ** 2 < 36] = False
    assert edge_offset(truth, holed) == 0.0


def test_masks_listed_off_their_outline_are_grown_or_shrunk_back(tmp_path):
    import cv2

    from fourd.carve.metrics import grow

    cam, pts, spacing, truth = _scene()
    seq = PointSequence.from_list([pts, pts], frames=[0, 1])
    carve = tmp_path / "carve.json"
    carve.write_text(json.dumps({"masks_flagged": [], "masks_offset": [{"frame": 1, "camera": "a", "offset": -0.8,
                                                                        "pixels": 1}],
                                 "frames": [{"frame": 0, "spacing": spacing}, {"frame": 1, "spacing": spacing}]}))
    eroded = cv2.erode(truth.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    rep = MaskRepair.from_carve(carve, seq, spacing)
    assert (rep(0, "a", eroded, cam) == eroded).all()  # not listed: as given
    fixed = rep(1, "a", eroded, cam)
    assert (fixed == grow(eroded, 1)).all() and (fixed != truth).sum() < 0.25 * (eroded != truth).sum()
    assert MaskRepair.from_carve(carve, seq, spacing, outlines=False) is None  # the setting off
