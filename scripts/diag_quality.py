"""Where a trained run's held-out error lives: silhouette band, interior, outside; and what the
parts of the model contribute there (blend colour alone, SH residual, alpha, splats per pixel,
splat radius in pixels). Optional what-ifs re-render the same model with changed evaluation
settings (e.g. --what-if source_size=512) without retraining.

    python scripts/diag_quality.py RUN [RUN ...] --frames 3 --out /tmp/diag [--what-if source_size=384]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from fourd.train.evaluate import padded_ssim_map as ssim_map
from fourd.train.evaluate import regions


@torch.no_grad()
def diagnose(run, frames, band: int, out: Path | None) -> dict:
    from fourd.io import write_png
    from fourd.train.evaluate import pick_frames

    acc: dict[str, list] = {}
    for f in pick_frames(run.video.frames, frames):
        for cam in run.eval_cams:
            tgt = run.sampler.target(f, cam, crop=False, scale=1.0)
            r = run.render(f, tgt.camera, None)
            img = r.image.rgb.clamp(0, 1)
            gt = tgt.image
            reg = regions(tgt.mask, band)
            se = ((img - gt) ** 2).mean(-1)
            sm = ssim_map(img, gt)
            n = se.numel()
            row = {"psnr": float(-10 * torch.log10(se.mean())), "ssim_full": float(sm.mean())}
            for name, m in reg.items():
                row[f"mse_share_{name}"] = float(se[m].sum() / se.sum())
                row[f"psnr_{name}"] = float(-10 * torch.log10(se[m].mean()))
                row[f"dssim_share_{name}"] = float((1 - sm[m]).sum() / (1 - sm).sum())
                row[f"ssim_{name}"] = float(sm[m].mean())
                row[f"frac_{name}"] = float(m.sum() / n)
            w = r.image.weights
            row["splats_per_px_interior"] = float((w > 0.01).sum(-1).float()[reg["interior"]].mean())
            row["alpha_interior_min_mean"] = float(r.image.alpha[reg["interior"]].mean())
            row["alpha_holes_interior"] = float((r.image.alpha[reg["interior"]] < 0.95).float().mean())
            # radius in pixels of the visible points
            xyz = run.model.frame_points(run.model.slot(f))[r.visible]
            _, z = tgt.camera.project(xyz)
            rad_px = tgt.camera.K[0, 1, 1] * r.radius[r.visible] / z[0]
            row["radius_px_median"] = float(rad_px.median())
            row["density_median"] = float(r.density[r.visible].median())
            row["density_lt_0.5"] = float((r.density[r.visible] < 0.5).float().mean())
            # the same colours made opaque inside the mask (how much the see-through pixels cost)
            a = r.image.alpha.clamp_min(1e-3)[..., None]
            opaque = torch.where(reg["interior"][..., None], (r.image.rgb - (1 - a) * run.background) / a, img).clamp(0, 1)
            row["psnr_opaque_interior"] = float(-10 * torch.log10(((opaque - gt) ** 2).mean()))
            row["ssim_opaque_interior"] = float(ssim_map(opaque, gt).mean())
            # blend alone (no SH residual)
            mode = run.model.appearance.mode
            run.model.appearance.mode = "blend"
            blend = run.render(f, tgt.camera, None).image.rgb.clamp(0, 1)
            run.model.appearance.mode = mode
            row["psnr_blend_only"] = float(-10 * torch.log10(((blend - gt) ** 2).mean()))
            row["ssim_blend_only"] = float(ssim_map(blend, gt).mean())
            for k, v in row.items():
                acc.setdefault(k, []).append(v)
            if out is not None and len(acc["psnr"]) <= 2:
                ys, xs = reg["interior"].nonzero(as_tuple=True)
                cy, cx = int(ys.float().median()), int(xs.float().median())
                crop = lambda t: t[max(cy - 32, 0):cy + 32, max(cx - 32, 0):cx + 32]  # noqa: E731
                up = lambda t: t.repeat_interleave(4, 0).repeat_interleave(4, 1)  # noqa: E731
                err = ((img - gt).abs() * 4).clamp(0, 1)
                sh = ((img - blend) * 4 + 0.5).clamp(0, 1)
                write_png(out / f"{cam}_{f:06d}_zoom.png",
                          torch.cat([up(crop(gt)), up(crop(img)), up(crop(blend)), up(crop(sh)), up(crop(err))], 1))
    return {k: float(np.mean(v)) for k, v in acc.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--band", type=int, default=2, help="half width of the silhouette band in pixels")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--what-if", action="append", default=[], help="key=value TrainConfig change at evaluation")
    a = ap.parse_args()
    from fourd.train.run import load_run

    torch.set_num_threads(max(1, torch.get_num_threads()))
    res = {}
    for path in a.runs:
        run = load_run(path)
        for wi in [None, *a.what_if]:
            if wi:
                from fourd.config import apply_overrides

                k, v = wi.split("=")
                keys = k.split(".")
                cur = run.cfg
                for key in keys:
                    cur = getattr(cur, key)
                over: dict = {keys[-1]: type(cur)(v) if not isinstance(cur, bool) else v.lower() in ("1", "true")}
                for key in reversed(keys[:-1]):
                    over = {key: over}
                run.cfg = apply_overrides(run.cfg, over, "--what-if")
                run.sampler.cfg = run.cfg
            name = f"{Path(path).parent.name}/{Path(path).name}" + (f" [{wi}]" if wi else "")
            res[name] = diagnose(run, a.frames, a.band, None if a.out is None else a.out / name.replace("/", "_"))
            print(name, json.dumps({k: round(v, 4) for k, v in res[name].items()}, indent=None))
        run.release()
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "diag.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
