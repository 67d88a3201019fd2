"""`fourd data ingest` on a rig the test makes itself: a synthetic subject rendered in a textured
studio, a ChArUco board waved before a clap + flash, cameras that start at different times, an
empty-studio plate per camera, H.264 + AAC videos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fourd.errors import DataError
from fourd.ingest.calibrate import BoardSpec, compare_rigs
from fourd.ingest.testrig import RigRecipe, make_rig
from fourd.ingest.video import write_video

pytestmark = [pytest.mark.slow, pytest.mark.gl]


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    root = tmp_path_factory.mktemp("rig")
    truth = make_rig(root, RigRecipe())
    return root, truth


@pytest.fixture(scope="module")
def ingested(rig):
    from fourd.ingest.pipeline import IngestOptions, ingest

    root, truth = rig
    opt = IngestOptions(background=root / "plate", board=BoardSpec(**truth["board"]),
                        held_out=",".join(truth["held_out"]))
    report = ingest(root / "videos", root / "out", opt)
    return root / "out", report


def test_offsets_are_exact(rig, ingested):
    _, truth = rig
    _, report = ingested
    assert report["sync"]["method"] == "audio"
    assert report["sync"]["offsets"] == truth["event_frame"]
    assert max(abs(v) for v in report["sync"]["residual_frames"].values()) < 0.25
    assert report["frames"]["synced_first"] == truth["subject_first_synced_frame"]


def test_flash_sync_agrees(rig):
    from fourd.ingest.sync import synchronize
    from fourd.ingest.video import check_rig, list_videos, probe

    root, truth = rig
    infos = {n: probe(p) for n, p in list_videos(root / "videos").items()}
    res = synchronize(infos, check_rig(infos), "flash")
    assert res.offsets == truth["event_frame"]
    assert min(res.confidence.values()) > 0.5


def test_offsets_file(rig, tmp_path):
    from fourd.ingest.sync import file_offsets

    _root, truth = rig
    p = tmp_path / "o.json"
    p.write_text(json.dumps({"offsets": truth["event_frame"]}))
    res = file_offsets(p, list(truth["event_frame"]), 30.0)
    assert res.offsets == truth["event_frame"]
    p.write_text(json.dumps({"00": 1}))
    with pytest.raises(DataError, match="no offset for camera"):
        file_offsets(p, list(truth["event_frame"]), 30.0)


def test_calibration_accuracy(rig, ingested):
    from fourd.datasets import open_dataset

    _root, truth = rig
    out, report = ingested
    est = open_dataset(out).cameras
    tru = open_dataset(truth["synth"]).cameras
    assert est.names == tru.names
    cmp = compare_rigs(est.R.double().numpy(), est.centers.double().numpy(),
                       tru.R.double().numpy(), tru.centers.double().numpy())
    assert cmp["rotation_deg_max"] <= 0.2, cmp
    assert cmp["center_err_max"] <= 0.005, cmp
    assert report["calibration"]["max_rms_px"] <= 0.5
    # metric scale from the board: the rig comes out at the synthetic world's scale
    assert abs(cmp["scale"] - 1) < 0.01
    # +y up and the origin where the cameras look (near the subject's centre)
    up = -est.R[:, 1].double().numpy().mean(0)
    assert up[1] / np.linalg.norm(up) > 0.99


def test_masks_match_exact_ones(rig, ingested):
    from fourd.datasets import open_dataset
    from fourd.ingest.masks import mask_iou

    _root, truth = rig
    out, _ = ingested
    got, exact = open_dataset(out), open_dataset(truth["synth"])
    assert got.frames == exact.frames
    ious = [mask_iou(got.mask(f, n), exact.mask(f, n)) for f in got.frames for n in got.camera_names]
    assert min(ious) >= 0.97, min(ious)
    # the images are the synthetic renders in the studio: same subject pixels
    img, ref, m = got.image(2, "05"), exact.image(2, "05"), exact.mask(2, "05")
    assert np.abs(img[m].astype(float) - ref[m]).mean() < 6


def test_outputs_and_report(ingested):
    out, report = ingested
    for f in ("intri.yml", "extri.yml", "fourd.json", "ingest.json", "ingest_report.png"):
        assert (out / f).is_file(), f
    saved = json.loads((out / "ingest.json").read_text())
    assert saved["sync"]["offsets"] == report["sync"]["offsets"]
    assert not report["masks"]["flagged"]
    import cv2

    pic = cv2.imread(str(out / "ingest_report.png"))
    assert pic.shape[0] >= 320 and pic.shape[1] > pic.shape[0]
    # the empty scene of each camera (bkgd/, 4K4D's layout): what its images show away from the subject
    from fourd.datasets import open_dataset

    cap = open_dataset(out)
    assert sorted(p.stem for p in (out / "bkgd").iterdir()) == sorted(cap.camera_names)
    n, f = cap.camera_names[0], cap.frames[len(cap.frames) // 2]
    v, back = cap.view(f, n), cap.backdrop(n)
    far = cv2.dilate(v.mask.astype(np.uint8), np.ones((15, 15), np.uint8)) == 0
    diff = np.abs(back.astype(int) - v.image.astype(int)).max(-1)
    assert far.mean() > 0.3 and np.median(diff[far]) <= 4, np.median(diff[far])


def test_hull_check_flags_a_broken_mask(rig):
    from fourd.datasets import open_dataset
    from fourd.ingest.masks import check_masks

    _, truth = rig
    cap = open_dataset(truth["synth"])
    masks = {n: cap.mask(0, n) for n in cap.camera_names}
    clean = check_masks(cap.cameras, masks, center=(0, 0.5, 0))
    masks["03"] = np.zeros_like(masks["03"])
    masks["03"][60:200, 300:420] = True  # a blob where the subject is not
    broken = check_masks(cap.cameras, masks, center=(0, 0.5, 0))
    med = float(np.median(list(broken.values())))
    assert broken["03"] < 0.5 * med
    assert min(v for n, v in broken.items() if n != "03") > 0.6
    assert min(clean.values()) > 0.6


# ------------------------------------------------------------------------------ bad input
def _copy_videos(rig, tmp_path, names=None) -> Path:
    root, _ = rig
    d = tmp_path / "videos"
    d.mkdir()
    for p in sorted((root / "videos").glob("*.mp4")):
        if names is None or p.stem in names:
            shutil.copy(p, d / p.name)
    return d


def test_video_that_does_not_decode(rig, tmp_path):
    from fourd.ingest.video import probe

    d = _copy_videos(rig, tmp_path, {"00", "01"})
    (d / "02.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    with pytest.raises(DataError, match=r"02\.mp4") as e:
        probe(d / "02.mp4")
    assert "fix:" in str(e.value)
    # truncated: the last half of a real file cut off
    data = (d / "01.mp4").read_bytes()
    (d / "01.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"01\.mp4"):
        from fourd.ingest.video import iter_frames

        probe(d / "01.mp4")
        list(iter_frames(d / "01.mp4"))


def test_frames_beyond_a_short_camera(rig, tmp_path):
    from fourd.ingest.pipeline import IngestOptions, ingest

    root, truth = rig
    with pytest.raises(DataError, match=r"camera \S+ has only \d+ frames after synchronization"):
        ingest(root / "videos", tmp_path / "o", IngestOptions(frames="26:400", masks="none",
                                                              board=BoardSpec(**truth["board"])))


def test_board_no_camera_sees(rig, tmp_path):
    from fourd.ingest.pipeline import IngestOptions, ingest

    root, truth = rig
    wrong = BoardSpec(**{**truth["board"], "dictionary": "DICT_4X4_50"})
    with pytest.raises(DataError, match="no camera sees the board"):
        ingest(root / "videos", tmp_path / "o", IngestOptions(masks="none", board=wrong, calibrate="board"),
               images=False)


def test_empty_plate_difference(rig, tmp_path):
    """A 'plate' that is the capture itself (the subject never moved away): every mask empty."""
    from fourd.datasets import open_dataset
    from fourd.ingest.pipeline import plate_masks

    _, truth = rig
    cap = open_dataset(truth["synth"])
    names = cap.camera_names[:3]
    cap_dir = tmp_path / "cap"
    plate = tmp_path / "plate"
    for n in names:
        (cap_dir / "images" / n).mkdir(parents=True)
        img = cap.image(0, n)
        import cv2

        cv2.imwrite(str(cap_dir / "images" / n / "000000.png"), img[..., ::-1])
        write_video(plate / f"{n}.mp4", [img] * 3, 30.0, crf=0)
    with pytest.raises(DataError, match="mask is empty in every frame"):
        plate_masks(cap_dir, plate, cap.cameras[[cap.cameras.index(n) for n in names]])


def test_frame_rates_must_agree_and_be_fixed(tmp_path):
    import av

    from fourd.ingest.video import check_rig, probe

    frames = [np.full((32, 48, 3), 40 * i, np.uint8) for i in range(6)]
    write_video(tmp_path / "a.mp4", frames, 30.0)
    write_video(tmp_path / "b.mp4", frames, 25.0)
    infos = {n: probe(tmp_path / f"{n}.mp4") for n in "ab"}
    assert abs(infos["a"].fps - 30) < 1e-6 and not infos["a"].vfr
    with pytest.raises(DataError, match=r"b\.mp4.*frame rate 25"):
        check_rig(infos)
    # variable frame rate: uneven presentation times
    with av.open(str(tmp_path / "c.mp4"), "w") as out:
        s = out.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 48, 32, "yuv420p"
        s.codec_context.time_base = __import__("fractions").Fraction(1, 1000)
        for k, t in enumerate([0, 33, 66, 150, 183, 300]):
            fr = av.VideoFrame.from_ndarray(frames[k], format="rgb24")
            fr.pts = t
            fr.time_base = s.codec_context.time_base
            for p in s.encode(fr):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    info = probe(tmp_path / "c.mp4")
    assert info.vfr
    with pytest.raises(DataError, match="variable frame rate"):
        check_rig({"a": infos["a"], "c": info})


def test_subframe_audio_lag():
    from fourd.ingest.sync import _lag

    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    x = np.convolve(x, np.hanning(9), "same")
    t = np.arange(400)
    shifted = np.interp(t - 12.4, t, x)
    lag, conf = _lag(x, shifted)
    assert abs(lag - 12.4) < 0.15 and conf > 0.8


def test_cli_help_and_board(tmp_path):
    from fourd.cli import main

    assert main(["data", "board", str(tmp_path / "b.png"), "--columns", "5", "--rows", "4"]) in (0, None)
    import cv2

    from fourd.ingest.calibrate import detect

    img = cv2.imread(str(tmp_path / "b.png"), cv2.IMREAD_GRAYSCALE)
    d = detect(img, BoardSpec(5, 4, 0.1, 0.075))
    assert d is not None and len(d.ids) == 4 * 3


# ------------------------------------------------------------------------------ structure from motion
needs_colmap = pytest.mark.skipif(not __import__("fourd.ingest.sfm", fromlist=["x"]).have_pycolmap(),
                                  reason="pycolmap not installed (pip install 'fourd[rig]')")


@needs_colmap
def test_sfm_without_a_board(tmp_path):
    """No board anywhere: the rig is calibrated by COLMAP on the empty-studio plate."""
    from fourd.datasets import open_dataset
    from fourd.ingest.pipeline import IngestOptions, ingest

    truth = make_rig(tmp_path / "rig", RigRecipe(rings=((12, 10.0), (12, 40.0)), calib_frames=0,
                                                 subject_frames=3, plate_frames=2, sharp=True, held_out=2))
    tru = open_dataset(truth["synth"]).cameras
    d01 = float(np.linalg.norm(tru.centers[0] - tru.centers[12]))
    rep = ingest(tmp_path / "rig" / "videos", tmp_path / "out",
                 IngestOptions(background=tmp_path / "rig" / "plate", masks="none", sfm_scale=f"00:12:{d01}"))
    assert rep["calibration"]["source"] == "sfm"
    est = open_dataset(tmp_path / "out").cameras
    # a camera the mapper placed without any triangulated point is said to be unsupported (rms NaN);
    # the global mapper leaves one such on this sparse ring (its focal length off by ~10 %)
    rms = rep["calibration"]["rms_px"]
    names = sorted(rms)
    ok = np.array([rms[n] == rms[n] for n in names])
    assert ok.sum() >= len(names) - 2, rms
    arrays = (est.R.double().numpy(), est.centers.double().numpy(), tru.R.double().numpy(), tru.centers.double().numpy())
    cmp = compare_rigs(*(a[ok] for a in arrays))
    # looser than the board's figures: one image per camera, focal lengths free per camera
    assert cmp["rotation_deg_max"] <= 0.5, cmp
    assert cmp["center_err_max"] <= 0.04, cmp
    whole = compare_rigs(*arrays)  # the flagged ones are still roughly right, not garbage
    assert whole["rotation_deg_max"] <= 4 and whole["center_err_max"] <= 0.15, whole
    assert abs(cmp["scale"] - 1) < 0.03  # --sfm-scale made it metric
    assert abs(float(est.K[:, 0, 0].mean()) / float(tru.K[0, 0, 0]) - 1) < 0.03


@needs_colmap
def test_sfm_that_registers_too_few_cameras(tmp_path):
    from fourd.ingest.sfm import sfm_calibrate

    rng = np.random.default_rng(0)
    imgs = {f"{i:02d}": np.full((96, 128, 3), 120, np.uint8) for i in range(3)}  # nothing to match
    imgs["00"] = (rng.random((96, 128, 3)) * 255).astype(np.uint8)
    with pytest.raises(DataError, match=r"registered \d of 3 cameras") as e:
        sfm_calibrate(imgs, tmp_path / "sfm")
    assert "board" in str(e.value)


# ------------------------------------------------------------------------------ learned segmenter
def _tiny_onnx(folder: Path, **cfg) -> Path:
    """A 'segmenter' built in code: logits = 40 · (r + g + b − 0.12) — it finds anything brighter
    than a black studio (the synthetic captures' background)."""
    onnx = pytest.importorskip("onnx", reason="onnx (a dev dependency) builds the tiny test model")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.full((1, 3, 1, 1), 40, np.float32), "w")
    b = numpy_helper.from_array(np.array([-40 * 0.12], np.float32), "b")
    conv = helper.make_node("Conv", ["image", "w", "b"], ["logits"])
    graph = helper.make_graph([conv], "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                            [1, 3, None, None])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1, None, None])],
                              [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "model.onnx"))
    (folder / "segmenter.json").write_text(json.dumps({"activation": "sigmoid", "threshold": 0.5, **cfg}))
    return folder


