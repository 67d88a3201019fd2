"""`fourd data degrade`: a real rig's faults on the training cameras of a clean capture, recorded
in faults.json, held-out cameras untouched."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fourd.datasets import open_dataset
from fourd.datasets.degrade import FAULTS, degrade
from fourd.errors import DataError
from fourd.ingest.masks import mask_iou

pytestmark = pytest.mark.gl  # the captures are rendered with GL


@pytest.fixture(scope="module")
def png_cap(tmp_path_factory):
    """Lossless images, large enough for pixel-exact checks of the colour and distortion faults."""
    from fourd.datasets.synth import SynthRecipe, synthesize

    return synthesize(SynthRecipe(rings=[(8, 10.0), (6, 40.0)], frames=2, width=192, height=160, held_out=2,
                                  image_format="png"), tmp_path_factory.mktemp("png_cap"))


def _angle(Ra, Rb) -> float:
    """Angle of Ra Rb^T from its axis-angle vector (arccos of the trace loses small angles)."""
    import cv2

    return float(np.degrees(np.linalg.norm(cv2.Rodrigues(Ra @ Rb.T)[0])))


def test_all_faults_leave_held_out_cameras_clean(tiny_ev, tmp_path):
    out = degrade(tiny_ev, tmp_path / "d", FAULTS, seed=3)
    src, deg = open_dataset(tiny_ev), open_dataset(out)
    rec = json.loads((out / "faults.json").read_text())
    assert set(rec["cameras"]) == set(src.train_cameras)
    assert deg.held_out == src.held_out
    for n in src.held_out:
        i = src.cameras.index(n)
        assert np.array_equal(deg.cameras.K[i].numpy(), src.cameras.K[i].numpy())
        assert np.allclose(deg.cameras.R[i].numpy(), src.cameras.R[i].numpy(), atol=1e-6)
        assert float(deg.cameras.D[i].abs().max()) == 0
        assert deg.frames_of(n) == deg.frames  # (drops: only training cameras lack frames)
        for f in deg.frames:
            assert np.array_equal(deg.image(f, n), src.image(f, n))
            assert np.array_equal(deg.mask(f, n), src.mask(f, n))
    n = src.train_cameras[0]
    f = deg.frames_of(n)[0]
    assert not np.array_equal(deg.image(f, n), src.image(f, n))
    # the same seed makes the same capture
    again = degrade(tiny_ev, tmp_path / "e", FAULTS, seed=3)
    assert json.loads((again / "faults.json").read_text()) == rec
    assert (again / "images" / n / f"{f:06d}.jpg").read_bytes() == (out / "images" / n / f"{f:06d}.jpg").read_bytes()


def test_distortion_is_written_and_undone_on_load(png_cap, tmp_path):
    out = degrade(png_cap, tmp_path / "d", ("distortion",), seed=1)
    src, deg = open_dataset(png_cap), open_dataset(out)
    rec = json.loads((out / "faults.json").read_text())
    moved = 0
    for n in src.train_cameras:
        i = src.cameras.index(n)
        k1, k2 = (float(x) for x in deg.cameras.D[i, :2])
        assert (k1, k2) == pytest.approx((rec["cameras"][n]["k1"], rec["cameras"][n]["k2"]), abs=1e-6)
        assert -0.15 <= k1 <= -0.05 and 0 <= k2 <= 0.05
        moved += int((deg.mask(0, n) != src.mask(0, n)).sum())  # the stored masks are distorted ...
        v = deg.view(0, n)  # ... and undistorted on load back to the clean ones
        assert mask_iou(v.mask, src.mask(0, n)) > 0.95
        clean = src.image(0, n).astype(float)
        img = np.asarray(v.image, np.float64)
        img = img * 255 if img.max() <= 1.0 else img
        err = np.abs(img - clean)[8:-8, 8:-8].mean()
        assert err < 3, err
    assert moved > 20


def test_calibration_error_is_small_and_recorded(tiny_ev, tmp_path):
    """As drawn (``relative=False``) each training camera is turned by 0.05–0.1°; by default the
    part of the errors that is one motion of the whole rig is taken out, which changes every camera
    by the same world motion (and the angles a little); either way faults.json records each
    camera's actual error, and the images stay as the true cameras saw them."""
    from fourd.datasets.degrade import DegradedCapture, FaultSpec

    src = open_dataset(tiny_ev)
    drawn = degrade(tiny_ev, tmp_path / "drawn", ("calibration",), seed=2, spec=FaultSpec(relative=False))
    out = degrade(tiny_ev, tmp_path / "d", ("calibration",), seed=2)
    turns = []
    for path, lo, hi in ((drawn, 0.05, 0.1), (out, 0.01, 0.2)):
        deg = open_dataset(path)
        rec = json.loads((path / "faults.json").read_text())
        for n in src.train_cameras:
            i = src.cameras.index(n)
            a = _angle(deg.cameras.R[i].double().numpy(), src.cameras.R[i].double().numpy())
            assert a == pytest.approx(rec["cameras"][n]["rotation_deg"], abs=1e-3)
            C = deg.cameras.centers[i].double().numpy()
            assert np.allclose(C - src.cameras.centers[i].double().numpy(), rec["cameras"][n]["centre_shift"], atol=1e-6)
            assert lo <= a <= hi, (path, a)
    rel, raw = open_dataset(out).cameras, open_dataset(drawn).cameras
    for n in src.train_cameras:  # R_rel = R_drawn · Ω: one and the same world turn Ω for every camera
        turns.append(raw[n].R[0].double().numpy().T @ rel[n].R[0].double().numpy())
    assert all(np.allclose(t, turns[0], atol=1e-6) for t in turns)
    removed = json.loads((out / "faults.json").read_text())["calibration_common_motion_removed"]
    assert removed["rotation_deg"] == pytest.approx(_angle(turns[0], np.eye(3)), abs=1e-4)
    # taking the common motion out of what is left finds nothing more
    again = DegradedCapture(open_dataset(out), (), 0)
    again.record["cameras"] = {n: {} for n in src.train_cameras}
    R, T = rel.R.double().numpy(), rel.T.double().numpy()
    R2, T2 = again._without_common_motion(src.cameras, R, T, again._scene_centre(src.cameras))
    assert again.record["calibration_common_motion_removed"]["rotation_deg"] < 0.1 * removed["rotation_deg"] + 1e-4
    assert np.allclose(R2, R, atol=1e-5)
    n = src.train_cameras[0]  # the images stay as the true camera saw them
    assert np.abs(open_dataset(out).image(0, n).astype(float) - src.image(0, n)).mean() < 2


