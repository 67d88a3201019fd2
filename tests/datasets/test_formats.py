"""Capture formats: round trips, conversion, the camera convention against ground truth, bad input."""

import shutil

import cv2
import h5py
import numpy as np
import pytest
import torch

from fourd.datasets import open_dataset
from fourd.datasets.easyvolcap import EasyVolcapCapture, write_easyvolcap
from fourd.datasets.smc import SMCCapture, write_smc
from fourd.datasets.synth import load_ground_truth
from fourd.errors import DataError


def assert_same_capture(a, b):
    assert a.camera_names == b.camera_names
    assert a.frames == b.frames
    assert a.held_out == b.held_out
    for attr in ("K", "R", "T", "D"):
        torch.testing.assert_close(getattr(a.cameras, attr), getattr(b.cameras, attr), atol=1e-5, rtol=1e-5)
    assert a.cameras.H.tolist() == b.cameras.H.tolist() and a.cameras.W.tolist() == b.cameras.W.tolist()
    for f in a.frames:
        for n in a.camera_names:
            np.testing.assert_array_equal(a.image(f, n), b.image(f, n))
            np.testing.assert_array_equal(a.mask(f, n), b.mask(f, n))


def test_easyvolcap_round_trip(tiny_ev, tmp_path):
    src = EasyVolcapCapture(tiny_ev)
    assert src.has_masks and len(src.cameras) == 8 and src.frames == [0, 1, 2]
    write_easyvolcap(src, tmp_path / "copy")
    assert (tmp_path / "copy" / "intri.yml").read_text().startswith("%YAML:1.0")  # what EasyVolcap writes
    assert_same_capture(src, EasyVolcapCapture(tmp_path / "copy"))


def test_easyvolcap_reads_yaml_1_2_header(tiny_ev, tmp_path):
    dst = shutil.copytree(tiny_ev, tmp_path / "c")
    for f in ("intri.yml", "extri.yml"):
        p = dst / f
        p.write_text(p.read_text().replace("%YAML:1.0", "%YAML 1.2", 1))
    assert_same_capture(EasyVolcapCapture(tiny_ev), EasyVolcapCapture(dst))


def test_smc_round_trip_and_official_structure(tiny_smc, tmp_path):
    src = SMCCapture(tiny_smc)
    with h5py.File(src.main_path) as f:
        assert set(f.attrs) >= {"actor_id", "performance_part", "capture_date"}
        assert f["Camera_5mp"]["0"]["color"]["0"][()].dtype == np.uint8  # encoded bytes, unpadded ids
    with h5py.File(src.annots_path) as f:
        p = f["Camera_Parameter"]["00"]
        assert set(p) >= {"K", "D", "RT", "Color_Calibration"} and p["RT"].shape == (4, 4)
        np.testing.assert_allclose(p["RT"][()], src.cameras.c2w[0].double().numpy(), atol=1e-5)
        assert "mask" in f["Mask"]["0"]
    write_smc(src, tmp_path / "copy", "seq")
    assert_same_capture(src, SMCCapture(tmp_path / "copy"))


def test_convert_equals_source_both_ways(tiny_ev, tmp_path):
    ev = EasyVolcapCapture(tiny_ev)
    write_smc(ev, tmp_path / "smc", "x")
    smc = open_dataset(tmp_path / "smc")
    assert smc.layout == "smc"
    assert_same_capture(ev, smc)  # names like "00" survive through fourd_camera_names
    write_easyvolcap(smc, tmp_path / "ev")
    assert_same_capture(ev, open_dataset(tmp_path / "ev"))


