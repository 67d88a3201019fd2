"""Held-out evaluation of a loaded run: render every (eval camera, frame), compare with the
ground truth composited over the background, write images, a picture grid and metrics.
Takes a :class:`~fourd.train.run.Run` (the trainer passes its own), never a trainer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fourd.io import write_json, write_png
from fourd.train.losses import lpips_distance, psnr, ssim


def pick_frames(all_frames: list[int], frames) -> list[int]:
    if frames is None:
        return list(all_frames)
    if isinstance(frames, int):
        idx = np.linspace(0, len(all_frames) - 1, min(frames, len(all_frames))).round().astype(int)
        return [all_frames[i] for i in sorted(set(idx))]
    return list(frames)


@torch.no_grad()
def evaluate(run, out_dir: Path, frames=None, baseline: bool = False, write_images: bool = True) -> dict:
    """Metrics of ``run`` (a :class:`~fourd.train.run.Run`) on its held-out cameras."""
    out_dir = Path(out_dir)
    rows, grid = [], []
    for f in pick_frames(run.video.frames, frames):
        for cam in run.eval_cams:
            tgt = run.sampler.target(f, cam, crop=False, scale=1.0)
            img = run.render(f, tgt.camera, None, baseline=baseline).image.rgb.clamp(0, 1)
            lp = lpips_distance(img, tgt.image)
            rows.append({"frame": f, "camera": cam, "psnr": psnr(img, tgt.image), "ssim": ssim(img, tgt.image),
                         "lpips": None if lp is None else float(lp)})
            if write_images:
                write_png(out_dir / cam / f"{f:06d}.png", img)
            if len(grid) < 4:
                err = (img - tgt.image).abs().mean(-1, keepdim=True).expand_as(img) * 4
                grid.append(torch.cat([tgt.image, img, err.clamp(0, 1)], 1))
    summary = {k: (float(np.mean([r[k] for r in rows])) if rows and rows[0][k] is not None else None)
               for k in ("psnr", "ssim", "lpips")}
    result = {**summary, "summary": summary, "per_frame": rows, "cameras": run.eval_cams,
              "step": run.step, "baseline": baseline}
    if grid:
        w = max(g.shape[1] for g in grid)  # rows stacked: cameras of different sizes padded to the widest
        write_png(out_dir / "grid.png",
                  torch.cat([torch.nn.functional.pad(g, (0, 0, 0, w - g.shape[1])) for g in grid]))
    write_json(out_dir / "metrics.json", result)
    return result
