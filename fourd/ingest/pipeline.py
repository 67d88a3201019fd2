"""``fourd data ingest``: a folder of synchronized-enough videos → an EasyVolcap capture that
``fourd train`` reads (images/, masks/, intri.yml, extri.yml, fourd.json), plus
``ingest.json`` (everything measured) and ``ingest_report.png`` (what to look at).

Recording protocol the defaults assume (README "Your own cameras"): start all cameras, wave the
ChArUco board in front of them, clap (or flash a light), then perform. Frames are numbered in the
synchronized timeline (frame 0: the first moment every camera is recording); the board is searched
for before the sync event, the capture is the frames after it.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fourd.console import log, progress
from fourd.errors import DataError
from fourd.ingest.calibrate import BoardSpec, Detection, align_world, calibrate, detect
from fourd.ingest.sync import synchronize
from fourd.ingest.video import check_rig, iter_frames, list_videos, probe


@dataclass
class IngestOptions:
    frames: str | None = None
    """synchronized frames to keep, 'a:b' (half-open) — default: every frame after the sync event."""
    stride: int = 1
    """keep every n-th frame."""
    scale: float = 1.0
    """resize images by this factor (calibration and masks follow)."""
    sync: str = "auto"
    """auto (audio if every video has sound, else flash) | audio | flash | none."""
    offsets: Path | None = None
    """JSON {camera: frames} of the sync event's frame in each video (skips automatic sync)."""
    calib_frames: str | None = None
    """synchronized frames in which to look for the board, 'a:b' — default: every frame before the sync event."""
    calibration: Path | None = None
    """a folder with intri.yml/extri.yml to use instead of calibrating."""
    calibrate: str = "auto"
    """board | sfm | auto (the board when any camera sees it, else structure from motion)."""
    sfm_model: str = "RADIAL"
    """COLMAP camera model for structure from motion."""
    sfm_scale: str | None = None
    """'A:B:metres': the distance between cameras A and B, to give SfM's scene metric units."""
    board: BoardSpec = field(default_factory=BoardSpec)
    distortion: str = "auto"
    """auto (fit k1, k2 where the board reached the image corners) | on | off."""
    background: Path | None = None
    """folder of empty-scene videos (same camera names) for background-plate masks."""
    masks: str = "plate"
    """plate (needs --background) | key (a plain backdrop of one colour) | model (needs --mask-model) | none."""
    key: str = "auto"
    """with masks="key": the backdrop's colour (auto, black, white or R,G,B)."""
    mask_model: Path | None = None
    """local folder with an ONNX segmenter (model.onnx + segmenter.json)."""
    held_out: str | None = None
    """cameras kept for evaluation: a count or names 'a,b' — default: one in eight."""
    image_format: str = "jpg"
    jpeg_quality: int = 95
    mask_flag_ratio: float = 0.8
    """a mask is flagged when its IoU with the carved hull's projection is below this fraction of the
    frame's median IoU over all cameras (the hull of a few views is always fatter than the subject)."""


def _range(spec: str | None, default: tuple[int, int], what: str) -> tuple[int, int]:
    if spec is None:
        return default
    try:
        a, b = (spec.split(":") + [""])[:2]
        lo = int(a) if a else default[0]
        hi = int(b) if b else default[1]
    except ValueError:
        raise DataError(f"cannot read '{spec}'", what, "use a:b (half-open), e.g. 10:200") from None
    if hi <= lo:
        raise DataError(f"empty range '{spec}'", what, "give a:b with a < b")
    return lo, hi