@pytest.mark.parametrize("fixture", ["tiny_ev", "tiny_smc"])
def test_ground_truth_vertices_project_into_masks(fixture, request):
    """The convention check: posed GT vertices land inside the rendered masks (or within 1 px)."""
    root = request.getfixturevalue(fixture)
    video = open_dataset(root)
    kernel = np.ones((3, 3), np.uint8)
    for f in video.frames:
        verts, _ = load_ground_truth(root, f)
        uv, z = video.cameras.project(torch.from_numpy(verts))
        assert (z > 0).all()
        for i, n in enumerate(video.camera_names):
            m = cv2.dilate(video.mask(f, n).astype(np.uint8), kernel) > 0  # 1 px tolerance
            ij = np.floor(uv[i].numpy()).astype(int)
            H, W = m.shape
            inside = (ij[:, 0] >= 0) & (ij[:, 0] < W) & (ij[:, 1] >= 0) & (ij[:, 1] < H)
            hit = np.zeros(len(ij), bool)
            hit[inside] = m[ij[inside, 1], ij[inside, 0]]
            assert hit.mean() >= 0.99, f"frame {f} camera {n}: {hit.mean():.3f}"
            # and the mask is not trivially full: a shifted projection must miss
            shifted = np.clip(ij + [W // 3, 0], 0, W - 1)
            assert m[shifted[:, 1], shifted[:, 0]].mean() < 0.9


def test_view_crop_and_scale_keep_geometry(tiny_ev):
    video = open_dataset(tiny_ev)
    verts, _ = load_ground_truth(tiny_ev, 1)
    full = video.view(1, "03")
    v = video.view(1, "03", crop_to_mask=True, scale=0.5, margin=4)
    assert v.image.shape[:2] == (int(v.camera.H[0]), int(v.camera.W[0]))
    assert v.image.shape[0] < full.image.shape[0] and v.mask.any()
    uv_full, _ = full.camera.project(torch.from_numpy(verts))
    uv, _ = v.camera.project(torch.from_numpy(verts))
    x0, y0, w, h = v.box
    s = torch.tensor([v.image.shape[1] / w, v.image.shape[0] / h])  # the resized image's true scale (≈ 0.5)
    assert torch.allclose(s, torch.tensor([0.5, 0.5]), atol=0.02)
    torch.testing.assert_close(uv, (uv_full - torch.tensor([x0, y0], dtype=torch.float32)) * s, atol=1e-3, rtol=0)


def test_cache_is_bounded(tiny_ev):
    one = 96 * 80 * 3
    video = EasyVolcapCapture(tiny_ev, cache_bytes=3 * one)
    reads = []
    fetch = video.image_bytes
    video.image_bytes = lambda f, n: (reads.append((f, n)), fetch(f, n))[1]
    keys = [(f, n) for f in video.frames for n in video.camera_names]
    first = video.image(*keys[0])
    assert video.image(*keys[0]) is first and len(reads) == 1  # a hit decodes nothing
    for k in keys:
        video.image(*k)
    assert video._cache.used == 3 * one  # full, never over the bound
    n = len(reads)
    for k in keys[-3:]:  # the three most recent stay
        video.image(*k)
    assert len(reads) == n
    video.image(*keys[0])  # the oldest was evicted: read again
    assert len(reads) == n + 1


def test_byte_lru_evicts_least_recently_used():
    import numpy as np

    from fourd.datasets.cache import ByteLRU

    c = ByteLRU(300)
    a, b, d = (np.zeros(100, np.uint8) + i for i in range(3))
    c.put("a", a)
    c.put("b", b)
    c.put("d", d)
    assert c.get("a") is a  # a is now the most recent
    c.put("e", np.zeros(100, np.uint8))
    assert c.get("b") is None and c.get("a") is a and c.get("d") is d and c.used == 300
    c.put("huge", np.zeros(400, np.uint8))  # larger than the whole cache: not kept, nothing evicted
    assert c.get("huge") is None and c.used == 300


# ----------------------------------------------------------------------------- bad input
def copy(src, tmp_path):
    return shutil.copytree(src, tmp_path / "c")


def expect(match_file, fn, *extra):
    with pytest.raises(DataError) as e:
        fn()
    msg = e.value.one_line()
    assert str(match_file) in msg, msg
    assert "fix:" in msg, msg
    assert "\n" not in msg
    for word in extra:
        assert word in msg, msg
    return msg


def test_missing_intri(tiny_ev, tmp_path):
    c = copy(tiny_ev, tmp_path)
    (c / "intri.yml").unlink()
    expect(c / "intri.yml", lambda: EasyVolcapCapture(c), "missing")


def test_missing_extri(tiny_ev, tmp_path):
    c = copy(tiny_ev, tmp_path)
    (c / "extri.yml").unlink()
    expect(c / "extri.yml", lambda: EasyVolcapCapture(c), "missing")


def test_camera_names_disagree(tiny_ev, tmp_path):
    c = copy(tiny_ev, tmp_path)
    p = c / "extri.yml"
    p.write_text(p.read_text().replace('   - "07"\n', '   - "99"\n', 1))
    expect(p, lambda: EasyVolcapCapture(c), "disagree", "99")


@pytest.mark.parametrize("bad", ["nan", "scaled"])
def test_bad_rotation(tiny_ev, tmp_path, bad):
    from fourd.datasets.easyvolcap import read_easyvolcap_cameras, write_easyvolcap_cameras

    c = copy(tiny_ev, tmp_path)
    cams = read_easyvolcap_cameras(c)
    R = cams.R.clone()
    R[2] = float("nan") if bad == "nan" else R[2] * 1.2
    cams.R = R  # bypass validation to write a broken file, as another tool might
    write_easyvolcap_cameras(c, cams)
    expect(c / "extri.yml", lambda: EasyVolcapCapture(c), "NaN" if bad == "nan" else "not a rotation")


def test_truncated_image(tiny_ev, tmp_path):
    c = copy(tiny_ev, tmp_path)
    p = c / "images" / "01" / "000002.jpg"
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    video = EasyVolcapCapture(c)
    expect(p, lambda: video.image(2, "01"), "truncated")


def test_unreadable_image(tiny_ev, tmp_path):
    c = copy(tiny_ev, tmp_path)
    p = c / "images" / "01" / "000001.jpg"
    p.write_bytes(b"this is not an image at all" * 10)
    expect(p, lambda: EasyVolcapCapture(c).image(1, "01"), "decoded")


def test_mask_of_wrong_size(tiny_ev, tmp_path):
    c = copy(tiny_ev, tmp_path)
    p = c / "masks" / "02" / "000000.png"
    cv2.imwrite(str(p), np.zeros((44, 48), np.uint8))  # (48×40, half the image's size, is read resized)
    expect(p, lambda: EasyVolcapCapture(c).mask(0, "02"), "48×44")


def test_truncated_hdf5(tiny_smc, tmp_path):
    c = copy(tiny_smc, tmp_path)
    p = next((c / "main").glob("*.smc"))
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])
    expect(p, lambda: SMCCapture(c), "truncated")