def test_learned_segmenter_masks(tiny_ev, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime comes with fourd[rig]")
    from fourd.datasets import open_dataset
    from fourd.ingest.masks import mask_iou
    from fourd.ingest.pipeline import model_masks

    model = _tiny_onnx(tmp_path / "seg")
    cap = shutil.copytree(tiny_ev, tmp_path / "cap")
    shutil.rmtree(cap / "masks")
    exact = open_dataset(tiny_ev)
    rep = model_masks(cap, model, exact.cameras)
    got = open_dataset(cap)
    ious = [mask_iou(got.mask(f, n), exact.mask(f, n)) for f in got.frames for n in got.camera_names]
    assert min(ious) > 0.9 and np.mean(ious) > 0.95, (min(ious), np.mean(ious))
    assert set(rep["coverage"]) == set(exact.camera_names)
    # a model that takes a fixed size: the image is resized in and the scores back out
    (model / "segmenter.json").write_text(json.dumps({"input_size": [40, 48]}))
    model_masks(cap, model, exact.cameras)
    got = open_dataset(cap)
    ious = [mask_iou(got.mask(f, n), exact.mask(f, n)) for f in got.frames for n in got.camera_names]
    assert np.mean(ious) > 0.8, np.mean(ious)


def test_segmenter_bad_folder(tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime comes with fourd[rig]")
    from fourd.ingest.segmenter import LocalSegmenter

    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no \.onnx files"):
        LocalSegmenter(tmp_path / "empty")
    model = _tiny_onnx(tmp_path / "seg", colour="rgb")
    with pytest.raises(DataError, match="unknown keys"):
        LocalSegmenter(model)
    (model / "segmenter.json").write_text('{"output": 3}')
    with pytest.raises(DataError, match="has 1 output"):
        LocalSegmenter(model).scores(np.zeros((8, 8, 3), np.uint8))


def test_phone_rotation_is_applied(tmp_path):
    """A portrait phone video is stored landscape with a display rotation: frames come out upright
    (as ffmpeg and players show them) and the size is the upright one."""
    import av

    from fourd.ingest.video import iter_frames, probe

    img = np.zeros((32, 48, 3), np.uint8)
    img[:8, :8] = 255  # a mark in the stored image's top-left corner
    with av.open(str(tmp_path / "p.mp4"), "w") as out:
        s = out.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 48, 32, "yuv420p"
        s.set_display_rotation(90)
        for _ in range(3):
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    info = probe(tmp_path / "p.mp4")
    assert (info.rotation, info.width, info.height) == (90, 32, 48)
    _, up = next(iter(iter_frames(tmp_path / "p.mp4")))
    assert up.shape[:2] == (48, 32)
    ys, xs = np.nonzero(up[..., 0] > 128)
    assert ys.mean() > 40 and xs.mean() < 8  # turned a quarter counter-clockwise: top-left → bottom-left


def test_cli_sync_and_one_line_errors(rig, tmp_path):
    import subprocess
    import sys

    root, truth = rig
    r = subprocess.run([sys.executable, "-m", "fourd.cli", "data", "sync", str(root / "videos"), "--out",
                        str(tmp_path / "o.json")], check=False, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["offsets"] == truth["event_frame"]
    assert json.loads((tmp_path / "o.json").read_text())["offsets"] == truth["event_frame"]
    (tmp_path / "one").mkdir()
    shutil.copy(root / "videos" / "00.mp4", tmp_path / "one" / "00.mp4")
    r = subprocess.run([sys.executable, "-m", "fourd.cli", "data", "ingest", str(tmp_path / "one"),
                        str(tmp_path / "out")], check=False, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "only one video" in lines[0] and "fix:" in lines[0], r.stderr


def test_an_arc_of_cameras_looking_down_gets_the_true_up():
    """Cameras on a half circle in front of the subject, tilted 20° down at it (a common studio
    set-up): the ingested world's +y is the rig's true up. The cameras' mean image-up, taken
    alone before, leans toward the subject (here by 13°), and the capture came out tilted."""
    import torch

    from fourd.ingest.calibrate import Calibration, align_world
    from fourd.structures.cameras import Cameras

    ang = np.radians(np.linspace(-80, 80, 9))
    true_up = np.array([0.3, 0.2, 0.9]) / np.linalg.norm([0.3, 0.2, 0.9])  # a z-up-ish world, off axis
    a = np.cross(true_up, [1.0, 0, 0])
    a /= np.linalg.norm(a)
    b = np.cross(true_up, a)
    target = np.array([2.0, -1.0, 0.5])
    eyes = target + 3.0 * (np.cos(ang)[:, None] * a + np.sin(ang)[:, None] * b) + 1.1 * true_up
    cams = Cameras.look_at(torch.from_numpy(eyes), tuple(target), up=tuple(true_up))
    R, T = cams.R.double().numpy(), cams.T.double().numpy()
    old = -R[:, 1].mean(0)
    assert np.degrees(np.arccos(old @ true_up / np.linalg.norm(old))) > 5  # what the old rule took
    cal = Calibration([f"c{i}" for i in range(9)], np.tile(np.eye(3), (9, 1, 1)), np.zeros((9, 5)), R, T,
                      [(480, 640)] * 9)
    M = align_world(cal)
    assert M[:3, :3][1] @ true_up > np.cos(np.radians(0.5))  # the new +y, in the old world


def test_video_names_become_camera_names_calibration_files_hold(tmp_path):
    """A camera is named by its video's file name; "cam.left (2).mp4" made a camera whose
    intri.yml key OpenCV refuses (a bare cv2.error at the end of the ingest). Two files that make
    one name are refused, naming both."""
    from fourd.ingest.video import list_videos

    for n in ("cam.left (2).mp4", "GoPro 1.MP4", "c3.mov"):
        (tmp_path / n).write_bytes(b"")
    assert list(list_videos(tmp_path)) == ["GoPro_1", "c3", "cam_left_2"]
    (tmp_path / "cam_left_2.mkv").write_bytes(b"")
    with pytest.raises(DataError, match="both make camera 'cam_left_2'"):
        list_videos(tmp_path)


@pytest.mark.parametrize("backdrop", ["black", "green screen", "room"])
def test_masks_from_a_plain_backdrop(tiny_ev, tmp_path, backdrop):
    """`fourd data masks CAP --key auto`: a renderer's film over black without alpha, or a
    chroma-key studio's shaded, noisy green screen, gives masks that match the true ones; a
    textured room is refused (not a plain backdrop), naming the camera's images."""
    import cv2

    from fourd.cli import main
    from fourd.datasets.easyvolcap import EasyVolcapCapture

    src = EasyVolcapCapture(tiny_ev)
    cap = Path(shutil.copytree(tiny_ev, tmp_path / "cap"))
    shutil.rmtree(cap / "masks")
    rng = np.random.default_rng(0)
    for n in src.camera_names:
        for f in src.frames:
            p = next((cap / "images" / n).glob(f"{f:06d}.*"))
            img, m = src.image(f, n).astype(np.float32), src.mask(f, n)[..., None]
            H, W = m.shape[:2]
            if backdrop == "green screen":  # shaded top to bottom, sensor noise
                shade = np.linspace(0.8, 1.1, H)[:, None, None]
                screen = np.array([40.0, 170.0, 70.0]) * shade + rng.normal(0, 3, (H, W, 3))
                img = np.where(m, img, screen)
            elif backdrop == "room":
                img = np.where(m, img, rng.uniform(0, 255, (H, W, 3)))
            cv2.imwrite(str(p.with_suffix(".png")), np.clip(img, 0, 255).astype(np.uint8)[..., ::-1])
            if p.suffix != ".png":
                p.unlink()
    args = ["--quiet", "data", "masks", str(cap), "--key", "auto"]
    if backdrop == "room":
        assert main(args) == 2
        return
    assert main(args) == 0
    got = EasyVolcapCapture(cap)
    ious = []
    for n in src.camera_names:
        for f in src.frames:
            a, b = got.mask(f, n), src.mask(f, n)
            ious.append((a & b).sum() / max((a | b).sum(), 1))
    assert min(ious) > 0.9 and np.mean(ious) > 0.95, (min(ious), np.mean(ious))
