"""Held-out evaluation of a loaded run: render every (eval camera, frame), compare with the
ground truth composited over the background, write images, a picture grid and metrics.
Takes a :class:`~fourd.train.run.Run` (the trainer passes its own), never a trainer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fourd.io import write_json, write_png
from fourd.train.losses import lpips_distance, psnr, ssim, ssim_map

BAND = 2  # half width in pixels of the silhouette band of the error split


def regions(mask: torch.Tensor, band: int = BAND) -> dict[str, torch.Tensor]:
    """Boolean [H, W] maps of a mask's silhouette band (±``band`` px around its edge), interior and
    outside."""
    import torch.nn.functional as F

    m = (mask > 0.5).float()[None, None]
    k = 2 * band + 1
    grown = F.max_pool2d(m, k, 1, band)[0, 0] > 0
    shrunk = -F.max_pool2d(-m, k, 1, band)[0, 0] > 0
    return {"edge": grown & ~shrunk, "interior": shrunk, "outside": ~grown}


def padded_ssim_map(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """The SSIM map at the image's size: the 5-px border the 11-px window does not fit counts as 1."""
    import torch.nn.functional as F

    return F.pad(ssim_map(pred, gt)[None], (5, 5, 5, 5), value=1.0)[0]


def error_split(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, band: int = BAND) -> dict:
    """Where the error of a render lives: PSNR and SSIM over the silhouette band (±``band`` px
    around the mask's edge), the interior and the outside, and each region's share of the squared
    error and of 1 − SSIM. SSIM is the image's SSIM map averaged per region (the 5-px border, where
    the 11-px window does not fit, counts as SSIM 1, as in the whole-image figure it leaves out)."""
    se = ((pred.clamp(0, 1) - gt) ** 2).mean(-1)
    dssim = 1 - padded_ssim_map(pred, gt)
    out = {}
    for name, r in regions(mask, band).items():
        n = int(r.sum())
        mse = float(se[r].mean()) if n else 0.0
        out[f"psnr_{name}"] = 10 * float(np.log10(1 / max(mse, 1e-12))) if n else None
        out[f"ssim_{name}"] = float(1 - dssim[r].mean()) if n else None
        out[f"mse_share_{name}"] = float(se[r].sum() / se.sum().clamp_min(1e-12))
        out[f"dssim_share_{name}"] = float(dssim[r].sum() / dssim.sum().clamp_min(1e-12))
    return out


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
        for cam in run.video.cameras_at(f, run.eval_cams):  # (a camera that dropped the frame: not scored)
            tgt = run.sampler.target(f, cam, crop=False, scale=1.0)
            img = run.render(f, tgt.camera, None, baseline=baseline).image.rgb.clamp(0, 1)
            lp = lpips_distance(img, tgt.image)
            rows.append({"frame": f, "camera": cam, "psnr": psnr(img, tgt.image), "ssim": ssim(img, tgt.image),
                         "lpips": None if lp is None else float(lp),
                         **(error_split(img, tgt.image, tgt.mask) if tgt.mask is not None else {})})
            if write_images:
                write_png(out_dir / cam / f"{f:06d}.png", img)
            if len(grid) < 4:
                err = (img - tgt.image).abs().mean(-1, keepdim=True).expand_as(img) * 4
                grid.append(torch.cat([tgt.image, img, err.clamp(0, 1)], 1))
    summary = {k: (float(np.mean([r[k] for r in rows])) if rows and rows[0][k] is not None else None)
               for k in ("psnr", "ssim", "lpips")}
    if rows and "psnr_edge" in rows[0]:  # regions: PSNR of the pooled error, SSIM and shares averaged
        split = {}
        for name in ("edge", "interior", "outside"):
            ps = [r[f"psnr_{name}"] for r in rows if r[f"psnr_{name}"] is not None]
            mse = np.mean([10 ** (-p / 10) for p in ps]) if ps else None
            split[name] = {"psnr": None if mse is None else float(10 * np.log10(1 / max(mse, 1e-12))),
                           "ssim": float(np.mean([r[f"ssim_{name}"] for r in rows if r[f"ssim_{name}"] is not None])) if ps else None,
                           "mse_share": float(np.mean([r[f"mse_share_{name}"] for r in rows])),
                           "dssim_share": float(np.mean([r[f"dssim_share_{name}"] for r in rows]))}
        summary["regions"] = split
    result = {**summary, "summary": summary, "per_frame": rows, "cameras": run.eval_cams,
              "step": run.step, "baseline": baseline}
    if grid:
        w = max(g.shape[1] for g in grid)  # rows stacked: cameras of different sizes padded to the widest
        write_png(out_dir / "grid.png",
                  torch.cat([torch.nn.functional.pad(g, (0, 0, 0, w - g.shape[1])) for g in grid]))
    write_json(out_dir / "metrics.json", result)
    return result
