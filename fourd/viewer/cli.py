"""`fourd view`: the interactive viewer, or one headless frame into a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import tyro

from fourd.console import log
from fourd.errors import FourdError

Pos = tyro.conf.Positional


def view(scene: Pos[Path], headless: bool = False, camera: str | None = None, frame: int | None = None,
         screenshot: Path | None = None, size: str | None = None, K: int | None = None,
         mode: Literal["rgb", "depth", "alpha", "radius"] = "rgb", script: Path | None = None,
         max_frames: int | None = None, screenshot_dir: Path = Path("screenshots"), state_out: Path | None = None,
         window_capture: Path | None = None, dataset: Path | None = None) -> None:
    """Play a baked scene (.fourd), a trained run, a folder of PLY frames or carved points in a
    window; or, with --headless, render one frame from one camera into a PNG through EGL.

    Args:
        scene: .fourd file (fourd bake); a run folder (fourd train: baked on first view into
            RUN/scene.fourd with fourd bake's defaults, baked again when the run has a newer
            checkpoint); a folder of <frame>.ply; or points.safetensors (fourd carve).
        headless: no window: render --frame from --camera into --screenshot.
        camera: a camera name of the capture the scene was trained on, or a camera JSON file
            ({"K", "R", "T", "H", "W"}, OpenCV convention); default the first held-out camera.
        frame: frame id to show (default the first).
        screenshot: PNG to write (headless; default screenshot.png).
        size: WxH of the window (default 1280x720) or of the image (default: the camera's own size).
        K: points composited per pixel (default: what the model was trained with, recorded by
            fourd bake; 12 for other scenes).
        mode: rgb, depth, alpha or radius.
        script: JSON list of input events to replay (automation, tests).
        max_frames: close the window after this many frames.
        screenshot_dir: where P / the Screenshot button write PNGs.
        state_out: write the viewer state at exit as JSON.
        window_capture: write the last window image, panels included, to this PNG.
        dataset: (a run) its capture, when it has moved since training.
    """
    from fourd.config import parse_size
    from fourd.io import check_output
    from fourd.viewer.scene import open_scene

    wh = parse_size(size) if size else None
    if K is not None and K < 1:
        raise FourdError(f"--K must be at least 1, got {K}", "--K", "composite 1 to 16 points per pixel")
    if (scene / "config.json").is_file():  # a run folder: view its bake
        scene = baked_run(scene, dataset)
    elif dataset is not None:
        raise FourdError("--dataset is for a run folder (a baked scene holds what it needs)", "--dataset",
                         "drop --dataset")
    sc = open_scene(scene)
    t = 0
    if frame is not None:
        if frame not in sc.frames:
            raise FourdError(f"frame {frame} is not in the scene ({sc.frames[0]}..{sc.frames[-1]})", scene,
                             "pass --frame with one of the scene's frames")
        t = sc.frames.index(frame)
    if headless:
        from fourd.viewer.headless import resolve_camera
        from fourd.viewer.headless import screenshot as shoot

        cam = resolve_camera(sc, camera, wh, scene)
        out = check_output(screenshot or Path("screenshot.png"), "file")
        out = shoot(sc, cam, t, out, K, mode)
        log(f"frame {sc.frames[t]} from camera {cam.names[0] if cam.names else 'orbit'} → {out}")
        print(out)
        return
    from fourd.viewer.app import run_viewer

    run_viewer(sc, scene, wh or (1280, 720), t, K, mode, camera, script, max_frames, screenshot_dir, state_out,
               window_capture)


def baked_run(run: Path, dataset: Path | None = None) -> Path:
    """``RUN/scene.fourd``, baked (compact, fourd bake's defaults) when missing or older than the run's
    latest checkpoint — the file is replaced whole (written beside and renamed), never half-written.
    A run folder fourd may not write to (shared, read-only) is baked into the cache folder instead."""
    import hashlib
    import os

    from fourd.bake.bake import bake_run
    from fourd.locations import cache_dir
    from fourd.train.run import latest_checkpoint, load_run

    out = run / "scene.fourd"
    if not os.access(run, os.W_OK):
        key = hashlib.sha1(str(run.resolve()).encode()).hexdigest()[:16]
        out = cache_dir() / "viewed_runs" / f"{run.name}_{key}.fourd"
        out.parent.mkdir(parents=True, exist_ok=True)
    ckpt = latest_checkpoint(run)
    if out.is_file() and (ckpt is None or out.stat().st_mtime >= ckpt.stat().st_mtime):
        log(f"{run}: viewing its bake {out} (fourd bake {run} --out … for other bake settings)")
        return out
    loaded = load_run(run, dataset=dataset)  # names the fix for a run without checkpoint or a moved capture
    log(f"{run}: baking it for the viewer into {out} (once; `fourd bake` for other settings)")
    try:
        return bake_run(loaded, out, 8, True, True, list(loaded.video.frames), "compact", 1.0)
    finally:
        loaded.release()