def test_nan_pose_in_smc(tiny_smc, tmp_path):
    c = copy(tiny_smc, tmp_path)
    a = next((c / "annotations").glob("*.smc"))
    with h5py.File(a, "r+") as f:
        rt = f["Camera_Parameter"]["03"]["RT"]
        v = rt[()]
        v[0, 3] = np.nan
        rt[...] = v
    expect(a, lambda: SMCCapture(c), "NaN")


def test_unknown_dataset_name(tmp_path):
    msg = expect("no_such_dataset", lambda: open_dataset("no_such_dataset"), "unknown dataset")
    assert "demo" in msg and "dna_rendering" in msg


def test_dna_rendering_missing_says_where(tmp_path):
    expect(tmp_path / "dna", lambda: open_dataset("dna_rendering", tmp_path / "dna"), "not found")


def test_fourd_json_invalid(tiny_ev, tmp_path):
    c = copy(tiny_ev, tmp_path)
    (c / "fourd.json").write_text("{not json")
    expect(c / "fourd.json", lambda: EasyVolcapCapture(c), "invalid JSON")


def test_a_rig_of_two_image_sizes_in_both_layouts(tmp_path):
    """Rings with their own image sizes (DNA-Rendering mixes 2448×2048 and 4096×3000 cameras),
    rendered frame by frame, read back with each camera's own size."""
    from fourd.datasets.synth import SynthRecipe, synthesize

    recipe = SynthRecipe(asset="Fox.glb", animation="Walk", rings=[(3, 5.0, 96, 80), (2, 40.0, 64, 72)], frames=2,
                         held_out=1)
    for layout in ("easyvolcap", "smc"):
        v = open_dataset(synthesize(recipe, tmp_path / layout, layout))
        assert [int(w) for w in v.cameras.W] == [96, 96, 96, 64, 64]
        assert [int(h) for h in v.cameras.H] == [80, 80, 80, 72, 72]
        for n in v.camera_names:
            assert v.image(1, n).shape[:2] == (int(v.cameras.H[v.cameras.index(n)]), int(v.cameras.W[v.cameras.index(n)]))
            assert v.mask(1, n).any()


