"""Where a trained model's silhouette lies against the true one, in held-out and in training views.

For each run: the rendered alpha outside the true mask and the alpha missing inside it, each summed
and divided by the true outline's length (so in pixels of outline offset: 0.5 means the render
spills half a pixel beyond the subject's outline on the average). A model whose held-out views spill
much more than its training views has geometry the training views cannot see — the visual hull's
excess where no training camera looks along a surface (a flat side seen edge-on by a held-out camera
only), or splats at a rim only held-out cameras see.

``--inward k1,k2,...`` also renders the held-out views with every point moved inward along its
carved normal by k × its radius (at test time, nothing retrained) and reports held-out PSNR/SSIM and
the error split for each k — a probe of whether a rim bias is what costs the held-out error.

    python scripts/diag_rim_spill.py --capture WORK/SUBJECT/clean RUN [RUN ...] [--picture out.png] [--json out.json]

The runs must be of that capture or of a degraded copy of it (`fourd data degrade`): the truth is
the clean capture's masks; every view is rendered from the run's own capture, the training views
through the run's refined cameras.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def spill(run, clean, cams: list[str], frames: list[int], own: bool) -> dict:
    """Alpha outside / missing inside the true masks of ``cams`` × ``frames``, per px of outline."""
    import cv2

    out = miss = per = 0.0
    for f in frames:
        for cam in cams:
            tgt = run.sampler.target(f, cam, crop=False, scale=1.0)
            with torch.no_grad():
                a = run.render(f, tgt.camera, cam if own else None).image.alpha.squeeze(-1).cpu().numpy()
            m = clean.view(f, cam).mask
            mu = m.astype(np.uint8)
            per += float((mu - cv2.erode(mu, np.ones((3, 3), np.uint8))).sum())
            out += float(a[~m].sum())
            miss += float((1 - a[m]).sum())
    return {"outside_px": out / max(per, 1.0), "missing_px": miss / max(per, 1.0)}


def edge_darkening(run_dir: Path, clean) -> dict | None:
    """Over the run's written held-out renders (``RUN/eval/final``): the pixels inside the true mask
    within 2 px of its outline — mean absolute error, how much of it is colour (the error's departure
    from grey), and how much darker than the truth they are on the average (all /255)."""
    import cv2

    ab = ch = dark = n = 0.0
    final = Path(run_dir) / "eval" / "final"
    if not final.is_dir():
        return None
    for cam_dir in sorted(p for p in final.iterdir() if p.is_dir()):
        for png in sorted(cam_dir.glob("*.png")):
            v = clean.view(int(png.stem), cam_dir.name)
            m = v.mask.astype(np.uint8)
            band = (m > 0) & ~(cv2.erode(m, np.ones((5, 5), np.uint8)) > 0)
            img = cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB).astype(np.float64)
            e = (img - v.image.astype(np.float64))[band]
            g = e.mean(1, keepdims=True)
            ab += float(np.abs(e).mean(1).sum())
            ch += float(np.abs(e - g).mean(1).sum())
            dark += float(-g.sum())
            n += float(band.sum())
    n = max(n, 1.0)
    return {"inner_band_abs_err": ab / n, "inner_band_colour_err": ch / n, "inner_band_darker_by": dark / n}


def picture(run, clean, frames: list[int]) -> np.ndarray:
    """Held-out views cropped to the subject: true mask green, spilled alpha red, missing alpha blue (×3)."""
    import cv2

    rows = []
    for f in frames:
        row = []
        for cam in run.eval_cams:
            tgt = run.sampler.target(f, cam, crop=False, scale=1.0)
            with torch.no_grad():
                a = run.render(f, tgt.camera, None).image.alpha.squeeze(-1).cpu().numpy()
            m = clean.view(f, cam).mask
            pic = np.zeros(m.shape + (3,), np.float32)
            pic[..., 1] = m * 0.35
            pic[..., 0] = np.where(~m, a, 0) * 3
            pic[..., 2] = np.where(m, 1 - a, 0) * 3
            ys, xs = np.nonzero(m)
            y0, y1 = max(int(ys.min()) - 10, 0), int(ys.max()) + 10
            x0, x1 = max(int(xs.min()) - 10, 0), int(xs.max()) + 10
            c = pic[y0:y1, x0:x1]
            s = 256 / max(c.shape[:2])
            c = cv2.resize(c, (max(1, int(c.shape[1] * s)), max(1, int(c.shape[0] * s))), interpolation=cv2.INTER_NEAREST)
            canvas = np.zeros((256, 256, 3), np.float32)
            canvas[:c.shape[0], :c.shape[1]] = c[:256, :256]
            row.append(canvas)
        rows.append(np.concatenate(row, 1))
    return np.clip(np.concatenate(rows, 0), 0, 1)


def inward(run, run_dir: Path, ks: list[float], frames: int) -> list[dict]:
    """Held-out metrics with every point moved inward along its carved normal by k × its radius."""
    import tempfile

    from fourd.structures.points import PointSequence
    from fourd.train.evaluate import evaluate

    m = run.model
    carve = PointSequence.load(Path(run_dir) / "carve" / "points.safetensors")
    if "normals" not in carve.attributes or carve.points.shape != m.positions.shape:
        raise SystemExit(f"{run_dir}: the carve has no normals for the model's points")
    n = carve.attributes["normals"].float().to(m.positions.device)
    n = n / n.norm(dim=1, keepdim=True).clamp_min(1e-9)
    base = m.positions.detach().clone()
    rad = torch.empty(base.shape[0], device=base.device)
    with torch.no_grad():
        for slot in range(len(m.frames)):
            a, b = int(m.offsets[slot]), int(m.offsets[slot + 1])
            rad[a:b] = m.geometry(m.grid(base[a:b], float(slot)))[0].reshape(-1)
    rows = []
    try:
        for k in ks:
            with torch.no_grad():
                m.positions.copy_(base - k * rad[:, None] * n)
            with tempfile.TemporaryDirectory() as tmp:
                res = evaluate(run, Path(tmp), frames=frames, write_images=False)
            rows.append({"k": k, "psnr": res["psnr"], "ssim": res["ssim"],
                         "regions": {r: v["psnr"] for r, v in (res.get("regions") or {}).items()}})
            print(f"  inward {k:g} x radius: held-out {res['psnr']:.2f} dB / {res['ssim']:.4f}", flush=True)
    finally:
        with torch.no_grad():
            m.positions.copy_(base)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--capture", type=Path, required=True, help="the clean capture (its masks are the truth)")
    ap.add_argument("--frames", type=int, default=3, help="frames measured, spread over the sequence")
    ap.add_argument("--inward", default="", help="comma-separated k: also evaluate with points moved inward by k x radius")
    ap.add_argument("--picture", type=Path, default=None, help="the first run's held-out spill picture")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    from fourd.datasets import open_dataset
    from fourd.train.evaluate import pick_frames
    from fourd.train.run import load_run

    clean = open_dataset(args.capture)
    results = []
    for i, rd in enumerate(args.runs):
        run = load_run(rd)  # its own capture: the blend reads its (corrected) training images
        frames = pick_frames(run.video.frames, args.frames + 2)[1:-1]  # inner frames
        train = run.train_cams[:: max(1, len(run.train_cams) // 5)]
        r = {"run": str(rd), "held_out": spill(run, clean, run.eval_cams, frames, own=False),
             "training": spill(run, clean, train, frames, own=True), "frames": frames, "training_cameras": train}
        print(f"{rd.name}: alpha outside / missing inside the true outline, px — held-out "
              f"{r['held_out']['outside_px']:.3f} / {r['held_out']['missing_px']:.3f}, training (own image left out of the blend) "
              f"{r['training']['outside_px']:.3f} / {r['training']['missing_px']:.3f}", flush=True)
        r["edge"] = edge_darkening(rd, clean)
        if r["edge"]:
            print(f"  held-out renders, 2 px inside the outline: |error| {r['edge']['inner_band_abs_err']:.1f}/255, "
                  f"colour {r['edge']['inner_band_colour_err']:.1f}/255, darker by {r['edge']['inner_band_darker_by']:.1f}/255")
        if args.inward:
            r["inward"] = inward(run, rd, [float(x) for x in args.inward.split(",")], 6)
        if i == 0 and args.picture:
            from fourd.io import write_png

            write_png(args.picture, picture(run, clean, frames))
            print(f"wrote {args.picture} (true mask green, spill red, missing blue; x3)")
        run.release()
        results.append(r)
    if args.json:
        args.json.write_text(json.dumps({"capture": str(args.capture), "runs": results}, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
