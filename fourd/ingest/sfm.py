"""Rig calibration without a board: structure from motion on one synchronized instant.

One image per camera (the empty-scene plate, or the first synchronized capture frame — at one
instant a moving subject is as static as the walls) goes through COLMAP (pycolmap): SIFT features,
exhaustive matching, incremental mapping with one camera per video, and global mapping (GLOMAP)
when the incremental one leaves cameras out (a ring of inward-looking cameras often splits it). The camera model is RADIAL
(f, cx, cy, k1, k2) by default: with one image per camera, the eight parameters of OPENCV are not
constrained and the reconstruction drifts (measured on the test rig: 0.16° vs 42° rotation error);
``--sfm-model OPENCV`` is there for rigs filmed with several poses per camera.

COLMAP runs in a child process: its fatal checks abort the process, and its bundled zlib/libpng
clash with OpenCV's when both are loaded (a PNG write crashed with "double free").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from fourd.console import log
from fourd.errors import DataError
from fourd.ingest.calibrate import Calibration

MODELS = ("SIMPLE_RADIAL", "RADIAL", "OPENCV", "PINHOLE", "SIMPLE_PINHOLE")


def have_pycolmap() -> bool:
    import importlib.util

    return importlib.util.find_spec("pycolmap") is not None


def sfm_calibrate(images: dict[str, np.ndarray], work: Path, model: str = "RADIAL",
                  scale: tuple[str, str, float] | None = None, timeout: float = 3600) -> Calibration:
    """Calibrate cameras from one image each (``{name: RGB uint8}``); ``scale`` = (camera a,
    camera b, their distance in metres) fixes the units (otherwise they are COLMAP's, arbitrary)."""
    import cv2

    if model not in MODELS:
        raise DataError(f"unknown SfM camera model '{model}'", "--sfm-model", f"use one of {', '.join(MODELS)}")
    if not have_pycolmap():
        raise DataError("structure from motion needs pycolmap, which is not installed", None,
                        "pip install 'fourd[rig]' (or pip install pycolmap), or film a ChArUco board")
    work = Path(work)
    img_dir = work / "images"
    for n, img in images.items():
        (img_dir / n).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(img_dir / n / "0.png"), img[..., ::-1])
    db = work / "database.db"
    if db.exists():
        db.unlink()
    cmd = [sys.executable, "-m", "fourd.ingest.sfm_worker", str(work), model]
    log(f"structure from motion on {len(images)} cameras (COLMAP, {model})")
    try:
        p = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DataError(f"structure from motion took over {timeout:.0f} s", work,
                        "use smaller images (--scale 0.5) or film a ChArUco board") from None
    res_path = work / "sfm.json"
    if p.returncode != 0 or not res_path.is_file():
        tail = (p.stderr or "").strip().splitlines()[-3:]
        raise DataError(f"COLMAP failed ({' / '.join(tail) or f'exit {p.returncode}'})", work,
                        "check the images in this folder have texture and overlap, or film a ChArUco board")
    res = json.loads(res_path.read_text())
    names = list(images)
    got = res["cameras"]
    missing = [n for n in names if n not in got]
    if missing:
        raise DataError(f"structure from motion registered {len(got)} of {len(names)} cameras "
                        f"(not: {', '.join(missing[:6])}{'…' if len(missing) > 6 else ''})", work,
                        "give neighbouring cameras more overlap and the scene more texture (posters, a rug), "
                        "or film a ChArUco board (--board-*)")
    C = len(names)
    K, D, R, T = np.zeros((C, 3, 3)), np.zeros((C, 5)), np.zeros((C, 3, 3)), np.zeros((C, 3))
    sizes = []
    for i, n in enumerate(names):
        c = got[n]
        f = c["params"]
        m = c["model"]
        if m in ("SIMPLE_RADIAL", "SIMPLE_PINHOLE"):
            fx = fy = f[0]
            cx, cy = f[1], f[2]
            dist = [f[3]] if m == "SIMPLE_RADIAL" else []
        elif m == "RADIAL":
            fx = fy = f[0]
            cx, cy = f[1], f[2]
            dist = [f[3], f[4]]
        else:  # PINHOLE, OPENCV
            fx, fy, cx, cy = f[:4]
            dist = f[4:8] if m == "OPENCV" else []
        # COLMAP puts the centre of the first pixel at (0.5, 0.5), OpenCV at (0, 0)
        K[i] = [[fx, 0, cx - 0.5], [0, fy, cy - 0.5], [0, 0, 1]]
        D[i, :len(dist)] = dist
        R[i], T[i] = np.asarray(c["R"]), np.asarray(c["t"])
        sizes.append((int(c["height"]), int(c["width"])))
    if scale is not None:
        a, b, metres = scale
        for x in (a, b):
            if x not in names:
                raise DataError(f"no camera named '{x}'", "--sfm-scale", "give A:B:metres with two camera names")
        Cc = -np.einsum("cji,cj->ci", R, T)
        d = float(np.linalg.norm(Cc[names.index(a)] - Cc[names.index(b)]))
        if d <= 0:
            raise DataError("the two cameras coincide in the reconstruction", "--sfm-scale", "pick two other cameras")
        T *= metres / d
    else:
        log("[yellow]SfM: no --sfm-scale given; the scene's units are arbitrary (COLMAP's)[/]")
    cal = Calibration(names, K, D, R, T, sizes)
    # a camera the mapper registered but none of whose observations survived triangulation has a
    # pose no point supports (seen with the global mapper on a sparse ring): kept, said, rms unknown
    bare = [n for n in names if got[n]["reproj_px"] is None]
    if bare:
        log(f"[yellow]SfM: camera(s) {bare} were registered without any triangulated point; their poses are "
            f"unsupported — check them in the report picture, or calibrate with a board[/]")
    cal.rms_px = {n: float("nan") if got[n]["reproj_px"] is None else float(got[n]["reproj_px"]) for n in names}
    cal.views = {n: int(got[n]["observations"]) for n in names}
    log(f"SfM ({res.get('mapper')} mapping): {C} cameras registered, {res['points']} points, mean reprojection error "
        f"{res['mean_reproj_px']:.3f} px")
    return cal
