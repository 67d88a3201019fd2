"""Soft masks (coverage: an anti-aliased render's or a matte's alpha) read as such: the capture
hands them over beside the hard mask, and training targets un-mix each pixel by its coverage
(fourd.datasets.base, fourd.train.data, fourd.train.plate, fourd.train.run)."""

import shutil
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from fourd.datasets.easyvolcap import EasyVolcapCapture
from fourd.train import plate
from fourd.train.data import ViewSampler
from fourd.train.run import corrected_over_background


def _soft_copy(tiny_ev, tmp_path, cam: str = "01", frame: int = 1, backdrop: float = 0.0):
    """A copy of the tiny capture whose image and mask of (frame, cam) are made soft: the mask
    blurred into a coverage ``c``, the image ``c·F + (1 − c)·P`` with the recorded subject ``F``
    (stored over black) and a flat backdrop ``P`` of level ``backdrop``. Returns (path, c, F, P)."""
    c_dir = shutil.copytree(tiny_ev, tmp_path / "soft")
    mpath = c_dir / "masks" / cam / f"{frame:06d}.png"
    ipath = next((c_dir / "images" / cam).glob(f"{frame:06d}.*"))
    hard = cv2.imread(str(mpath), cv2.IMREAD_GRAYSCALE) > 127
    F = cv2.imread(str(ipath))[..., ::-1].astype(np.float32) / 255 * hard[..., None]
    c = np.round(cv2.GaussianBlur(hard.astype(np.float32), (0, 0), 1.0) * 255)
    c = np.where(c < 8, 0, np.where(c > 247, 255, c)) / 255  # (levels this near 0 or 255 are read as a hard cut's)
    P = np.full(F.shape, backdrop, np.float32)
    img = c[..., None] * F + (1 - c[..., None]) * P
    # stored losslessly (the capture decodes by content, whatever the file's extension)
    ipath.write_bytes(cv2.imencode(".png", np.round(img[..., ::-1] * 255).astype(np.uint8))[1].tobytes())
    cv2.imwrite(str(mpath), np.round(c * 255).astype(np.uint8))
    return c_dir, c.astype(np.float32), F, P


def _sampler(video, **over):
    cfg = SimpleNamespace(background=(0.0, 0.0, 0.0), image_scale=1.0, crop_margin=4, plate_unknown="skip",
                          source_size=32, source_masks=True)
    vars(cfg).update(over)
    return ViewSampler(video, [n for n in video.camera_names if n not in video.held_out], cfg, torch.device("cpu"))


