"""The background plate and the matte's softness measured from a camera's own frames, and the
training targets' edge rings un-mixed with them (fourd.train.plate)."""

import cv2
import numpy as np
import pytest

from fourd.train import plate

H = W = 96


def _scene(seed: int = 0, blur: float = 1.0, plate_level: float = 1.0, frames: int = 8, cells: int = 12):
    """A textured disc walking across a textured plate, composited with a soft edge of ``blur`` px
    (0: hard). Returns (images uint8, masks bool, subject colours float, true plate float)."""
    rng = np.random.default_rng(seed)
    P = cv2.resize(rng.uniform(0.2, 0.9, (cells, cells, 3)).astype(np.float32), (W, H), interpolation=cv2.INTER_CUBIC)
    P = np.clip(P, 0, 1) * plate_level
    F = cv2.resize(rng.uniform(0.1, 0.6, (6, 6, 3)).astype(np.float32), (W, H), interpolation=cv2.INTER_CUBIC)
    F = np.clip(F[..., ::-1] * [1.0, 0.4, 0.2], 0, 1).astype(np.float32)  # reddish, unlike the plate
    yy, xx = np.mgrid[:H, :W]
    images, masks, subjects = [], [], []
    for i in range(frames):
        cx, cy = 25 + 46 * i / (frames - 1), 48 + 6 * np.sin(i)
        m = (xx - cx) ** 2 + (yy - cy) ** 2 < 18 ** 2
        a = cv2.GaussianBlur(m.astype(np.float32), (0, 0), blur)[..., None] if blur else m[..., None].astype(np.float32)
        img = F * a + P * (1 - a)
        images.append(np.clip(np.round(img * 255), 0, 255).astype(np.uint8))
        masks.append(m)
        subjects.append(F)
    return images, masks, subjects, P


def test_plate_and_matte_measured_and_edge_unmixed():
    images, masks, subjects, P = _scene()
    rec, cam = plate.measure_camera(images, masks, (0, 0, 0))
    assert rec["unmixed"] and cam is not None
    seen = cam.seen
    assert seen.mean() > 0.5
    assert np.abs(cam.plate[seen] / 255 - P[seen]).mean() < 2 / 255
    # the innermost mask ring's share under the 1 px gaussian edge, and the width read from it
    a = cv2.GaussianBlur(masks[3].astype(np.float32), (0, 0), 1.0)
    depth = cv2.distanceTransform(masks[3].astype(np.uint8), cv2.DIST_L2, 5)
    ring1 = masks[3] & (depth <= 1.5)
    assert abs(rec["share"][0] - np.median(a[ring1])) < 0.08
    assert rec["share"][0] < rec["share"][1] < 1.0
    assert 0.75 < cam.sigma < 1.35
    # un-mixed edge pixels are much closer to the subject's own colours than the recorded ones
    err_before = err_after = 0.0
    for i in (2, 5):
        m = masks[i]
        depth = cv2.distanceTransform(m.astype(np.uint8), cv2.DIST_L2, 5)
        ring = m & (depth <= 2.5) & seen
        out, unknown = cam.unmix(images[i], m, (0, 0, W, H))
        assert not (unknown & ring).any()
        err_before += ((images[i].astype(np.float32) / 255 - subjects[i]) ** 2)[ring].sum()
        err_after += ((out - subjects[i]) ** 2)[ring].sum()
        inside = m & (depth > plate.RINGS + 0.5)
        np.testing.assert_allclose(out[inside], images[i][inside] / 255, atol=1e-6)  # only the rings
    assert err_after < 0.4 * err_before


