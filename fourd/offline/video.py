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
from fourd.io import check_output
from fourd.offline.paths import CameraPath


@dataclass
class RenderJob:
    scene: str  # .fourd file (or anything fourd view opens)
    path_json: dict  # CameraPath.to_json()
    n_frames: int
    width: int | None = None
    height: int | None = None
    K: int = 12
    background: tuple[float, float, float] | None = None
    dataset: str | None = None  # a run's capture, when it has moved since training


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
    """The same path through a trained run, unbaked (the model's torch renderer), for comparison.
    The run is loaded without side effects."""
    import torch

    from fourd.train.run import load_run

    run = load_run(job.scene, dataset=job.dataset)
    path = CameraPath.from_json(job.path_json)
    times = path.sample(job.n_frames)
    out = []
    for i in indices:
        cam = path.camera_at(times[i])
        if job.width and job.height:
            cam = cam.resize(job.height, job.width)
        frame = run.video.frames[path.scene_frame(times[i], len(run.video.frames))]
        with torch.no_grad():
            img = run.render(frame, cam.to(run.device)).image.rgb.clamp(0, 1)
        out.append((img.cpu().numpy() * 255 + 0.5).astype(np.uint8))
        if on_frame:
            on_frame()
    run.release()
    return out


def write_video(frames: list[np.ndarray], out: Path, fps: float) -> Path:
    import imageio.v2 as imageio

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    try:
        with imageio.get_writer(tmp, fps=fps, codec="libx264", quality=8, pixelformat="yuv420p",
                                macro_block_size=2, ffmpeg_log_level="error") as w:
            for f in frames:
                w.append_data(f)
    except (ImportError, RuntimeError) as e:  # no ffmpeg (imageio-ffmpeg missing or broken)
        tmp.unlink(missing_ok=True)
        raise FourdError(f"cannot write video: ffmpeg is not available ({type(e).__name__})", out,
                         "pip install imageio-ffmpeg (fourd doctor checks it), or write PNG frames: --out FOLDER") from None
    tmp.replace(out)
    return out


def write_pngs(frames: list[np.ndarray], out: Path) -> Path:
    from fourd.io import write_png

    out.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        write_png(out / f"{i:06d}.png", f)
    return out


def render_job(job: RenderJob, out: Path, fps: float, workers: int = 0, ray_address: str | None = None,
               chunk: int = 16) -> tuple[Path, list[np.ndarray]]:
    """Render a job serially (workers=0) or as Ray tasks; write MP4 (out.mp4) or PNGs (a folder)."""
    check_output(out, "file" if out.suffix else "folder", (job.scene,))
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
        raise FourdError("distributed rendering needs Ray", "--workers",
                         "pip install 'fourd[dist]' (fourd doctor lists the optional extras)") from None
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


def render_request(scene: Path, out: Path, path: Path | None = None, orbit: bool = False, spiral: bool = False,
                   frames: int = 120, fps: float = 30.0, size: str | None = None, K: int | None = None,
                   background: tuple[float, float, float] | None = None, workers: int = 0,
                   ray_address: str | None = None, chunk: int = 16,
                   dataset: Path | None = None) -> tuple[Path, int, float, tuple[int, int]]:
    """What ``fourd render`` asks for, checked before any rendering: a camera path file, or a
    generated orbit/spiral of ``frames`` at ``fps``; returns (output, frames, fps, (W, H)).
    ``dataset``: a run's capture, when it has moved since training (run folders only)."""
    from fourd.config import parse_size
    from fourd.offline.paths import check_path_timing, default_orbit

    if sum([path is not None, orbit, spiral]) != 1:
        raise FourdError("choose exactly one of --path FILE, --orbit, --spiral", "--path", "pass one of them")
    check_path_timing(frames, fps)
    if K is not None and not 1 <= K <= 64:
        raise FourdError(f"--K must be in 1..64, got {K}", "--K", "composite 1 to 16 points per pixel")
    if chunk < 1 or workers < 0:
        raise FourdError("--chunk must be ≥ 1 and --workers ≥ 0", "--chunk", "use e.g. --workers 2 --chunk 16")
    wh = parse_size(size) if size else None
    if (scene / "config.json").is_file():  # a run: drawn with the K it was trained with
        from fourd.train.run import read_config

        K = K or read_config(scene).K
    elif dataset is not None:
        raise FourdError("--dataset is for a training run folder (a baked scene holds what it renders)",
                         "--dataset", "drop --dataset, or render the run folder")
    else:  # a scene (not a run): a bad one is refused before rendering
        from fourd.viewer.scene import open_scene

        K = open_scene(scene).K(K)
    if path is not None:
        cp = CameraPath.load(path)
        n, fps = cp.n_frames(), cp.fps
    else:
        cp, n = default_orbit(scene, frames, spiral, fps, wh, dataset), frames
    job = RenderJob(str(scene), cp.to_json(), n, wh[0] if wh else None, wh[1] if wh else None, K, background,
                    None if dataset is None else str(dataset))
    result, imgs = render_job(job, out, fps, workers, ray_address, chunk)
    size_out = (imgs[0].shape[1], imgs[0].shape[0])
    log_render(result, len(imgs), fps, size_out)
    return result, len(imgs), fps, size_out