def test_the_capture_reads_a_soft_mask_as_coverage_and_a_hard_one_as_none(tiny_ev, tmp_path):
    video = EasyVolcapCapture(tiny_ev)
    assert video.coverage(1, "01") is None and video.view(1, "01").coverage is None  # rendered masks: 0/255
    assert not video.info()["soft_masks"]
    path, c, _, _ = _soft_copy(tiny_ev, tmp_path, frame=0)
    assert EasyVolcapCapture(path).info()["soft_masks"]  # (`fourd data info` reads the first frame)
    path, c, _, _ = _soft_copy(tiny_ev, tmp_path / "f1")
    video = EasyVolcapCapture(path)
    got = video.coverage(1, "01")
    np.testing.assert_allclose(got, c, atol=1e-6)
    np.testing.assert_array_equal(video.mask(1, "01"), c > 0.5)  # the hard mask: above one half
    assert video.coverage(1, "00") is None and video.coverage(0, "01") is None  # only that file is soft
    # a view carries it through the crop and the resize, beside the mask
    v = video.view(1, "01", crop_to_mask=True, margin=4, scale=0.5)
    assert v.coverage.shape == v.mask.shape and v.coverage.dtype == np.float32
    x0, y0, w, h = v.box
    want = cv2.resize(got[y0:y0 + h, x0:x0 + w], v.mask.shape[::-1], interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(v.coverage, want, atol=1e-6)
    # a hard mask stored with JPEG's few levels of ringing at its edge is still hard
    mpath = path / "masks" / "00" / "000001.png"
    m = cv2.imread(str(mpath), cv2.IMREAD_GRAYSCALE)
    edge = (cv2.dilate(m, np.ones((3, 3), np.uint8)) != cv2.erode(m, np.ones((3, 3), np.uint8)))
    cv2.imwrite(str(mpath), np.where(edge, np.where(m > 127, 250, 5), m).astype(np.uint8))
    assert EasyVolcapCapture(path).coverage(1, "00") is None
    # so is one saved as JPEG at quality 75, whose ringing reaches a few tens of levels (it was read
    # as a matte before); the soft mask saved so stays soft
    from fourd.datasets.base import soft_levels

    for q in (75, 90):
        jp = cv2.imdecode(cv2.imencode(".jpg", m, [cv2.IMWRITE_JPEG_QUALITY, q])[1], cv2.IMREAD_GRAYSCALE)
        assert ((jp > 8) & (jp < 247)).any() and soft_levels(jp) is None, q
        soft = cv2.imdecode(cv2.imencode(".jpg", np.round(c * 255).astype(np.uint8),
                                         [cv2.IMWRITE_JPEG_QUALITY, q])[1], cv2.IMREAD_GRAYSCALE)
        assert soft_levels(soft) is not None, q


def test_a_soft_target_is_the_recorded_subject_over_the_background(tiny_ev, tmp_path):
    """Over a black backdrop the target is the image as recorded (an edge pixel keeps its share of
    the subject; the hard cut would drop those below one half and keep the rest's dark mix), and
    the mask target is the coverage; hard-masked cameras are as before."""
    path, c, F, _ = _soft_copy(tiny_ev, tmp_path)
    video = EasyVolcapCapture(path)
    s = _sampler(video, background=(0.0, 0.0, 0.0))
    t = s.target(1, "01", crop=False)
    np.testing.assert_allclose(t.mask.numpy(), c, atol=1e-6)
    np.testing.assert_allclose(t.image.numpy(), c[..., None] * F, atol=0.6 / 255)
    assert t.weight is None
    # over a white training background (the plate check then finds the black backdrop: a plate),
    # the uncovered share is white
    white = _sampler(video, background=(1.0, 1.0, 1.0))
    h, w = c.shape
    white.plates["01"] = plate.CameraPlate(np.zeros((h, w, 3), np.uint8), np.ones((h, w), bool), 0.0)
    t = white.target(1, "01", crop=False)
    np.testing.assert_allclose(t.image.numpy(), c[..., None] * F + (1 - c[..., None]), atol=0.6 / 255)
    # a hard-masked camera: the image cut by the mask, as always
    t = s.target(1, "00", crop=False)
    v = video.view(1, "00")
    assert set(np.unique(t.mask.numpy())) <= {0.0, 1.0}
    np.testing.assert_array_equal(t.image.numpy(), v.image / np.float32(255) * v.mask[..., None])
    # switched off (--no-soft-masks): cut at one half like a hard mask
    t = _sampler(video, soft_masks=False).target(1, "01", crop=False)
    v = video.view(1, "01")
    np.testing.assert_array_equal(t.mask.numpy(), v.mask.astype(np.float32))
    np.testing.assert_array_equal(t.image.numpy(), v.image / np.float32(255) * v.mask[..., None])
    # the source views leave out every pixel the subject does not wholly cover
    src = s.source(1, "01")
    v = video.view(1, "01", crop_to_mask=True, margin=4)
    full = cv2.resize(v.coverage, (32, 32), interpolation=cv2.INTER_AREA) > 0.999
    np.testing.assert_array_equal(src.mask.numpy(), full)


def test_a_soft_target_takes_a_known_plate_out_pixel_by_pixel(tiny_ev, tmp_path):
    path, c, F, P = _soft_copy(tiny_ev, tmp_path, backdrop=0.6)
    video = EasyVolcapCapture(path)
    s = _sampler(video)
    recorded = s.target(1, "01", crop=False)  # no plate known: the backdrop stays in the edge
    part = (c > 0.05) & (c < 0.95)
    assert np.abs(recorded.image.numpy() - c[..., None] * F)[part].mean() > 0.2
    h, w = c.shape
    seen = np.ones((h, w), bool)
    seen[:, : w // 2] = False
    s.plates["01"] = plate.CameraPlate(np.full((h, w, 3), 153, np.uint8), seen, 0.0)  # 0.6
    t = s.target(1, "01", crop=False)
    known = seen[..., None].repeat(3, -1)
    np.testing.assert_allclose(t.image.numpy()[known], (c[..., None] * F)[known], atol=1 / 255)
    # partly covered pixels whose plate is not known leave the colour loss ("skip")
    np.testing.assert_array_equal(t.weight.numpy() == 0, (c > 0) & (c < 1) & ~seen)
    # cropped and resized like the view
    t = s.target(1, "01", crop=True, scale=0.5)
    v = video.view(1, "01", crop_to_mask=True, margin=4, scale=0.5)
    Pv, seen_v = s.plates["01"].behind(v.box, v.coverage.shape)
    want = v.image / np.float32(255) - (1 - v.coverage[..., None]) * Pv
    ok = (v.coverage > 0)[..., None] & seen_v[..., None]
    np.testing.assert_allclose(t.image.numpy()[ok.repeat(3, -1)], np.clip(want, 0, 1)[ok.repeat(3, -1)], atol=1e-5)


def test_the_plate_check_takes_the_matte_from_coverage_masks():
    """With coverage masks the matte is not measured: any backdrop unlike the training background
    gets a plate (whatever its edge looks like), a black one none."""
    rng = np.random.default_rng(0)
    H = W = 64
    yy, xx = np.mgrid[:H, :W]
    P = rng.uniform(0.3, 0.9, (H, W, 3)).astype(np.float32)
    images, masks = [], []
    for i in range(6):
        m = (xx - 14 - 7 * i) ** 2 + (yy - 32) ** 2 < 10 ** 2
        images.append(np.round(np.where(m[..., None], 0.2, P) * 255).astype(np.uint8))
        masks.append(m)
    rec, cam = plate.measure_camera(images, masks, (0, 0, 0))
    assert cam is None and rec["share"][0] >= plate.SOFT  # read as a hard matte: nothing to do
    rec, cam = plate.measure_camera(images, masks, (0, 0, 0), matte_given=True)
    assert cam is not None and rec["unmixed"] and rec["matte"].startswith("given") and rec["share"] is None
    assert np.abs(cam.plate[cam.seen] / 255 - P[cam.seen]).max() < 1 / 255
    black = [np.where(m[..., None], 50, 0).astype(np.uint8) for m in masks]
    rec, cam = plate.measure_camera(black, masks, (0, 0, 0), matte_given=True)
    assert cam is None and not rec["unmixed"]
    result = plate.PlateResult(per_camera={"a": {"share": None, "seen": 1.0, "matte": "given"}},
                               plates={"a": plate.CameraPlate(images[0], np.ones((H, W), bool), 0.0)})
    plate.log_result(result)  # says so without a measured share


@pytest.mark.parametrize("soft", [False, True])
def test_colour_correction_of_a_target_leaves_the_background_alone(soft):
    g = torch.Generator().manual_seed(0)
    A = torch.eye(3) + 0.1 * torch.randn(3, 3, generator=g)
    b = 0.05 * torch.randn(3, generator=g)
    colour = lambda x: x @ A.T + b  # noqa: E731
    F = torch.rand(16, 16, 3, generator=g)
    c = torch.rand(16, 16, generator=g)
    c[:4] = 0
    c[-4:] = 1
    if not soft:
        c = (c > 0.5).float()
    bg = torch.tensor([0.2, 0.5, 1.0])
    target = c[..., None] * F + (1 - c[..., None]) * bg
    got = corrected_over_background(colour, target, c, bg)
    want = c[..., None] * colour(F) + (1 - c[..., None]) * bg
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert (got[:4] == bg).all()


def test_a_mask_stored_as_zero_and_one_is_read_as_a_label_image(tiny_ev, tmp_path):
    """Some tools write a mask as a label image (0 and 1): not an empty mask."""
    c = shutil.copytree(tiny_ev, tmp_path / "labels")
    for p in (c / "masks").rglob("*.png"):
        cv2.imwrite(str(p), (cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 127).astype(np.uint8))
    src, video = EasyVolcapCapture(tiny_ev), EasyVolcapCapture(c)
    assert not video.empty_mask_cameras(video.camera_names)
    for n in video.camera_names:
        np.testing.assert_array_equal(video.mask(1, n), src.mask(1, n))
        assert video.coverage(1, n) is None


def _said(monkeypatch) -> list[str]:
    """What fourd logs from now on (one string per message, whitespace collapsed)."""
    import fourd.console

    said: list[str] = []
    monkeypatch.setattr(fourd.console, "log", lambda *a, **k: said.append(" ".join(" ".join(map(str, a)).split())))
    return said


def test_a_part_label_mask_is_read_as_the_union_of_its_parts(tiny_ev, tmp_path, monkeypatch):
    """A human parser's part ids (ZJU-MoCap's ``mask_cihp``: 0 background, 1–20 the parts) used to
    read as an empty mask (every value below 128), so every camera was left out. Any id is the
    subject, as ZJU-MoCap's readers take it (``msk != 0``)."""
    c = shutil.copytree(tiny_ev, tmp_path / "parts")
    for p in (c / "masks").rglob("*.png"):
        hard = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 127
        ys = np.arange(hard.shape[0])[:, None].repeat(hard.shape[1], 1)
        parts = (1 + (ys * 14) // hard.shape[0]).astype(np.uint8)  # 14 horizontal bands of ids 1–14
        cv2.imwrite(str(p), np.where(hard, parts, 0).astype(np.uint8))
    src, video = EasyVolcapCapture(tiny_ev), EasyVolcapCapture(c)
    said = _said(monkeypatch)
    assert not video.empty_mask_cameras(video.camera_names)
    for n in video.camera_names:
        np.testing.assert_array_equal(video.mask(1, n), src.mask(1, n))
        assert video.coverage(1, n) is None  # ids are not coverage
    told = [m for m in said if "a label image" in m]
    assert len(told) == 1 and "masks/" in told[0]  # said once, naming a file


def test_masks_with_a_white_background_are_read_inverted(tiny_ev, tmp_path, monkeypatch):
    """A matting tool's background matte, or masks saved inverted: carving used to take the
    background for the subject (a hull the size of the room, trained on without a word). A mask
    whose border is white is read inverted, soft ones too, said once; a subject that touches the
    frame's edge, a mask white everywhere and an empty one are read as they are."""
    from fourd.datasets.base import looks_inverted

    c = shutil.copytree(tiny_ev, tmp_path / "inverted")
    blurred = {}
    for p in (c / "masks").rglob("*.png"):
        m = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if p.parent.name == "01":  # one camera's masks soft (an anti-aliased edge): coverage inverts too
            m = blurred[p.name] = cv2.GaussianBlur(m, (5, 5), 1.0)
        cv2.imwrite(str(p), 255 - m)
    src, video = EasyVolcapCapture(tiny_ev), EasyVolcapCapture(c)
    said = _said(monkeypatch)
    for n in video.camera_names:
        if n != "01":
            np.testing.assert_array_equal(video.mask(1, n), src.mask(1, n))
    want = blurred["000001.png"].astype(np.float32) / 255
    np.testing.assert_allclose(video.coverage(1, "01"), want, atol=8 / 255)  # (levels near 0/255 snap)
    assert (video.coverage(1, "01")[want > 0.9] > 0.9).all()
    told = [m for m in said if "white is the background" in m]
    assert len(told) == 1 and "masks/" in told[0]
    H, W = 60, 80
    tall = np.zeros((H, W), np.uint8)
    tall[:, 25:55] = 255  # a close-up: the subject runs from the top edge to the bottom
    assert not looks_inverted(tall) and looks_inverted(255 - tall)
    assert not looks_inverted(np.full((H, W), 255, np.uint8)) and not looks_inverted(np.zeros((H, W), np.uint8))


def test_the_crop_keeps_a_soft_fringe_wider_than_the_margin(tiny_ev, tmp_path):
    """A matte whose soft fringe reaches further past the half-coverage outline than the crop's
    margin (hair, motion blur): the crop keeps every pixel the subject covers at all."""
    path, c, _, _ = _soft_copy(tiny_ev, tmp_path)
    mpath = path / "masks" / "01" / "000001.png"
    wide = np.round(cv2.GaussianBlur((c > 0.5).astype(np.float32), (0, 0), 4.0) * 255)
    cv2.imwrite(str(mpath), wide.astype(np.uint8))
    video = EasyVolcapCapture(path)
    cov = video.coverage(1, "01")
    v = video.view(1, "01", crop_to_mask=True, margin=2)
    x0, y0, w, h = v.box
    inside = np.zeros(cov.shape, bool)
    inside[y0:y0 + h, x0:x0 + w] = True
    assert (cov > 0).any() and not ((cov > 0) & ~inside).any()
    ys, xs = np.nonzero(video.mask(1, "01"))
    assert x0 < xs.min() - 2 or y0 < ys.min() - 2  # wider than the mask's box + margin


def test_masks_stored_at_half_size_are_resized_to_their_images(tiny_ev, tmp_path, monkeypatch):
    """A matting tool run on downsized frames writes masks at half the image size: read resized
    (as coverage: the upscaled edge is soft), said once; a mask of another shape is still refused."""
    from fourd.errors import DataError

    c = shutil.copytree(tiny_ev, tmp_path / "half")
    for p in (c / "masks").rglob("*.png"):
        m = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(p), cv2.resize(m, (m.shape[1] // 2, m.shape[0] // 2), interpolation=cv2.INTER_AREA))
    src, video = EasyVolcapCapture(tiny_ev), EasyVolcapCapture(c)
    said = _said(monkeypatch)
    for n in video.camera_names:
        got, want = video.mask(1, n), src.mask(1, n)
        assert got.shape == want.shape
        assert (got != want).mean() < 0.02  # only along the outline
    assert sum("masks resized to their images" in m for m in said) == 1
    p = c / "masks" / "00" / "000001.png"
    cv2.imwrite(str(p), np.zeros((30, 70), np.uint8))  # not the image's shape at any scale
    with pytest.raises(DataError, match="re-export masks"):
        EasyVolcapCapture(c).mask(1, "00")


def test_the_mask_folder_is_found_or_named_in_fourd_json(tiny_ev, tmp_path):
    """Masks in ENeRF-Outdoor's bgmtv2/ are found; any other folder is named by fourd.json's
    "masks"; a named folder that is not there is refused naming fourd.json."""
    import json

    from fourd.errors import DataError

    src = EasyVolcapCapture(tiny_ev)
    c = shutil.copytree(tiny_ev, tmp_path / "bgm")
    (c / "masks").rename(c / "bgmtv2")
    video = EasyVolcapCapture(c)
    assert video.info()["masks_from"] == "bgmtv2/"
    np.testing.assert_array_equal(video.mask(1, "00"), src.mask(1, "00"))
    (c / "bgmtv2").rename(c / "alpha_rvm")
    meta = json.loads((c / "fourd.json").read_text()) if (c / "fourd.json").is_file() else {}
    (c / "fourd.json").write_text(json.dumps({**meta, "masks": "alpha_rvm"}))
    video = EasyVolcapCapture(c)
    assert video.info()["masks_from"] == "alpha_rvm/"
    np.testing.assert_array_equal(video.mask(1, "00"), src.mask(1, "00"))
    (c / "fourd.json").write_text(json.dumps({**meta, "masks": "rvm"}))
    with pytest.raises(DataError, match="fourd.json"):
        EasyVolcapCapture(c)


def test_a_held_out_soft_view_over_a_pictured_backdrop_is_the_subject_over_the_background(tiny_ev, tmp_path):
    """A held-out camera (the ground truth) with soft masks and the capture's picture of the empty
    scene (bkgd/, 4K4D's layout): its partly covered pixels are the subject's share over the training
    background — what the model is asked to render — not the recorded mix with the backdrop; a
    training camera's pictured backdrop is left to the plate check; --no-unmix-plate leaves it."""
    path, c, F, P = _soft_copy(tiny_ev, tmp_path, cam="02", backdrop=0.6)  # 02 is held out
    (path / "bkgd").mkdir()
    for n in ("02", "01"):  # (PNG bytes: lossless; read by content)
        (path / "bkgd" / f"{n}.jpg").write_bytes(cv2.imencode(".png", np.full(c.shape + (3,), 153, np.uint8))[1].tobytes())
    video = EasyVolcapCapture(path)
    assert "02" in video.held_out
    t = _sampler(video).target(1, "02", crop=False)
    np.testing.assert_allclose(t.image.numpy(), c[..., None] * F, atol=1.5 / 255)
    kept = _sampler(video, unmix_plate=False).target(1, "02", crop=False)
    part = (c > 0.05) & (c < 0.95)
    assert np.abs(kept.image.numpy() - c[..., None] * F)[part].mean() > 0.2  # the backdrop kept in the edge
    s = _sampler(video)
    assert s._given_plate("01") is None and s._given_plate("02") is not None