def test_crop_and_resize_follow_the_full_frame():
    images, masks, _, _ = _scene(seed=1)
    _, cam = plate.measure_camera(images, masks, (0, 0, 0))
    i = 4
    full, unknown = cam.unmix(images[i], masks[i], (0, 0, W, H))
    ys, xs = np.nonzero(masks[i])
    x0, y0, x1, y1 = xs.min() - 8, ys.min() - 8, xs.max() + 9, ys.max() + 9
    crop, crop_unknown = cam.unmix(images[i][y0:y1, x0:x1], masks[i][y0:y1, x0:x1], (x0, y0, x1 - x0, y1 - y0))
    np.testing.assert_allclose(crop, full[y0:y1, x0:x1], atol=1e-6)
    np.testing.assert_array_equal(crop_unknown, unknown[y0:y1, x0:x1])
    # at half resolution the matte is half as wide: only the outermost pixels are un-mixed
    h, w = (y1 - y0) // 2, (x1 - x0) // 2
    small = cv2.resize(images[i][y0:y1, x0:x1], (w, h), interpolation=cv2.INTER_AREA)
    sm = cv2.resize(masks[i][y0:y1, x0:x1].astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0.5
    out, _ = cam.unmix(small, sm, (x0, y0, x1 - x0, y1 - y0))
    changed = np.abs(out - small.astype(np.float32) / 255).max(2) > 1 / 255
    d = cv2.distanceTransform(sm.astype(np.uint8), cv2.DIST_L2, 5)
    assert changed.any() and (d[changed] <= 2.5).all() and sm[changed].all()


@pytest.mark.parametrize("case", ["black backdrop", "hard matte"])
def test_nothing_done_without_a_plate_or_with_a_hard_matte(case):
    if case == "black backdrop":
        images, masks, _, _ = _scene(seed=2, plate_level=0.0)
    else:
        images, masks, _, _ = _scene(seed=2, blur=0)
    rec, cam = plate.measure_camera(images, masks, (0, 0, 0))
    assert cam is None and not rec["unmixed"]
    if case == "black backdrop":
        assert rec["plate_level"] == 0 and rec["share"] is None
    else:
        assert rec["share"][0] >= plate.SOFT


def test_a_plate_matching_the_training_background_is_left_alone():
    images, masks, _, _ = _scene(seed=3, plate_level=0.0)
    # composited over white instead, trained over white: nothing to take out
    white = [np.where(m[..., None], im, 255).astype(np.uint8) for im, m in zip(images, masks)]
    rec, cam = plate.measure_camera(white, masks, (1.0, 1.0, 1.0))
    assert cam is None and rec["plate_level"] == 0


def test_a_run_reports_the_plate_and_its_targets_use_it(tiny_ev, tmp_path):
    """On the tiny clean capture a run reports no plate (RUN/cameras/plate.json) and its targets are
    as recorded; a camera given a plate gets its target's edge rings un-mixed, nothing else."""
    import json

    import torch
    from conftest import tiny_train_config

    from fourd.train.trainer import Trainer

    out = tmp_path / "run"
    cfg = {"refine_rig": False, "refine_colour": False, "align_surface": False, "align_silhouettes": False}
    tr = Trainer(tiny_train_config(tiny_ev, out, **cfg))
    rep = json.loads((out / "cameras" / "plate.json").read_text())
    assert set(rep["per_camera"]) == set(tr.train_cams)
    assert not any(r["unmixed"] for r in rep["per_camera"].values()) and not tr.sampler.plates
    cam = tr.train_cams[0]
    before = tr.sampler.target(1, cam)
    v = tr.video.view(1, cam)
    h, w = v.mask.shape
    seen = np.ones((h, w), bool)
    seen[:, : w // 2] = False  # the left half's plate not known: left as recorded
    tr.sampler.plates[cam] = plate.CameraPlate(np.full((h, w, 3), 204, np.uint8), seen, 1.0)  # 0.8
    tr.cfg.plate_unknown = "fill"
    after = tr.sampler.target(1, cam)
    m = before.mask.cpu().numpy() > 0.5
    x0 = tr.video.view(1, cam, crop_to_mask=True, margin=tr.cfg.crop_margin).box[0]
    share = cv2.GaussianBlur(m.astype(np.float32), (0, 0), 1.0)
    edge = m & (share < plate.EDGE_SHARE)
    known = np.arange(m.shape[1])[None] + x0 >= w // 2
    changed = (after.image - before.image).abs().amax(-1).cpu().numpy() > 1e-6
    assert changed.any() and (edge | ~changed).all() and not (changed & ~known).any()
    sel = torch.from_numpy(edge & known)
    a = torch.from_numpy(np.maximum(share, plate.MIN_SHARE))[sel][:, None]
    assert torch.allclose(after.image[sel], torch.clamp(0.8 + (before.image[sel] - 0.8) / a, 0, 1), atol=1e-5)
    assert after.weight is None  # plate_unknown "fill": every pixel trusted
    tr.cfg.plate_unknown = "skip"  # the edge pixels whose plate is unknown leave the colour loss
    np.testing.assert_array_equal(tr.sampler.target(1, cam).weight.cpu().numpy() == 0, edge & ~known)
    tr.run.release()
    # switched off: no report
    tr = Trainer(tiny_train_config(tiny_ev, tmp_path / "off", **cfg, unmix_plate=False))
    assert tr.plate is None and not (tmp_path / "off" / "cameras" / "plate.json").exists()
    tr.run.release()


def test_the_plate_is_filled_in_a_little_way_under_a_subject_that_never_leaves():
    images, masks, _, P = _scene(seed=4, cells=4)  # a backdrop with 24 px features
    yy, xx = np.mgrid[:H, :W]
    still = (xx - 48) ** 2 + (yy - 20) ** 2 < 14 ** 2  # a second subject that stays put
    images = [np.where(still[..., None], 30, im).astype(np.uint8) for im in images]
    masks = [m | still for m in masks]
    _, cam = plate.measure_camera(images, masks, (0, 0, 0))
    _, bare = plate.measure_camera(images, masks, (0, 0, 0), fill=False)
    d_in = cv2.distanceTransform(still.astype(np.uint8), cv2.DIST_L2, 5)
    hidden_far = still & (d_in > plate.FAR_PX + plate.FILL_PX + 1)
    filled = still & (d_in < plate.FAR_PX)  # the outline's few pixels: filled from just outside
    assert hidden_far.any() and not cam.seen[hidden_far].any()
    assert cam.seen[filled].all() and not bare.seen[filled].any()
    # filled from 3–7 px away: far closer than the plate's mean colour
    err = np.abs(cam.plate[filled] / 255 - P[filled]).mean()
    assert err < 0.5 * np.abs(P[filled] - P.reshape(-1, 3).mean(0)).mean()


def test_a_given_backdrop_is_the_plate_even_under_a_subject_that_never_leaves(tiny_ev, tmp_path):
    """4K4D's bkgd/<cam>.jpg: the plate is known everywhere, also where the subject never left, and
    the capture loader hands it over (size checked)."""
    import shutil

    from fourd.datasets.easyvolcap import EasyVolcapCapture
    from fourd.errors import DataError

    images, masks, _, P = _scene(seed=4, cells=4)
    yy, xx = np.mgrid[:H, :W]
    still = (xx - 48) ** 2 + (yy - 20) ** 2 < 14 ** 2
    images = [np.where(still[..., None], 30, im).astype(np.uint8) for im in images]
    masks = [m | still for m in masks]
    given = np.clip(np.round(P * 255), 0, 255).astype(np.uint8)
    rec, cam = plate.measure_camera(images, masks, (0, 0, 0), given=given)
    assert rec["plate"] == "given" and rec["unmixed"] and cam.seen.all()
    np.testing.assert_array_equal(cam.plate, given)
    _, measured = plate.measure_camera(images, masks, (0, 0, 0))
    assert not measured.seen[still].all()  # what measuring alone cannot know
    # through the loader
    c = shutil.copytree(tiny_ev, tmp_path / "c")
    video = EasyVolcapCapture(c)
    assert video.backdrop("01") is None
    (c / "bkgd").mkdir()
    h, w = int(video.cameras.H[1]), int(video.cameras.W[1])
    cv2.imwrite(str(c / "bkgd" / "01.png"), np.full((h, w, 3), (10, 20, 30), np.uint8))
    np.testing.assert_array_equal(EasyVolcapCapture(c).backdrop("01")[0, 0], [30, 20, 10])  # RGB
    cv2.imwrite(str(c / "bkgd" / "01.png"), np.zeros((h // 2, w, 3), np.uint8))
    with pytest.raises(DataError, match="background image"):
        EasyVolcapCapture(c).backdrop("01")