def test_colour_gain_and_offset(png_cap, tmp_path):
    out = degrade(png_cap, tmp_path / "d", ("colour",), seed=4)
    src, deg = open_dataset(png_cap), open_dataset(out)
    rec = json.loads((out / "faults.json").read_text())
    for n in src.train_cameras:
        g = np.array(rec["cameras"][n]["colour_gain"])
        o = np.array(rec["cameras"][n]["colour_offset"])
        assert (np.abs(g - 1) <= 0.08).all() and (np.abs(o) <= 0.03).all()
        a = src.image(1, n).astype(float)
        b = deg.image(1, n).astype(float)
        expect = np.round(np.clip(a * g + o * 255, 0, 255))
        assert np.abs(b - expect).max() <= 1  # lossless in, lossless out: the recorded transform exactly
        assert np.abs(b - a)[src.mask(1, n)].mean() > 2


def test_mask_damage_is_recorded(tiny_ev, tmp_path):
    out = degrade(tiny_ev, tmp_path / "d", ("masks",), seed=5)
    src, deg = open_dataset(tiny_ev), open_dataset(out)
    rec = json.loads((out / "faults.json").read_text())
    damaged = rec["images"]
    n_train = len(src.train_cameras) * len(src.frames)
    assert 0.2 * n_train <= len(damaged) <= 0.8 * n_train
    for key, what in damaged.items():
        f, n = key.split("/")
        diff = int((deg.mask(int(f), n) != src.mask(int(f), n)).sum())
        assert diff == what["pixels"] > 0, (key, what)
        assert what["kind"] in ("erode", "dilate", "hole", "blob")
    for f in src.frames:
        for n in src.train_cameras:
            if f"{f}/{n}" not in damaged:
                assert np.array_equal(deg.mask(f, n), src.mask(f, n))


def test_smc_layout_and_bad_faults(tiny_ev, tmp_path):
    out = degrade(tiny_ev, tmp_path / "s", ("colour", "noise"), layout="smc")
    assert open_dataset(out).layout == "smc"
    with pytest.raises(DataError, match="unknown fault 'blur'"):
        degrade(tiny_ev, tmp_path / "x", ("blur",))


