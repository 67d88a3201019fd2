"""`fourd data ingest|sync|calibrate|masks|board`: from a folder of videos (one per camera) to a
capture `fourd train` reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import tyro

from fourd.console import log

Pos = tyro.conf.Positional


def _board(columns: int, rows: int, square: float, marker: float | None, dictionary: str):
    from fourd.errors import FourdError
    from fourd.ingest.calibrate import BoardSpec

    for opt, v in (("--board-columns", columns), ("--board-rows", rows)):
        if not 3 <= v <= 64:
            raise FourdError(f"{v} is out of range [3, 64]", opt, "count the squares along the printed board")
    if not square > 0:
        raise FourdError(f"{square} is not a length", "--board-square", "give the side of one square in metres")
    return BoardSpec(columns, rows, square, marker if marker is not None else 0.75 * square, dictionary)


def data_ingest(videos: Pos[Path], out: Pos[Path], background: Path | None = None, frames: str | None = None,
                stride: int = 1, scale: float = 1.0, sync: Literal["auto", "audio", "flash", "none"] = "auto",
                offsets: Path | None = None, calib_frames: str | None = None, calibration: Path | None = None,
                calibrate: Literal["auto", "board", "sfm"] = "auto", sfm_model: str = "RADIAL",
                sfm_scale: str | None = None, board_columns: int = 7, board_rows: int = 5, board_square: float = 0.1,
                board_marker: float | None = None, board_dictionary: str = "DICT_5X5_100",
                distortion: Literal["auto", "on", "off"] = "auto",
                masks: Literal["plate", "key", "model", "none"] = "plate", key: str = "auto",
                mask_model: Path | None = None, held_out: str | None = None,
                image_format: Literal["jpg", "png"] = "jpg") -> None:
    """Turn a folder of videos (one per camera) into a calibrated, masked capture for `fourd train`.

    Steps: read and check the videos (same fixed frame rate), synchronize them (audio clap or light
    flash), calibrate the rig from a ChArUco board filmed before the sync event (intrinsics with
    distortion per camera, joint bundle adjustment, world with +y up and the origin where the cameras
    look), cut masks by background-plate differencing, check the masks against each other (visual
    hull), and write images/, masks/, intri.yml, extri.yml, fourd.json, ingest.json and
    ingest_report.png. Recording advice: README, "Your own cameras".

    Args:
        videos: folder with one video per camera (MP4/MOV/MKV; the file name is the camera name).
        out: capture folder to write (EasyVolcap layout).
        background: folder with a short video of the empty scene per camera (same names) for masks.
        frames: synchronized frames to keep, a:b — default: every frame after the sync event.
        stride: keep every n-th frame.
        scale: resize images by this factor (0.5 halves them); calibration follows.
        sync: auto (audio when every video has sound, else flash), audio, flash, none (videos start together).
        offsets: JSON {camera: frame of the sync event in that video} instead of automatic sync.
        calib_frames: synchronized frames to search for the board, a:b — default: all frames before the event.
        calibration: folder with intri.yml/extri.yml to use instead of the board (names = video names).
        calibrate: board, sfm (structure from motion with COLMAP on one synchronized instant; needs
            pycolmap), or auto (the board when any camera sees it, else sfm).
        sfm_model: COLMAP camera model for sfm (RADIAL: f, cx, cy, k1, k2; OPENCV needs several poses per camera).
        sfm_scale: A:B:metres — the measured distance between cameras A and B, for metric sfm units.
        board_columns: squares along the board's long side.
        board_rows: squares along the board's short side.
        board_square: side of a printed square in metres (sets the scene's scale).
        board_marker: side of a printed ArUco marker in metres (default 0.75 × square).
        board_dictionary: ArUco dictionary of the board (DICT_4X4_50, DICT_5X5_100, DICT_6X6_250, ...).
        distortion: fit lens distortion (k1, k2): auto where the board reached the image corners, on, off.
        masks: plate (background differencing, needs --background), key (a plain backdrop of one
            colour: a green or blue screen), model (a local learned segmenter, needs --mask-model) or none.
        key: with --masks key: the backdrop's colour — auto (the images' borders tell), black, white or R,G,B.
        mask_model: folder with an ONNX segmenter (model.onnx + segmenter.json; see fourd/ingest/segmenter.py).
        held_out: cameras kept for evaluation: a count or names a,b (default: one in eight).
        image_format: jpg or png for the written frames.
    """
    from fourd.ingest.pipeline import IngestOptions, ingest
    from fourd.io import check_output

    check_output(out, "folder", (videos,))
    opt = IngestOptions(frames=frames, stride=stride, scale=scale, sync=sync, offsets=offsets,
                        calib_frames=calib_frames, calibration=calibration, calibrate=calibrate, sfm_model=sfm_model,
                        sfm_scale=sfm_scale,
                        board=_board(board_columns, board_rows, board_square, board_marker, board_dictionary),
                        distortion=distortion, background=background, masks=masks, key=key, mask_model=mask_model,
                        held_out=held_out,
                        image_format=image_format)
    ingest(videos, out, opt)
    print(out)


def data_sync(videos: Pos[Path], method: Literal["auto", "audio", "flash"] = "auto",
              out: Path | None = None) -> None:
    """Estimate each video's time offset (audio clap or light flash) and print it as JSON.

    The JSON is {"offsets": {camera: frame of the event in that video}, "residual_frames": ...,
    "confidence": ...}; pass it to `fourd data ingest --offsets` (edit it by hand if a camera is off).

    Args:
        videos: folder with one video per camera.
        method: auto (audio when every video has sound, else flash), audio or flash.
        out: also write the JSON to this file.
    """
    from fourd.ingest.sync import synchronize
    from fourd.ingest.video import check_rig, list_videos, probe
    from fourd.io import atomic_write_text

    infos = {n: probe(p) for n, p in list_videos(videos).items()}
    res = synchronize(infos, check_rig(infos), method)
    text = json.dumps(res.to_dict(), indent=2)
    if out is not None:
        atomic_write_text(out, text)
        log(f"offsets → {out}")
    print(text)


def data_calibrate(videos: Pos[Path], out: Pos[Path], sync: Literal["auto", "audio", "flash", "none"] = "auto",
                   offsets: Path | None = None, calib_frames: str | None = None, scale: float = 1.0,
                   calibrate: Literal["auto", "board", "sfm"] = "auto", sfm_model: str = "RADIAL",
                   sfm_scale: str | None = None, background: Path | None = None, board_columns: int = 7, board_rows: int = 5, board_square: float = 0.1,
                   board_marker: float | None = None, board_dictionary: str = "DICT_5X5_100",
                   distortion: Literal["auto", "on", "off"] = "auto") -> None:
    """Calibrate a rig from a ChArUco board in its videos; write OUT/intri.yml and OUT/extri.yml.

    Args:
        videos: folder with one video per camera.
        out: folder for intri.yml, extri.yml and ingest.json.
        sync: how to synchronize the videos (the board must be seen at the same moment by several cameras).
        offsets: JSON {camera: frame of the sync event} instead of automatic sync.
        calib_frames: synchronized frames to search for the board, a:b (default: before the sync event).
        scale: resize images by this factor before detection (the calibration is for that size).
        calibrate: board, sfm, or auto (the board when any camera sees it, else sfm).
        sfm_model: COLMAP camera model for sfm.
        sfm_scale: A:B:metres — the measured distance between cameras A and B, for metric sfm units.
        background: empty-scene videos; sfm uses their first frames when given.
        board_columns: squares along the board's long side.
        board_rows: squares along the board's short side.
        board_square: side of a printed square in metres.
        board_marker: side of a printed marker in metres (default 0.75 × square).
        board_dictionary: ArUco dictionary of the board.
        distortion: fit lens distortion: auto, on, off.
    """
    from fourd.ingest.pipeline import IngestOptions, ingest

    opt = IngestOptions(scale=scale, sync=sync, offsets=offsets, calib_frames=calib_frames, masks="none",
                        calibrate=calibrate, sfm_model=sfm_model, sfm_scale=sfm_scale, background=background,
                        board=_board(board_columns, board_rows, board_square, board_marker, board_dictionary),
                        distortion=distortion)
    rep = ingest(videos, out, opt, images=False)
    print(json.dumps(rep["calibration"]))


def data_masks(capture: Pos[Path], background: Path | None = None, model: Path | None = None,
               key: str | None = None, scale: float = 1.0, flag_ratio: float = 0.8) -> None:
    """Cut masks for an EasyVolcap capture (background plate, a plain backdrop's colour, or a local
    segmenter); write masks/.

    Args:
        capture: capture folder with images/<camera>/ and intri.yml/extri.yml.
        background: folder with a short video of the empty scene per camera (same names).
        model: instead of a plate: folder with an ONNX segmenter (model.onnx + segmenter.json).
        key: instead of a plate: the subject stands before a plain backdrop of one colour — auto (the
            images' borders tell: a green or blue screen, a renderer's black or white film), black,
            white or R,G,B.
        scale: resize the plate videos by this factor (to match images written with --scale).
        flag_ratio: flag masks whose IoU with the carved hull is below this fraction of the frame's median.
    """
    from fourd.datasets.easyvolcap import read_easyvolcap_cameras
    from fourd.errors import FourdError
    from fourd.ingest.pipeline import key_masks, model_masks, plate_masks

    if sum(x is not None for x in (background, model, key)) != 1:
        raise FourdError("give exactly one of --background, --key and --model", None,
                         "--background DIR (empty-scene videos), --key auto (a plain backdrop: green screen, "
                         "a render's black) or --model DIR (ONNX segmenter)")
    cams = read_easyvolcap_cameras(Path(capture))
    rep = (plate_masks(capture, background, cams, scale, flag_ratio) if background is not None
           else key_masks(Path(capture), key, cams, flag_ratio) if key is not None
           else model_masks(capture, model, cams, flag_ratio))
    print(json.dumps({"coverage": rep["coverage"], "flagged": rep["flagged"]}))


def data_board(out: Pos[Path], columns: int = 7, rows: int = 5, square: float = 0.1, marker: float | None = None,
               dictionary: str = "DICT_5X5_100", pixels_per_square: int = 200) -> None:
    """Write a ChArUco board image to print (then measure the printed square and pass --board-square).

    Args:
        out: PNG to write.
        columns: squares along the long side.
        rows: squares along the short side.
        square: the intended printed square side in metres (written into the file name hint only).
        marker: marker side in metres (default 0.75 × square).
        dictionary: ArUco dictionary.
        pixels_per_square: resolution of the image.
    """
    from fourd.io import check_output, write_png

    check_output(out, "file")
    spec = _board(columns, rows, square, marker, dictionary)
    img = spec.image(pixels_per_square, margin=pixels_per_square // 2)
    write_png(out, img)
    log(f"board {columns}×{rows} {dictionary} → {out}; ingest with --board-columns {columns} --board-rows {rows} "
        f"--board-square <measured side in m> --board-marker <measured marker side>")
    print(out)