def _held_out(spec: str | None, names: list[str]) -> list[str]:
    from fourd.datasets.synth import held_out_names

    if spec is None:
        return held_out_names(names, len(names) // 8)
    if spec.strip().isdigit():
        return held_out_names(names, int(spec))
    chosen = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [s for s in chosen if s not in names]
    if bad:
        raise DataError(f"no camera named '{bad[0]}'", "--held-out", f"use names among {', '.join(names)}")
    return chosen


def ingest(videos: str | Path, out: str | Path, opt: IngestOptions | None = None, images: bool = True) -> dict:
    """Run every step; returns the report dict (also written to ``out/ingest.json``).
    ``images=False`` stops after the calibration (``fourd data calibrate``)."""
    from fourd.datasets.codecs import encode_image
    from fourd.io import atomic_write_bytes, write_json

    opt = opt or IngestOptions()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vids = list_videos(videos)
    names = list(vids)
    infos = {n: probe(p) for n, p in vids.items()}
    fps = check_rig(infos)
    sizes = {n: (round(i.height * opt.scale), round(i.width * opt.scale)) for n, i in infos.items()}
    report: dict = {"videos": {n: i.to_dict() for n, i in infos.items()}, "fps": fps}

    # 1. synchronization
    sync = synchronize(infos, fps, opt.sync, opt.offsets)
    report["sync"] = sync.to_dict()
    start = {n: sync.start(n) for n in names}
    length = {n: infos[n].frames - start[n] for n in names}
    common = min(length.values())
    if common <= 0:
        n = min(length, key=length.get)
        raise DataError(f"camera {n} ends before the others start (no common frames after synchronization)",
                        infos[n].path, "check the offsets, or trim the videos to the same take")
    if max(length.values()) - common > fps:  # stops differ by over a second: say who is short
        n = min(length, key=length.get)
        log(f"[yellow]camera {n} stops {max(length.values()) - common} frames before the longest one; "
            f"the capture ends with it[/]")
    event = min(sync.offsets.values()) if sync.method in ("audio", "flash", "file") else -1
    lo, hi = _range(opt.frames, (event + 1, common), "--frames")
    short = [n for n in names if hi > length[n]]
    if short:
        n = short[0]
        raise DataError(f"camera {n} has only {length[n]} frames after synchronization; --frames asks for up to {hi}",
                        infos[n].path, f"use --frames {lo}:{min(length.values())} or record every camera to the end")
    keep = list(range(lo, hi, opt.stride))
    slot = {j: k for k, j in enumerate(keep)}  # synchronized frame → index in the written capture
    if not keep:
        raise DataError(f"no frames to keep (synchronized frames {lo}..{hi - 1}, sync event at {event})", videos,
                        "record the performance after the clap/flash, or choose --frames a:b")
    c_lo, c_hi = _range(opt.calib_frames, (-max(start.values()), max(event, 0)), "--calib-frames")
    report["frames"] = {"synced_first": lo, "synced_end": hi, "stride": opt.stride, "count": len(keep),
                        "sync_event_frame": event, "calibration_frames": [c_lo, c_hi]}
    log(f"ingest: {len(names)} cameras at {fps:.3f} fps, sync by {sync.method} "
        f"(offsets {min(sync.offsets.values())}..{max(sync.offsets.values())} frames); "
        f"capture frames {lo}..{hi - 1} ({len(keep)})"
        + (f", board searched in {c_lo}..{c_hi - 1}" if opt.calibration is None and c_hi > c_lo else ""))

    # 2. decode: capture frames to images/, board detections from the calibration frames
    import cv2

    if opt.calibrate not in ("auto", "board", "sfm"):
        raise DataError(f"unknown calibration method '{opt.calibrate}'", "--calibrate", "use auto, board or sfm")
    want_board = opt.calibration is None and opt.calibrate in ("auto", "board")
    first_frame: dict[str, np.ndarray] = {}
    detector = cv2.aruco.CharucoDetector(opt.board.board()) if want_board else None
    detections: dict[str, dict[int, Detection]] = {n: {} for n in names}
    board_snap: dict[str, tuple[int, np.ndarray]] = {}
    ext = "." + opt.image_format.lstrip(".")
    with progress("decoding videos", len(names)) as advance:
        for n in names:
            s = start[n]
            first = (min(lo, c_lo) if want_board else lo) + s
            last = (max(hi if images else lo + 1, c_hi) if want_board else (hi if images else lo + 1)) + s
            if images:
                (out / "images" / n).mkdir(parents=True, exist_ok=True)
            for i, img in iter_frames(vids[n], max(first, 0), last, 1, opt.scale):
                j = i - s
                if want_board and c_lo <= j < c_hi:
                    d = detect(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), opt.board, detector)
                    if d is not None:  # pixel positions in the (scaled) image, as the cameras are
                        detections[n][j] = d
                        if n not in board_snap or len(d.ids) > len(detections[n][board_snap[n][0]].ids):
                            board_snap[n] = (j, img)
                if j == lo:
                    first_frame[n] = img
                k = slot.get(j) if images else None
                if k is not None:
                    atomic_write_bytes(out / "images" / n / f"{k:06d}{ext}", encode_image(img, ext, opt.jpeg_quality))
            got = len(list((out / "images" / n).glob(f"*{ext}")))
            if images and got < len(keep):
                raise DataError(f"decoded {got} of {len(keep)} frames", vids[n],
                                "the video is shorter than its header says (truncated?); re-copy it or use --frames")
            advance()

    # 3. calibration
    if opt.calibration is not None:
        from fourd.datasets.easyvolcap import read_easyvolcap_cameras

        cams = read_easyvolcap_cameras(Path(opt.calibration))
        missing = [n for n in names if n not in cams.names]
        if missing:
            raise DataError(f"no calibration for camera '{missing[0]}'", Path(opt.calibration) / "intri.yml",
                            "name the videos as the cameras in intri.yml/extri.yml")
        cams = cams[[cams.index(n) for n in names]]
        report["calibration"] = {"source": str(opt.calibration)}
        cal = None
    else:
        seen = {n: len(d) for n, d in detections.items()}
        if want_board:
            log(f"board seen in {sum(seen.values())} camera-frames "
                f"({min(seen.values())}..{max(seen.values())} per camera)")
        if opt.calibrate == "sfm" or (opt.calibrate == "auto" and not any(seen.values())):
            cal = _sfm(out, names, first_frame, opt, no_board=opt.calibrate == "auto")
            report["calibration"] = {"source": "sfm", "model": opt.sfm_model, "scale": opt.sfm_scale,
                                     **cal.summary()}
        else:
            cal = calibrate(detections, sizes, opt.board, opt.distortion)
            report["calibration"] = {"source": "board", **cal.summary(), "board": opt.board.__dict__}
        align_world(cal)
        cams = cal.cameras()
    from fourd.datasets.easyvolcap import write_easyvolcap_cameras

    write_easyvolcap_cameras(out, cams)
    if not images:
        write_json(out / "ingest.json", report)
        log(f"calibration written → {out}/intri.yml, extri.yml")
        return report

    # 4. masks
    mask_scores = {}
    if opt.masks == "plate":
        if opt.background is None:
            raise DataError("background-plate masks need the empty-scene videos", "--background",
                            "film the empty scene with every camera and give that folder, or use --masks none")
        mask_scores = plate_masks(out, opt.background, cams, opt.scale, opt.mask_flag_ratio)
    elif opt.masks == "model":
        if opt.mask_model is None:
            raise DataError("learned masks need a local model folder", "--mask-model",
                            "give the folder with model.onnx (and segmenter.json), or use --masks plate")
        mask_scores = model_masks(out, opt.mask_model, cams, opt.mask_flag_ratio)
    elif opt.masks == "key":
        mask_scores = key_masks(out, opt.key, cams, opt.mask_flag_ratio)
    elif opt.masks != "none":
        raise DataError(f"unknown mask method '{opt.masks}'", "--masks", "use plate, key, model or none")
    report["masks"] = mask_scores

    held = _held_out(opt.held_out, names)
    atomic_write_bytes(out / "fourd.json", json.dumps({"held_out": held, "fps": fps / opt.stride}, indent=2).encode())
    report["held_out"] = held
    write_json(out / "ingest.json", report)
    from fourd.ingest.report import ingest_picture

    ingest_picture(out, cams, names, keep, ext, cal, board_snap, mask_scores)
    log(f"capture written → {out} (train it: fourd train --dataset {out})")
    return report


