"""Where a trained run's held-out error lives: silhouette band, interior, outside; and what the
parts of the model contribute there (blend colour alone, SH residual, alpha, splats per pixel,
splat radius in pixels, rendered alpha by signed distance to the outline; on synthetic captures the
carved and trained points' distance to the true surface). Optional what-ifs re-render the same model with changed evaluation
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


@torch.no_grad()
def outline_profile(run, frames, cameras=None) -> dict:
    """Mean rendered alpha (and share of the squared error) by signed distance to the ground-truth
    outline, in 1-px bins from 3 px inside to 3 px outside (``cameras``: held-out by default; a
    training camera is rendered without itself as a source)."""
    import cv2

    from fourd.train.evaluate import pick_frames

    bins = np.arange(-3, 4)  # bin b holds signed distances in [b, b + 1): < 0 inside, ≥ 0 outside
    acc = np.zeros((len(bins), 3))
    total = 0.0
    for f in pick_frames(run.video.frames, frames):
        for cam in cameras or run.eval_cams:
            tgt = run.sampler.target(f, cam, crop=False, scale=1.0)
            r = run.render(f, tgt.camera, cam if cam in run.train_cams else None)
            m = (tgt.mask.cpu().numpy() > 0.5).astype(np.uint8)
            sd = np.where(m > 0, 0.5 - cv2.distanceTransform(m, cv2.DIST_L2, 5),
                          cv2.distanceTransform(1 - m, cv2.DIST_L2, 5) - 0.5)
            a = r.image.alpha.cpu().numpy()
            se = ((r.image.rgb.clamp(0, 1) - tgt.image) ** 2).sum(-1).cpu().numpy()
            total += float(se.sum())
            for i, b in enumerate(bins):
                sel = (sd >= b) & (sd < b + 1)
                acc[i] += [sel.sum(), a[sel].sum(), se[sel].sum()]
    return {f"{'in' if b < 0 else 'out'}_{abs(b) if b < 0 else b + 1}px": {
        "alpha": float(acc[i, 1] / max(acc[i, 0], 1)), "error_share": float(acc[i, 2] / max(total, 1e-12))}
        for i, b in enumerate(bins)}


@torch.no_grad()
def surface_distance(run, frames, samples: int = 1_000_000) -> dict:
    """On a synthetic capture (``gt/`` meshes): the carved and the trained points' distance to the
    true surface in point spacings — median unsigned, and median signed (+ outside, − inside)."""
    from scipy.spatial import cKDTree

    from fourd.carve.surface import sample_surface
    from fourd.datasets.synth import load_ground_truth
    from fourd.train.evaluate import pick_frames

    if not (Path(run.video.path) / "gt").is_dir():
        return {}
    model, out = run.model, {"carved": [], "trained": []}
    for f in pick_frames(run.video.frames, frames):
        verts, faces = load_ground_truth(run.video.path, f)
        pts, nrm = sample_surface(verts, faces, samples, np.random.default_rng(0))
        if ((pts - pts.mean(0)) * nrm).sum() < 0:  # meshes wound either way: normals made to point outward
            nrm = -nrm
        tree = cKDTree(pts)
        s = model.slot(f)
        for name, p in (("carved", model.carved[model.offsets[s]:model.offsets[s + 1]]), ("trained", model.frame_points(s))):
            p = p.detach().cpu().double().numpy()
            d, j = tree.query(p)
            signed = ((p - pts[j]) * nrm[j]).sum(1) / np.linalg.norm(nrm[j], axis=1).clip(1e-12)
            out[name].append((np.median(d) / model.spacing, np.median(signed) / model.spacing))
    return {f"{k}_to_surface_spacings": float(np.mean([x[0] for x in v])) for k, v in out.items()} | \
        {f"{k}_signed_spacings": float(np.mean([x[1] for x in v])) for k, v in out.items()}


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
            if not wi:
                res[name]["outline_heldout"] = outline_profile(run, a.frames)
                res[name]["outline_training"] = outline_profile(run, a.frames, run.train_cams[::4])
                res[name] |= surface_distance(run, a.frames)
            rounded = lambda d: {k: rounded(v) if isinstance(v, dict) else round(v, 4) for k, v in d.items()}  # noqa: E731
            print(name, json.dumps(rounded(res[name])))
        run.release()
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "diag.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
