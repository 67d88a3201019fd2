"""The main job end to end on the built-in demo capture: synthesize → summary and contact sheet →
carve (with a picture) → train with the demo preset → evaluate → bake → a viewer screenshot and
an orbit video. ``fourd demo`` calls :func:`run_demo`."""

from __future__ import annotations

import json
from pathlib import Path

from fourd.console import log


def run_demo(out: Path = Path("outputs/demo"), data_root: Path | None = None, steps: int | None = None,
             appearance: str = "compact") -> dict:
    from fourd.bake.bake import bake_run
    from fourd.carve.picture import carve_picture
    from fourd.config import apply_overrides, preset
    from fourd.datasets import open_dataset
    from fourd.datasets.preview import contact_sheet, log_info
    from fourd.offline.paths import default_orbit
    from fourd.offline.video import RenderJob, log_render, render_job
    from fourd.structures.points import PointSequence
    from fourd.train.trainer import Trainer
    from fourd.viewer.headless import resolve_camera, screenshot
    from fourd.viewer.scene import open_scene

    out.mkdir(parents=True, exist_ok=True)
    video = open_dataset("demo", data_root)
    log_info(video.info())
    log(f"contact sheet → {contact_sheet(video, out / 'demo_sheet.png')}")
    over = {"out": str(out / "run"), "data_root": None if data_root is None else str(data_root)}
    if steps is not None:
        over["steps"] = steps
    trainer = Trainer(apply_overrides(preset("demo"), over))  # carves into RUN/carve first when needed
    carve_dir = out / "run" / "carve"
    report = json.loads((carve_dir / "carve.json").read_text())
    seq = PointSequence.load(carve_dir / "points.safetensors")
    log(f"carved {len(seq)} frames × {seq.counts[0]} points: silhouette IoU {report['iou_mean']:.3f}")
    log(f"carved points of one frame from a held-out camera → {carve_picture(video, seq, report, out / 'carve_frame.png')}")
    result = trainer.fit(resume=True)
    ev = result["eval"]["summary"]
    log(f"held-out PSNR {ev['psnr']:.2f} dB, SSIM {ev['ssim']:.3f} (images in {out / 'run' / 'eval' / 'final'})")
    scene_path = bake_run(trainer.run, out / "demo.fourd", appearance=appearance)
    trainer.run.release()
    scene = open_scene(scene_path)
    shot = screenshot(scene, resolve_camera(scene, None, None, scene_path), len(scene) // 2, out / "viewer_frame.png")
    video_path = out / "orbit.mp4"
    path = default_orbit(scene_path, 90, False, 30.0)
    job = RenderJob(str(scene_path), path.to_json(), 90)
    _, imgs = render_job(job, video_path, 30.0)
    log_render(video_path, len(imgs), 30.0, (imgs[0].shape[1], imgs[0].shape[0]))
    log(f"[bold green]demo done[/]: baked scene {scene_path}, viewer screenshot {shot}, orbit video {video_path}; "
        f"play it with `fourd view {scene_path}`")
    return {"held_out_psnr": ev["psnr"], "held_out_ssim": ev["ssim"], "run": str(out / "run"),
            "scene": str(scene_path), "screenshot": str(shot), "video": str(video_path)}