def _sfm(out: Path, names: list[str], first_frame: dict, opt: IngestOptions, no_board: bool):
    from fourd.ingest.sfm import have_pycolmap, sfm_calibrate

    if no_board and not have_pycolmap():
        raise DataError("no camera sees the board, and structure from motion needs pycolmap (not installed)", None,
                        "check --board-columns/--board-rows/--board-dictionary match the printed board, "
                        "or pip install 'fourd[rig]' to calibrate without one")
    scale = None
    if opt.sfm_scale:
        try:
            a, b, m = opt.sfm_scale.split(":")
            scale = (a, b, float(m))
        except ValueError:
            raise DataError(f"cannot read '{opt.sfm_scale}'", "--sfm-scale", "give A:B:metres, e.g. 00:06:3.2") from None
    if opt.background is not None:  # the empty scene: all static, nothing to confuse the matcher
        plates = list_videos(opt.background)
        imgs = {n: next(iter(iter_frames(plates[n], 0, 1, 1, opt.scale)))[1] for n in names if n in plates}
        if len(imgs) < len(names):
            imgs = first_frame
    else:
        imgs = first_frame
    if no_board:
        log("no camera sees the board: calibrating by structure from motion")
    return sfm_calibrate({n: imgs[n] for n in names}, out / "sfm", opt.sfm_model, scale)