def test_rendered_lens_and_colour_calibration_come_back_out_on_load(tmp_path):
    """A capture rendered through lens distortion and stored with an inverse Color_Calibration
    reads (undistorted, calibrated) like the same capture rendered without either."""
    from fourd.datasets.synth import SynthRecipe, dna_rendering_recipe, synthesize

    base = dict(asset="Fox.glb", animation="Walk", rings=[(3, 10.0, 128, 112)], frames=1, held_out=1, image_format="png")
    plain = open_dataset(synthesize(SynthRecipe(**base), tmp_path / "plain", "smc"))
    real = open_dataset(synthesize(SynthRecipe(**base, lens=True, colour_calibration=True), tmp_path / "real", "smc"))
    assert (real.cameras.D[:, 0] < 0).all() and plain.cameras.D.abs().max() == 0
    stored = SMCCapture(tmp_path / "real", color_calibration=False)
    for n in plain.camera_names:
        cc = real.color_calibration[n]
        assert not np.allclose(cc, [[0, 1, 0]] * 3)
        a = plain.view(0, n).image.astype(np.float32)
        b = real.view(0, n).image.astype(np.float32)
        m = plain.view(0, n).mask
        inner = cv2.erode(m.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # away from resampled edges
        assert np.abs(a - b)[inner].mean() < 2.5, np.abs(a - b)[inner].mean()
        assert np.abs(stored.view(0, n).image.astype(np.float32) - b)[inner].mean() > 1.0  # stored ≠ calibrated
        iou = (m & real.view(0, n).mask).sum() / (m | real.view(0, n).mask).sum()
        assert iou > 0.95
    # the DNA-Rendering rig itself: 60 cameras in two sizes, every one with a lens and a calibration
    r = dna_rendering_recipe(scale=0.05, frames=2)
    assert sum(x[0] for x in r.rings) == 60 and {tuple(x[2:]) for x in r.rings} == {(122, 102), (204, 150)}
    assert r.lens and r.colour_calibration


def test_supersampled_capture_has_antialiased_edges_and_coverage_masks(tmp_path):
    """--supersample N renders N×N samples per pixel and averages them: the same cameras, edge pixels
    between subject and background in the images, masks holding coverage (not 0/255), whose
    thresholded cut matches the one-sample render's to within the edge."""
    from fourd.datasets.synth import SynthRecipe, synthesize

    base = dict(asset="Fox.glb", animation="Walk", rings=[(2, 10.0, 128, 112)], frames=1, held_out=0, image_format="png")
    hard = synthesize(SynthRecipe(**base), tmp_path / "hard")
    soft = synthesize(SynthRecipe(**base, supersample=3), tmp_path / "soft")
    a, b = open_dataset(hard), open_dataset(soft)
    assert torch.equal(a.cameras.K, b.cameras.K) and torch.equal(a.cameras.R, b.cameras.R)
    for n in a.camera_names:
        raw_hard = cv2.imread(str(hard / "masks" / n / "000000.png"), cv2.IMREAD_GRAYSCALE)
        raw_soft = cv2.imread(str(soft / "masks" / n / "000000.png"), cv2.IMREAD_GRAYSCALE)
        assert set(np.unique(raw_hard)) <= {0, 255}
        partial = (raw_soft > 0) & (raw_soft < 255)
        assert partial.sum() > 50  # coverage along the outline
        edge = cv2.dilate(raw_hard, np.ones((3, 3), np.uint8)) != cv2.erode(raw_hard, np.ones((3, 3), np.uint8))
        assert partial[~edge].sum() <= 0.02 * partial.sum()  # ... and only there
        ma, mb = a.view(0, n).mask, b.view(0, n).mask
        assert (ma != mb)[~edge].sum() <= 3 and (ma & mb).sum() / (ma | mb).sum() > 0.95
        ia, ib = a.view(0, n).image.astype(np.float32), b.view(0, n).image.astype(np.float32)
        inner = cv2.erode(ma.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert np.abs(ia - ib)[inner].mean() < 6  # the same picture away from the edge
        lum = ib.mean(-1)
        assert (lum[partial] > 2).mean() > 0.5  # edge pixels mix the subject in, not cut to black


def test_supersample_out_of_range_is_refused(tmp_path):
    from fourd.datasets.synth import ring_recipe, synthesize

    with pytest.raises(DataError, match="--supersample"):
        ring_recipe(supersample=0)
    with pytest.raises(DataError, match="--supersample"):
        ring_recipe(supersample=9)
    with pytest.raises(DataError, match="16384"):  # refused before any rendering
        synthesize(ring_recipe(size=4096, supersample=5), tmp_path / "big")
    assert not (tmp_path / "big" / "images").exists()


def test_a_disk_that_fills_while_writing_an_smc_leaves_no_half_file(tiny_ev, tmp_path, monkeypatch):
    import errno

    from fourd.errors import DataError

    video = open_dataset(tiny_ev)
    calls = {"n": 0}
    real = video.image_bytes

    def filling(frame, cam):  # the third image "fills the disk"
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(frame, cam)

    monkeypatch.setattr(video, "image_bytes", filling)
    with pytest.raises(DataError, match="disk filled") as e:
        write_smc(video, tmp_path / "out")
    assert "fix:" in str(e.value)
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]  # nothing half-written remains


def _as_cutouts(c):
    """The capture as a renderer with a transparent film writes it: RGBA PNGs (colour straight, the
    mask in alpha, junk colour where alpha is 0) and no masks/ folder."""
    for img_path in sorted((c / "images").rglob("*.jpg")):
        m = cv2.imread(str(c / "masks" / img_path.parent.name / f"{img_path.stem}.png"), cv2.IMREAD_GRAYSCALE)
        bgr = cv2.imread(str(img_path))
        bgr[m == 0] = (40, 200, 90)  # what lies under alpha 0 is not the subject
        cv2.imwrite(str(img_path.with_suffix(".png")), np.dstack([bgr, m]))
        img_path.unlink()
    shutil.rmtree(c / "masks")


def test_rgba_images_without_masks_use_their_alpha(tiny_ev, tmp_path):
    src = EasyVolcapCapture(tiny_ev)
    c = copy(tiny_ev, tmp_path)
    _as_cutouts(c)
    video = EasyVolcapCapture(c)
    assert video.has_masks
    for f in video.frames:
        for n in video.camera_names:
            np.testing.assert_array_equal(video.mask(f, n), src.mask(f, n))
            img = video.image(f, n)
            assert img.shape == src.image(f, n).shape  # RGB: the alpha is not an image channel
            # composited over black: nothing of the junk under alpha 0, the subject where alpha is full
            m = src.mask(f, n)
            assert not img[~m].any()
            np.testing.assert_array_equal(img[m], src.image(f, n)[m])
    # without alpha (JPEGs, as before) and without masks the capture has none
    shutil.rmtree(c)
    c = copy(tiny_ev, tmp_path)
    shutil.rmtree(c / "masks")
    assert not EasyVolcapCapture(c).has_masks


def test_a_cutout_mask_file_is_read_by_its_alpha(tiny_ev, tmp_path):
    """A matting tool's RGBA cut-out given as the mask: its alpha is the matte, not the max of its
    colours (dark clothing would read as holes)."""
    c = copy(tiny_ev, tmp_path)
    p = c / "masks" / "02" / "000000.png"
    m = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
    dark = np.zeros((*m.shape, 3), np.uint8)  # a black subject
    cv2.imwrite(str(p), np.dstack([dark, m]))
    np.testing.assert_array_equal(EasyVolcapCapture(c).mask(0, "02"), m > 127)


def test_optimized_calibration_is_preferred_and_can_be_declined(tiny_ev, tmp_path):
    """4K4D's users train on optimized/{intri,extri}.yml (the refined cameras); fourd reads them
    when present, fourd.json's "calibration" chooses."""
    import json

    from fourd.datasets.easyvolcap import read_easyvolcap_cameras, write_easyvolcap_cameras

    c = copy(tiny_ev, tmp_path)
    root = read_easyvolcap_cameras(c)
    moved = read_easyvolcap_cameras(c)
    moved.T[:] = moved.T + torch.tensor([0.01, 0.0, 0.0])  # every centre a little off
    (c / "optimized").mkdir()
    write_easyvolcap_cameras(c / "optimized", moved)
    video = EasyVolcapCapture(c)
    assert video.calibration == c / "optimized"
    torch.testing.assert_close(video.cameras.T, moved.T)
    (c / "fourd.json").write_text(json.dumps({**json.loads((c / "fourd.json").read_text()), "calibration": "root"}))
    torch.testing.assert_close(EasyVolcapCapture(c).cameras.T, root.T)
    shutil.rmtree(c / "optimized")
    (c / "fourd.json").write_text(json.dumps({**json.loads((c / "fourd.json").read_text()), "calibration": "optimized"}))
    expect(c / "optimized", lambda: EasyVolcapCapture(c), "optimized")


def test_mask_folder_named_mask(tiny_ev, tmp_path):
    src = EasyVolcapCapture(tiny_ev)
    c = copy(tiny_ev, tmp_path)
    (c / "masks").rename(c / "mask")  # EasyMocap's / ZJU-MoCap's name
    video = EasyVolcapCapture(c)
    assert video.has_masks
    np.testing.assert_array_equal(video.mask(1, "03"), src.mask(1, "03"))


def test_frame_numbers_are_read_from_the_end_of_file_names(tiny_ev, tmp_path):
    src = EasyVolcapCapture(tiny_ev)
    c = copy(tiny_ev, tmp_path)
    for p in sorted((c / "images").rglob("*.jpg")):
        p.rename(p.with_name(f"frame_{int(p.stem) + 10:05d}.jpg"))  # another tool's naming, numbered from 10
    for p in sorted((c / "masks").rglob("*.png")):
        p.rename(p.with_name(f"mask{int(p.stem) + 10}.png"))
    video = EasyVolcapCapture(c)
    assert video.frames == [f + 10 for f in src.frames]
    np.testing.assert_array_equal(video.mask(11, "02"), src.mask(1, "02"))
    np.testing.assert_array_equal(video.image(12, "02"), src.image(2, "02"))
    dup = c / "images" / "02" / "copy_00011.jpg"
    dup.write_bytes((c / "images" / "02" / "frame_00011.jpg").read_bytes())
    expect(c / "images" / "02", lambda: EasyVolcapCapture(c), "frame 11")


def test_images_downsampled_after_calibration_get_scaled_intrinsics(tiny_ev, tmp_path):
    src = EasyVolcapCapture(tiny_ev)
    c = copy(tiny_ev, tmp_path)
    for kind in ("images", "masks"):
        for p in sorted((c / kind / "03").iterdir()):  # one camera's images and masks at half size
            img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
            cv2.imwrite(str(p), cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA))
    video = EasyVolcapCapture(c)
    i = video.cameras.index("03")
    assert (int(video.cameras.H[i]), int(video.cameras.W[i])) == (40, 48)
    torch.testing.assert_close(video.cameras.K[i, :2], src.cameras.K[i, :2] / 2)
    assert video.image(1, "03").shape == (40, 48, 3)
    torch.testing.assert_close(video.cameras.K[i + 1], src.cameras.K[i + 1])  # the others as calibrated
    # a size that is no uniform scale of the calibrated one is still refused, naming the file
    p = c / "images" / "04" / "000000.jpg"
    cv2.imwrite(str(p), np.zeros((40, 40, 3), np.uint8))
    expect(p, lambda: EasyVolcapCapture(c).image(0, "04"), "40×40")


