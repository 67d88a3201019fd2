"""`fourd render` (camera-path videos) and `fourd path orbit|spiral|show` (camera paths for
`fourd render --path` and the viewer)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import tyro

from fourd.console import log

Pos = tyro.conf.Positional


def render(scene: Pos[Path], out: Path = Path("render.mp4"), path: Path | None = None, orbit: bool = False,
           spiral: bool = False, frames: int = 120, fps: float = 30.0, size: str | None = None, K: int | None = None,
           background: tuple[float, float, float] | None = None, workers: int = 0, ray_address: str | None = None,
           chunk: int = 16, dataset: Path | None = None) -> None:
    """Render a camera path of a baked scene to an H.264 MP4 (or PNG frames when OUT has no video suffix).

    Args:
        scene: .fourd file from fourd bake, a folder of PLY frames, or a training run folder (rendered
            unbaked through the model, to compare with its baked scene).
        out: video.mp4, or a folder for PNG frames.
        path: camera path JSON (the viewer's path editor writes it; `fourd path orbit` makes them).
        orbit: render a closed orbit around the scene instead of --path.
        spiral: render a rising spiral around the scene instead of --path.
        frames: number of frames of a generated path (a --path file sets its own from its fps).
        fps: frame rate of the video (and of generated paths).
        size: WxH output size (default: the path's camera size).
        K: points composited per pixel (default: what the model was trained with — the run's
            config, or recorded in the .fourd by fourd bake; 12 for other scenes).
        background: colour r g b in [0, 1] (default: the scene's).
        workers: render as chunks on this many local Ray workers (0: serially in this process).
        ray_address: an existing Ray cluster to render on.
        chunk: frames per Ray task.
        dataset: (a training run folder) its capture, when it has moved since training.
    """
    from fourd.offline.video import render_request

    result, n, fps_out, wh = render_request(scene, out, path, orbit, spiral, frames, fps, size, K, background,
                                            workers, ray_address, chunk, dataset)
    print(json.dumps({"out": str(result), "frames": n}))


def path_make(kind: Literal["orbit", "spiral"], scene: Pos[Path], out: Path = Path("path.json"),
              frames: int = 120, fps: float = 30.0, size: str | None = None) -> None:
    from fourd.config import parse_size
    from fourd.offline.paths import check_path_timing, default_orbit

    check_path_timing(frames, fps)
    p = default_orbit(scene, frames, kind == "spiral", fps, parse_size(size) if size else None)
    p.save(out)
    log(f"{kind}: {len(p.keyframes)} keyframes, {p.duration:.1f} s → {out}")


def path_orbit(scene: Pos[Path], out: Path = Path("path.json"), frames: int = 120, fps: float = 30.0,
               size: str | None = None) -> None:
    """Write a closed orbit around a scene as a camera path (for fourd render --path, the viewer).

    Args:
        scene: a .fourd file, PLY folder, points file or training run.
        out: camera path JSON to write.
        frames: frames of the path at --fps.
        fps: frame rate.
        size: WxH of the path's cameras (default: the capture cameras').
    """
    path_make("orbit", scene, out, frames, fps, size)


def path_spiral(scene: Pos[Path], out: Path = Path("path.json"), frames: int = 120, fps: float = 30.0,
                size: str | None = None) -> None:
    """Write a rising spiral around a scene as a camera path (options as for `fourd path orbit`)."""
    path_make("spiral", scene, out, frames, fps, size)


def path_show(path: Pos[Path], scene: Path | None = None, plot: Path | None = None) -> None:
    """Summarize a camera path as JSON and optionally draw it from above over the capture cameras.

    Args:
        path: camera path JSON.
        scene: the scene whose capture cameras are drawn with it.
        plot: PNG of the top view.
    """
    from fourd.offline.paths import CameraPath

    cp = CameraPath.load(path)
    print(json.dumps(cp.summary()))
    if plot:
        from fourd.offline.plot import plot_path
        from fourd.viewer.scene import open_scene

        log(f"plot → {plot_path(cp, plot, open_scene(scene).cameras if scene is not None else None)}")