def _image_files(root: Path, cam: str) -> list[Path]:
    from fourd.datasets.easyvolcap import _frame_files, camera_folder

    d = camera_folder(root / "images", cam)  # (images/1 for camera 01: matched by number, as captures read)
    return [p for _, p in sorted(_frame_files(d).items())] if d.is_dir() else []


def plate_masks(out: Path, background: str | Path, cams, scale: float = 1.0, flag_ratio: float = 0.8) -> dict:
    """Masks for every image of the EasyVolcap capture ``out`` (images/<cam>/…) against each
    camera's empty-scene video in ``background``; writes masks/<cam>/<stem>.png and the empty scene
    (the frames' median) as bkgd/<cam>.jpg, and returns the coverage and hull-consistency report."""
    from fourd.ingest.masks import make_plate, plate_mask

    plates = list_videos(background)
    missing = [n for n in cams.names if n not in plates]
    if missing:
        raise DataError(f"no background-plate video for camera '{missing[0]}'", background,
                        "film the empty scene with every camera; name each video as the camera's")

    def for_camera(n: str):
        frames = [img for _, img in iter_frames(plates[n], 0, 60, 1, scale)]
        plate = make_plate(frames, str(plates[n]))
        if frames:  # the empty scene itself, for training to take out of the masks' soft edges (bkgd/, 4K4D's layout)
            from fourd.datasets.codecs import encode_image
            from fourd.io import atomic_write_bytes

            (out / "bkgd").mkdir(exist_ok=True)
            still = np.median(np.stack(frames), 0).round().astype(np.uint8)
            atomic_write_bytes(out / "bkgd" / f"{n}.jpg", encode_image(still, ".jpg", 95))

        def mask(img: np.ndarray) -> np.ndarray:
            if plate.lab.shape[:2] != img.shape[:2]:
                raise DataError("background plate and capture differ in size", plates[n],
                                "film the plate with the same camera settings (or pass the same --scale)")
            return plate_mask(img, plate)

        return mask, plates[n]

    return write_masks(out, cams, for_camera, "plate", flag_ratio,
                       "the image never differs from the plate; check that this plate was filmed by the same "
                       "camera from the same place, or drop the camera's video")