def test_tiff_bmp_and_webp_captures_read_as_their_pngs(tiny_ev, tmp_path):
    """Machine-vision rigs write 16-bit TIFFs; other tools BMP or WebP. Such a capture used to read
    as one with no frames ("check that the image folders are not empty"). Now each decodes to the
    same pixels; a convert keeps each file's format; float (HDR) images are refused, naming the file."""
    from fourd.datasets.convert import convert

    src = EasyVolcapCapture(tiny_ev)
    dst = shutil.copytree(tiny_ev, tmp_path / "c")
    for i, n in enumerate(src.camera_names):
        for p in sorted((dst / "images" / n).iterdir()):
            img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
            kind = i % 3
            q = p.with_suffix([".tif", ".bmp", ".webp"][kind])
            ok = cv2.imwrite(str(q), img.astype(np.uint16) * 257 if kind == 0 else img,
                             [cv2.IMWRITE_WEBP_QUALITY, 101] if kind == 2 else [])
            assert ok
            p.unlink()
    got = EasyVolcapCapture(dst)
    assert got.frames == src.frames
    for n in src.camera_names:
        np.testing.assert_array_equal(got.image(1, n), src.image(1, n))
    convert(dst, tmp_path / "copy")
    assert sorted(p.suffix for p in (tmp_path / "copy" / "images" / src.camera_names[0]).iterdir()) == [".tif"] * 3
    assert_same_capture(got, EasyVolcapCapture(tmp_path / "copy"))
    # 12-bit camera samples stored unscaled in 16-bit files (machine-vision cameras): read as 16-bit
    # they were near black (the brightest pixel 15 of 255); the capture's white level is decided once
    # from every camera's first image, and each image reads as its 8-bit source within rounding
    twelve = shutil.copytree(dst, tmp_path / "twelve")
    for p in sorted((twelve / "images").rglob("*.tif")):
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        assert cv2.imwrite(str(p), np.round((img // 257).astype(np.float32) * 4095 / 255).astype(np.uint16))
    tw = EasyVolcapCapture(twelve)
    assert tw.white16() == 4095 and got.white16() == 65535
    for n in src.camera_names:
        assert np.abs(tw.image(1, n).astype(int) - src.image(1, n)).max() <= 1
    # masks keyed from them (a render over black) read the images alike: the outline, not darkness
    from fourd.cli import main

    shutil.rmtree(twelve / "masks")
    assert main(["--quiet", "data", "masks", str(twelve), "--key", "black"]) == 0
    n = src.camera_names[3]
    assert (EasyVolcapCapture(twelve).mask(1, n) == src.mask(1, n)).mean() > 0.98
    # masks in 16-bit files holding 0/1 (a label image) read as the subject, not as empty
    m16 = shutil.copytree(dst, tmp_path / "m16")
    masks16 = sorted((m16 / "masks").rglob("*.png"))
    for p in masks16:
        m = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        assert cv2.imwrite(str(p), (m > 127).astype(np.uint16))
    assert len(masks16) == 3 * len(src.camera_names) and src.mask(1, src.camera_names[1]).any()
    np.testing.assert_array_equal(EasyVolcapCapture(m16).mask(1, src.camera_names[1]), src.mask(1, src.camera_names[1]))
    bad = dst / "images" / src.camera_names[0] / "000001.tif"
    cv2.imwrite(str(bad), cv2.imread(str(bad), cv2.IMREAD_UNCHANGED).astype(np.float32) / 65535)
    with pytest.raises(DataError, match="float32 samples.*8- or 16-bit") as e:
        EasyVolcapCapture(dst).image(1, src.camera_names[0])
    assert "000001.tif" in e.value.one_line()


def test_leave_out_picks_the_cameras_lacking_a_stretch_of_frames():
    """fourd.json "incomplete_cameras": "leave_out" (the default skips missing views instead:
    tests/datasets/test_gaps.py): a camera that started late, stopped early or dropped a stretch is
    left out when that gives back more than a tenth of the frames; a short gap still drops those
    frames for all."""
    from fourd.datasets.base import incomplete_cameras

    full = set(range(30))
    rig = {f"{i:02d}": set(full) for i in range(8)}
    assert incomplete_cameras(rig) == {}
    assert incomplete_cameras({**rig, "03": full - {7}}) == {}  # one frame of 30: cut for all (said)
    late = incomplete_cameras({**rig, "03": full - set(range(10))})
    assert list(late) == ["03"] and "lacks 10 of the 30 frames" in late["03"] and "20 frames" in late["03"]
    both = incomplete_cameras({**rig, "03": full - set(range(5)), "05": full - set(range(25, 30))})
    assert sorted(both) == ["03", "05"]
    hundred = set(range(100))  # every camera lacks its own 12 frames: each worth leaving out
    many = incomplete_cameras({n: hundred - set(range(i * 12, i * 12 + 12)) for i, n in enumerate(rig)})
    assert len(many) == 2  # at most a quarter of the cameras go
    assert incomplete_cameras({**rig, "03": set()}) == {}  # no frame at all: refused as a failed copy
    assert incomplete_cameras({**rig, "03": full - set(range(10))}, keep={"03"}) == {}


def test_image_folders_numbered_otherwise_than_the_calibration(tiny_ev, tmp_path):
    """intri.yml names cameras 00, 01, … while the image and mask folders are 0, 1, … (or the other
    way round): the folders are matched by number, said once, instead of "camera '00' is calibrated
    but has no image folder"; a number that matches two folders is still refused."""
    src = EasyVolcapCapture(tiny_ev)
    cap = shutil.copytree(tiny_ev, tmp_path / "c")
    for n in src.camera_names:
        for sub in ("images", "masks"):
            (cap / sub / n).rename(cap / sub / str(int(n)))
    got = EasyVolcapCapture(cap)
    assert got.camera_names == src.camera_names and got.frames == src.frames and got.has_masks
    for n in src.camera_names[:3]:
        np.testing.assert_array_equal(got.image(1, n), src.image(1, n))
        np.testing.assert_array_equal(got.mask(1, n), src.mask(1, n))
    # masks keyed from the renamed folders' images (a render over black) are found and written too
    from fourd.cli import main

    shutil.rmtree(cap / "masks")
    assert main(["--quiet", "data", "masks", str(cap), "--key", "black"]) == 0
    keyed = EasyVolcapCapture(cap)
    assert keyed.has_masks and (keyed.mask(1, src.camera_names[2]) == src.mask(1, src.camera_names[2])).mean() > 0.98
    shutil.copytree(cap / "images" / "3", cap / "images" / "003")  # 03 matches two folders now
    with pytest.raises(DataError, match="'03' is calibrated but has no image folder"):
        EasyVolcapCapture(cap)


def test_mask_files_named_with_a_suffix_after_the_frame_number(tiny_ev, tmp_path):
    """A matting tool that writes 000012_mask.png (the number not at the end): its masks were not
    frames at all ("mask for frame 0 is missing"); a folder where no name ends in a number now takes
    each file's last number. Where some names end in one, the rest stay ignored (a 000012_vis.png
    beside 000012.png is no second frame 12)."""
    src = EasyVolcapCapture(tiny_ev)
    cap = shutil.copytree(tiny_ev, tmp_path / "c")
    n = src.camera_names[1]
    for p in sorted((cap / "masks").rglob("*.png")):
        p.rename(p.with_name(f"{p.stem}_mask.png"))
    got = EasyVolcapCapture(cap)
    np.testing.assert_array_equal(got.mask(2, n), src.mask(2, n))
    vis = cap / "images" / n / "000001_vis.jpg"
    shutil.copy(cap / "images" / n / "000001.jpg", vis)
    assert EasyVolcapCapture(cap).frames == src.frames  # no "two files are frame 1"


def _exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """The JPEG with an EXIF APP1 segment holding only the orientation tag (0x0112)."""
    import struct

    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) \
        + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    app1 = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


def test_jpegs_stored_turned_with_an_exif_orientation_read_upright(tiny_ev, tmp_path):
    """A camera held on its side stores its pictures turned and tags how to show them; the
    calibration is for the upright picture. fourd read the pixels as stored ("image is 80×96 but
    camera '02' is 96×80"); now a JPEG whose size is the calibrated one turned is read upright by its
    tag, said once."""
    src = EasyVolcapCapture(tiny_ev)
    cap = shutil.copytree(tiny_ev, tmp_path / "c")
    n = src.camera_names[2]
    for p in sorted((cap / "images" / n).iterdir()):
        upright = cv2.imread(str(p))
        stored = np.ascontiguousarray(np.rot90(upright, 1))  # turned a quarter anticlockwise …
        ok, buf = cv2.imencode(".jpg", stored, [cv2.IMWRITE_JPEG_QUALITY, 100])
        p.write_bytes(_exif_orientation(buf.tobytes(), 6))  # … and tagged "turn clockwise to show"
    got = EasyVolcapCapture(cap)
    img = got.image(1, n)
    assert img.shape == src.image(1, n).shape
    assert np.abs(img.astype(int) - src.image(1, n)).mean() < 3
    # `fourd data convert` checks sizes from the headers: the turned files pass, copied as they are
    from fourd.datasets.convert import convert

    convert(cap, tmp_path / "copy")
    np.testing.assert_array_equal(EasyVolcapCapture(tmp_path / "copy").image(1, n), img)
    # a turned file without the tag is still the size error it was
    p = cap / "images" / n / "000001.jpg"
    p.write_bytes(cv2.imencode(".jpg", np.ascontiguousarray(np.rot90(cv2.imread(str(p)), 1)))[1].tobytes())
    with pytest.raises(DataError, match="80×96 but camera"):
        EasyVolcapCapture(cap).image(1, n)


def test_masks_numbered_one_off_the_images_and_a_missing_mask_on_load(tiny_ev, tmp_path, capsys, monkeypatch):
    """Masks extracted by a tool that numbers from 1 beside images numbered from 0 (or the other way):
    every camera one step off — matched, said once (it was "mask for frame 2 is missing" when carving
    reached it). A mask truly missing is said on load and its view sits out as a dropped frame's
    (tests/datasets/test_gaps.py); a camera with no mask at all is refused."""
    src = EasyVolcapCapture(tiny_ev)
    cap = shutil.copytree(tiny_ev, tmp_path / "c")
    for d in sorted((cap / "masks").iterdir()):
        for p in sorted(d.iterdir(), reverse=True):
            p.rename(p.with_name(f"{int(p.stem) + 1:06d}{p.suffix}"))
    got = EasyVolcapCapture(cap)
    for n in src.camera_names[:3]:
        np.testing.assert_array_equal(got.mask(2, n), src.mask(2, n))
    (cap / "masks" / "05" / "000002.png").unlink()  # frame 1's mask: one camera off by a hole now
    from fourd import console

    monkeypatch.setattr(console.console, "quiet", False)  # (an earlier test's --quiet may linger)
    capsys.readouterr()
    holed = EasyVolcapCapture(cap)
    err = " ".join(capsys.readouterr().err.split())
    assert "masks/05: no mask for frame(s) 1 (masks matched +1" in err and "skipped" in err, err
    assert holed.frames == src.frames and not holed.has(1, "05") and holed.cameras_at(1) == \
        [n for n in src.camera_names if n != "05"]
    with pytest.raises(DataError, match="no image of frame 1 .or no mask"):
        holed.mask(1, "05")
    np.testing.assert_array_equal(holed.mask(2, "05"), src.mask(2, "05"))
    for p in (cap / "masks" / "05").iterdir():
        p.unlink()
    with pytest.raises(DataError, match="'05' has no usable view") as e:
        EasyVolcapCapture(cap)
    assert "masks/05" in e.value.one_line()