def test_carve_report_names_the_worst_damaged_masks(png_cap, tmp_path):
    """Masks damaged by the injector: the carve report flags the images with a hole or a stray blob,
    ranks the heaviest-damaged camera worst, and flags nothing on the clean capture."""
    from fourd.carve.run import carve_sequence
    from fourd.config import CarveConfig
    from fourd.datasets.degrade import FaultSpec

    out = degrade(png_cap, tmp_path / "d", ("masks",), seed=7, spec=FaultSpec(mask_fraction=0.5))
    rec = json.loads((out / "faults.json").read_text())
    damage: dict[str, int] = {}
    for key, what in rec["images"].items():
        if what["kind"] in ("hole", "blob"):
            damage[key.split("/")[1]] = damage.get(key.split("/")[1], 0) + what["pixels"]
    assert damage, "the seed damaged no mask with a hole or blob"
    heaviest = max(damage, key=damage.get)
    # half the masks are damaged, several per frame: a vote that tolerates three disagreeing cameras
    # keeps the damaged masks from cutting the hull (at 0.9, two erosions in one frame cut it and
    # every camera then disagrees a little)
    cfg = CarveConfig(points=3000, resolution=96, vote=0.75)
    _, report = carve_sequence(open_dataset(out), cfg)
    flagged = {(f["frame"], f["camera"]) for f in report["masks_flagged"]}
    for key, what in rec["images"].items():
        if what["kind"] in ("hole", "blob"):
            f, n = key.split("/")
            assert (int(f), n) in flagged, (key, what, report["masks_flagged"])
    assert report["cameras_by_mask_disagreement"][0]["camera"] == heaviest
    _, clean = carve_sequence(open_dataset(png_cap), cfg)
    assert clean["masks_flagged"] == []


def test_sync_fault_puts_a_camera_out_of_step(tiny_ev, tmp_path):
    """--faults sync: one training camera's frame f shows the source's frame f + shift (the ends
    repeat), recorded in faults.json; the other cameras and the held-out ones are untouched; the
    default set leaves it out."""
    from fourd.datasets.degrade import DEFAULT_FAULTS, FaultSpec

    assert "sync" in FAULTS and "sync" not in DEFAULT_FAULTS
    out = degrade(tiny_ev, tmp_path / "s", ("sync",), seed=5, spec=FaultSpec(sync_frames=(1, 1)))
    src, deg = open_dataset(tiny_ev), open_dataset(out)
    rec = json.loads((out / "faults.json").read_text())
    moved = {n: c["frame_shift"] for n, c in rec["cameras"].items() if "frame_shift" in c}
    assert len(moved) == 1
    (cam, k), = moved.items()
    assert abs(k) == 1 and cam in src.train_cameras
    last = len(src.frames) - 1
    for i, f in enumerate(src.frames):
        g = src.frames[min(max(i + k, 0), last)]
        assert np.array_equal(deg.mask(f, cam), src.mask(g, cam))
        assert np.abs(deg.image(f, cam).astype(int) - src.image(g, cam).astype(int)).mean() < 2  # re-encoded
        other = next(n for n in src.camera_names if n != cam)
        assert np.array_equal(deg.mask(f, other), src.mask(f, other))


def test_drops_fault_leaves_gaps_in_the_training_cameras(tiny_ev, tmp_path):
    """--faults drops: each training camera lacks a frame drawn at random (image and mask), recorded
    in faults.json, read back as a view that sits out; held-out cameras keep every frame."""
    from fourd.datasets.degrade import DEFAULT_FAULTS

    assert "drops" in FAULTS and "drops" not in DEFAULT_FAULTS
    out = degrade(tiny_ev, tmp_path / "d", ("drops",), seed=3)
    src, deg = open_dataset(tiny_ev), open_dataset(out)
    rec = json.loads((out / "faults.json").read_text())
    gone = {n: c["frames_dropped"] for n, c in rec["cameras"].items()}
    assert sorted(gone) == sorted(src.train_cameras) and all(len(v) == 1 for v in gone.values())
    for n, (f,) in gone.items():
        assert not (out / "images" / n / f"{f:06d}.jpg").exists() and not (out / "masks" / n / f"{f:06d}.png").exists()
        assert f not in deg.frames or not deg.has(f, n)
    for h in src.held_out:
        assert deg.frames_of(h) == deg.frames
    f = deg.frames[0]
    for n in deg.cameras_at(f):
        assert np.array_equal(deg.mask(f, n), src.mask(f, n))