def key_masks(out: Path, key: str, cams, flag_ratio: float = 0.8) -> dict:
    """Masks for every image of the EasyVolcap capture ``out`` against a plain backdrop of one colour
    (``key``: auto, black, white or R,G,B; :func:`fourd.ingest.masks.key_plate`): a renderer's film
    without alpha, a green or blue screen."""
    from fourd.datasets.codecs import decode_image
    from fourd.ingest.masks import key_mask, key_plate, parse_key

    rgb = parse_key(key)
    white = _white16(out, cams.names)

    def for_camera(n: str):
        files = _image_files(out, n)
        sample = [decode_image(p.read_bytes(), str(p), white16=white)
                  for p in files[:: max(1, len(files) // 5)][:5]]
        where = out / "images" / n
        plate, lightness = key_plate(sample, rgb, str(where))  # (write_masks saw images for every camera)

        def mask(img: np.ndarray) -> np.ndarray:
            if plate.lab.shape[:2] != img.shape[:2]:
                raise DataError("the camera's images differ in size", where, "give every image of a camera one size")
            return key_mask(img, plate, lightness)

        return mask, where

    return write_masks(out, cams, for_camera, "key", flag_ratio,
                       "no image of this camera differs from the backdrop's colour; check --key")


def model_masks(out: Path, model_dir: str | Path, cams, flag_ratio: float = 0.8, device: str = "cpu") -> dict:
    """Masks from a local learned segmenter (:class:`fourd.ingest.segmenter.LocalSegmenter`)."""
    from fourd.ingest.segmenter import LocalSegmenter

    seg = LocalSegmenter(model_dir, device)
    return write_masks(out, cams, lambda n: (seg, seg.path), "model", flag_ratio,
                       "the segmenter finds no subject in this camera; check the model suits the scene")


def _white16(out: Path, names):
    """A function giving the white level of the capture's 16-bit images
    (:func:`fourd.datasets.codecs.sixteen_bit_white`, from each camera's first, middle and last
    image), worked out on its first call — :func:`fourd.datasets.codecs.decode_image` calls it for a
    16-bit file only."""
    from fourd.datasets.codecs import sixteen_bit_white

    def white() -> int:
        folders = [f for f in (_image_files(Path(out), n) for n in names) if f]
        picks = [p for f in folders for p in dict.fromkeys((f[0], f[len(f) // 2], f[-1]))]
        return sixteen_bit_white((p.read_bytes(), str(p)) for p in picks)[0]

    return functools.cache(white)


def write_masks(out: Path, cams, for_camera, method: str, flag_ratio: float, empty_fix: str) -> dict:
    """Run ``for_camera(name) -> (image → bool mask, source path)`` on every image of the capture
    ``out``, write masks/, and check them against each other (visual hull)."""
    from fourd.datasets.codecs import decode_image, encode_image
    from fourd.ingest.masks import check_masks
    from fourd.io import atomic_write_bytes

    out = Path(out)
    names = list(cams.names)
    files = {n: _image_files(out, n) for n in names}
    count = min(len(f) for f in files.values())
    if count == 0:
        n = min(files, key=lambda k: len(files[k]))
        raise DataError(f"no images for camera '{n}'", out / "images" / n, "ingest or copy the frames first")
    white = _white16(out, names)
    coverage = {}
    flagged = []
    per_frame: dict[int, dict[str, np.ndarray]] = {}
    check_every = max(1, count // 4)
    with progress(f"masks ({method})", len(names)) as advance:
        for n in names:
            fn, source = for_camera(n)
            (out / "masks" / n).mkdir(parents=True, exist_ok=True)
            cov = []
            for k, p in enumerate(files[n][:count]):
                m = fn(decode_image(p.read_bytes(), str(p), white16=white))
                cov.append(float(m.mean()))
                if k % check_every == 0:
                    per_frame.setdefault(k, {})[n] = m
                atomic_write_bytes(out / "masks" / n / f"{p.stem}.png", encode_image(m.astype(np.uint8) * 255, ".png"))
            coverage[n] = float(np.mean(cov))
            if max(cov) == 0:
                raise DataError(f"camera {n}: the mask is empty in every frame", source, empty_fix)
            advance()
    consistency: dict[str, list[float]] = {n: [] for n in names}
    for k, ms in per_frame.items():
        ious = check_masks(cams, ms)
        med = float(np.median(list(ious.values())))
        for n, v in ious.items():
            consistency[n].append(float(v))
            if v < flag_ratio * med:
                flagged.append({"camera": n, "frame": k, "hull_iou": float(v), "frame_median": med})
    if flagged:
        worst = min(flagged, key=lambda f: f["hull_iou"])
        log(f"[yellow]masks: {len(flagged)} masks disagree with the other cameras (worst: camera {worst['camera']} "
            f"frame {worst['frame']}, IoU {worst['hull_iou']:.2f} with the carved hull); see ingest_report.png[/]")
    return {"method": method, "coverage": coverage,
            "hull_iou": {n: float(np.mean(v)) if v else None for n, v in consistency.items()}, "flagged": flagged}
