"""Render camera paths to video (H.264 MP4 through imageio-ffmpeg) or PNG frames, headless with
the viewer's GL renderer; frames can be split into chunks rendered as Ray tasks (retried when a
worker dies) and stitched back in order — the result is identical to a serial render.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fourd.console import log, progress
from fourd.errors import FourdError
from fourd.offline.paths import CameraPath


@dataclass
class RenderJob:
    scene: str  # .fourd file (or anything fourd view opens)
    path_json: dict  # CameraPath.to_json()
    n_frames: int
    width: int | None = None
    height: int | None = None
    K: int = 8
    background: tuple[float, float, float] | None = None


def render_chunk(job: RenderJob, indices: list[int], on_frame=None) -> list[np.ndarray]:
    """Render output frames ``indices`` of a job: [H, W, 3] uint8 images, in order."""
    from fourd.gl.baked_renderer import BakedRenderer
    from fourd.viewer.scene import open_scene

    if (Path(job.scene) / "config.json").is_file():
        return render_run_chunk(job, indices, on_frame)
    scene = open_scene(job.scene)
    path = CameraPath.from_json(job.path_json)
    times = path.sample(job.n_frames)
    cam0 = path.camera_at(times[0])
    W, H = job.width or int(cam0.W[0]), job.height or int(cam0.H[0])
    r = BakedRenderer(W, H)
    bg = job.background if job.background is not None else scene.background
    loaded, out = None, []
    for i in indices:
        cam = path.camera_at(times[i])
        if (int(cam.W[0]), int(cam.H[0])) != (W, H):
            cam = cam.resize(H, W)
        f = path.scene_frame(times[i], len(scene))
        if f != loaded:
            r.upload(scene.frame(f))
            loaded = f
        r.render(cam, job.K, bg, near=scene.near, far=scene.far)
        out.append(r.read())
        if on_frame:
            on_frame()
    r.release()
    return out


def render_run_chunk(job: RenderJob, indices: list[int], on_frame=None) -> list[np.ndarray]:
    """The same path through a trained run, unbaked (the model's torch renderer), for comparison."""
    import torch

    from fourd.config import TrainConfig, from_json
    from fourd.train.trainer import Trainer

    run = Path(job.scene)
    tr = Trainer(from_json(TrainConfig, (run / "config.json").read_text(), str(run / "config.json")))
    if not tr.resume():
        raise FourdError("the run has no checkpoint yet", run / "checkpoints", "train it first")
    path = CameraPath.from_json(job.path_json)
    times = path.sample(job.n_frames)
    out = []
    for i in indices:
        cam = path.camera_at(times[i])
        if job.width and job.height:
            cam = cam.resize(job.height, job.width)
        frame = tr.video.frames[path.scene_frame(times[i], len(tr.video.frames))]
        with torch.no_grad():
            img = tr.render(frame, cam, None).image.rgb.clamp(0, 1)
        out.append((img.numpy() * 255 + 0.5).astype(np.uint8))
        if on_frame:
            on_frame()
    return out


def _check_output(out: Path) -> None:
    """Before any rendering: the output's nearest existing ancestor must be a writable folder."""
    import os

    parent = out.parent if out.suffix else out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise FourdError(f"cannot write the output: {parent} is a file, not a folder", out, "choose another --out")
    if not os.access(parent, os.W_OK):
        raise FourdError("cannot write the output here (permission denied)", out, "choose a writable --out")


def write_video(frames: list[np.ndarray], out: Path, fps: float) -> Path:
    import imageio.v2 as imageio

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    with imageio.get_writer(tmp, fps=fps, codec="libx264", quality=8, pixelformat="yuv420p",
                            macro_block_size=2, ffmpeg_log_level="error") as w:
        for f in frames:
            w.append_data(f)
    tmp.replace(out)
    return out


def write_pngs(frames: list[np.ndarray], out: Path) -> Path:
    import cv2

    from fourd.io import atomic_write_bytes

    out.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        atomic_write_bytes(out / f"{i:06d}.png", cv2.imencode(".png", f[..., ::-1])[1].tobytes())
    return out


def render_job(job: RenderJob, out: Path, fps: float, workers: int = 0, ray_address: str | None = None,
               chunk: int = 16) -> tuple[Path, list[np.ndarray]]:
    """Render a job serially (workers=0) or as Ray tasks; write MP4 (out.mp4) or PNGs (a folder)."""
    _check_output(out)
    idx = list(range(job.n_frames))
    if workers or ray_address:
        frames = render_ray(job, idx, workers, ray_address, chunk)
    else:
        with progress("rendering", job.n_frames) as advance:
            frames = render_chunk(job, idx, advance)
    if out.suffix.lower() in (".mp4", ".mov", ".mkv"):
        write_video(frames, out, fps)
    else:
        write_pngs(frames, out)
    return out, frames


def render_ray(job: RenderJob, indices: list[int], workers: int, address: str | None, chunk: int,
               max_retries: int = 3) -> list[np.ndarray]:
    try:
        import ray
    except ImportError:
        raise FourdError("distributed rendering needs Ray", fix="pip install 'fourd[dist]' (or ray)") from None
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=max(workers, 1), include_dashboard=False, log_to_driver=False)
        started = True
    try:
        task = ray.remote(max_retries=max_retries, num_cpus=1)(_ray_chunk)
        chunks = [indices[i:i + chunk] for i in range(0, len(indices), chunk)]
        refs = [task.remote(job, c) for c in chunks]
        frames: list[np.ndarray] = []
        with progress(f"rendering on {workers or 'cluster'} Ray workers", len(chunks)) as advance:
            for ref in refs:  # in order: the video is stitched as the chunks were cut
                frames.extend(ray.get(ref))
                advance()
        return frames
    finally:
        if started:
            ray.shutdown()


def _ray_chunk(job: RenderJob, indices: list[int]) -> list[np.ndarray]:
    import os

    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")  # a Ray worker is a fresh, headless process
    fail = os.environ.get("FOURD_TEST_FAIL_CHUNK_ONCE")  # tests: kill the worker on its first try
    if fail and int(fail) == indices[0]:
        marker = Path(os.environ["FOURD_TEST_FAIL_MARKER"])
        if not marker.exists():
            marker.write_text("killed")
            os._exit(1)
    return render_chunk(job, indices)


def checksum(frames: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for f in frames:
        h.update(np.ascontiguousarray(f).tobytes())
    return h.hexdigest()


def log_render(out: Path, n: int, fps: float, size: tuple[int, int]) -> None:
    log(f"rendered {n} frames at {size[0]}×{size[1]}, {fps:g} fps → {out}")