def test_backdrops_are_the_plate_the_images_show(png_cap, tmp_path):
    """--backdrops: each training camera's bkgd/<cam>.png is its plate as recorded (colour and lens
    applied), which the degraded images show far from the subject; training takes the plate from it."""
    from fourd.train import plate

    out = degrade(png_cap, tmp_path / "d", ("background", "colour", "distortion"), seed=6, backdrops=True)
    deg = open_dataset(out)
    assert sorted(p.stem for p in (out / "bkgd").iterdir()) == sorted(deg.train_cameras)
    assert deg.backdrop(deg.held_out[0]) is None
    n = deg.train_cameras[0]
    v = deg.view(1, n)  # undistorted, as training sees it
    back = deg.backdrop(n)
    import cv2

    far = cv2.dilate(v.mask.astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
    far[:8], far[-8:], far[:, :8], far[:, -8:] = False, False, False, False  # the lens map's replicated border
    assert np.abs(back.astype(int) - v.image.astype(int))[far].mean() < 1.5
    res = plate.measure(deg, deg.train_cameras[:2], (0, 0, 0))
    assert all(r["plate"] == "given" for r in res.per_camera.values())
    # without the flag: no bkgd/, the plate is measured
    plain = degrade(png_cap, tmp_path / "p", ("background",), seed=6)
    assert not (plain / "bkgd").exists() and open_dataset(plain).backdrop(n) is None
    with pytest.raises(DataError, match="bkgd"):
        degrade(png_cap, tmp_path / "s", ("background",), layout="smc", backdrops=True)


def test_backdrop_fills_an_antialiased_edge_without_a_dark_fringe(tmp_path):
    """An anti-aliased source's edge pixels are the subject over black in proportion to their
    coverage; composited over the plate, the black is taken out: an edge pixel becomes the subject's
    colour (as the one-sample render has it there) and the plate mixed by the soft matte, not a
    mixture pulled toward black."""
    import cv2

    from fourd.datasets.codecs import decode_image
    from fourd.datasets.degrade import DegradedCapture
    from fourd.datasets.synth import SynthRecipe, synthesize

    base = dict(rings=[(3, 10.0)], frames=1, width=160, height=128, held_out=0, image_format="png")
    soft = open_dataset(synthesize(SynthRecipe(**base, supersample=4), tmp_path / "soft"))
    hard = open_dataset(synthesize(SynthRecipe(**base), tmp_path / "hard"))
    ds = DegradedCapture(soft, ("background",), seed=3)
    for n in soft.camera_names:
        c = decode_image(*soft.mask_bytes(0, n), grayscale=True).astype(np.float32) / 255
        subject = decode_image(*hard.image_bytes(0, n)).astype(np.float32)  # the subject's colour, no black
        ring = (c > 0.2) & (c < 0.8) & hard.view(0, n).mask
        assert ring.sum() > 20
        a = cv2.GaussianBlur(c, (0, 0), 1.0)[..., None]
        plate = ds._plates[n].astype(np.float32)
        want = subject * a + plate * (1 - a)
        got = decode_image(*ds.image_bytes(0, n)).astype(np.float32)
        assert abs(got[ring].mean() - want[ring].mean()) < 5, (got[ring].mean(), want[ring].mean())


def test_a_soft_masked_source_keeps_soft_masks(tmp_path):
    """A coverage-masked source degrades to soft masks, as a matting tool gives them: the matte each
    image was composited with (the plate's soft edge), lens-warped and damaged like the image; a
    hard-masked source's masks stay hard."""
    import cv2

    from fourd.datasets.codecs import decode_image
    from fourd.datasets.degrade import DegradedCapture
    from fourd.datasets.synth import SynthRecipe, synthesize

    base = dict(rings=[(3, 10.0)], frames=2, width=160, height=128, held_out=0, image_format="png")
    soft = open_dataset(synthesize(SynthRecipe(**base, supersample=3), tmp_path / "soft"))
    ds = DegradedCapture(soft, ("background",), seed=1)
    for n in soft.camera_names:
        c = decode_image(*soft.mask_bytes(0, n), grayscale=True).astype(np.float32) / 255
        got = decode_image(*ds.mask_bytes(0, n), grayscale=True).astype(np.float32) / 255
        np.testing.assert_allclose(got, cv2.GaussianBlur(c, (0, 0), 1.0), atol=0.6 / 255)
    # every fault: still soft, damage recorded as on a hard mask
    from fourd.datasets.degrade import FaultSpec

    ds = DegradedCapture(soft, ("masks", "distortion", "background"), seed=2, spec=FaultSpec(mask_fraction=1.0))
    for n in soft.camera_names:
        m = decode_image(*ds.mask_bytes(1, n), grayscale=True)
        assert ((m > 20) & (m < 235)).sum() > 50
        assert ds.record["images"][f"1/{n}"]["pixels"] > 0
    hard = open_dataset(synthesize(SynthRecipe(**base), tmp_path / "hard"))
    m = decode_image(*DegradedCapture(hard, ("background", "distortion"), seed=1).mask_bytes(0, "00"), grayscale=True)
    assert set(np.unique(m)) <= {0, 255}
