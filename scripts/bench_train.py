"""Training quality for a fixed CPU budget, side by side in one run, on the demo capture and on a
second subject with a different look (CesiumMan: textured, thin limbs) made with the demo's rig.

Every variant of the settings (`--variants`, named in VARIANTS below: the current defaults, the
defaults of the previous round, each change undone alone, the paper's blend-only / SH-only
ablation) trains with the demo preset for `--minutes` of wall time (`fourd train --minutes`: the
schedule is sized to end on time), as its own `fourd` process, `--jobs` at a time with the cores
split between them. Reported per run: held-out PSNR and SSIM over every frame (our SSIM checked
against `skimage.metrics.structural_similarity` on the written images), the error split into
silhouette band / interior / outside (`fourd eval`'s regions), steps, ms/step, minutes. A picture
per capture: ground truth | each variant | error of the first variant, with 4× zoomed crops of a
flat region and of an edge.

    python scripts/bench_train.py --minutes 20 --variants defaults,before --jobs 2 \
        --out benchmarks/bench_train.json --picture docs/images/bench_train_{capture}.png
    python scripts/bench_train.py --minutes 8 --variants defaults,blend,sh      # the paper's ablation
    python scripts/bench_train.py --captures demo@36x3,CesiumMan@36x3 --variants defaults --jobs 2   # a denser rig
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FOURD = [sys.executable, "-m", "fourd.cli"]

# name → (what it is, fourd train options, fourd carve options)
VARIANTS = {
    "defaults": ("the current defaults", [], []),
    "before": ("the previous round's defaults (no SH residual penalty, no unanimous carve)",
               ["--w-residual", "0"], ["--try-unanimous", "False"]),
    "no-residual-penalty": ("defaults without the SH residual penalty", ["--w-residual", "0"], []),
    "no-unanimous": ("defaults, carved with the tolerant vote only", [], ["--try-unanimous", "False"]),
    "blend": ("image blend only (no SH residual)", ["--model.appearance", "blend"], []),
    "sh": ("SH colour only (no image blend)", ["--model.appearance", "sh"], []),
    "ssim-loss": ("defaults + 0.01 · (1 − SSIM) loss (tried as the default at stop 39)", ["--w-ssim", "0.01"], []),
    "ssim-window": ("defaults + 0.01 · (1 − SSIM) on a random 128-px square of the crop each step",
                    ["--w-ssim", "0.01", "--ssim-window", "128"], []),
    "k8": ("defaults drawing 8 points per pixel in training and evaluation (stop 36's K)", ["--K", "8"], []),
}


def capture(work: Path, name: str) -> Path:
    """The demo capture, or the demo's rig and frames around another shipped asset."""
    from dataclasses import replace

    from fourd.datasets.demo import DEMO_RECIPE, ensure_capture, ensure_demo

    name, _, rig = name.partition("@")  # "@36x3": 36 cameras on 3 rings (5° … 50°) instead of the demo's rig
    if name == "demo" and not rig:
        return ensure_demo()
    asset, _, anim = name.partition(":")
    if name == "demo":
        asset, anim = DEMO_RECIPE.asset, DEMO_RECIPE.animation
    recipe = replace(DEMO_RECIPE, asset=asset if asset.endswith(".glb") else asset + ".glb", animation=anim or None)
    if rig:
        from fourd.datasets.synth import ring_recipe

        n, _, r = rig.partition("x")
        recipe = replace(recipe, rings=ring_recipe(cameras=int(n), rings=int(r or 1)).rings)
    tag = name.replace(":", "_") + (f"@{rig}" if rig else "")
    return ensure_capture(recipe, work / "captures" / tag)


def carve(cap: Path, out: Path, opts: list[str]) -> Path:
    pts = out / "points.safetensors"
    if not pts.is_file():
        subprocess.run([*FOURD, "--quiet", "carve", "--dataset", str(cap), "--preset", "demo", "--out", str(out), *opts],
                       check=True)
    return pts


def train(cap: Path, pts: Path, out: Path, minutes: float, opts: list[str], threads: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [*FOURD, "--quiet", "train", "--dataset", str(cap), "--preset", "demo", "--out", str(out),
           "--minutes", str(minutes), "--points-file", str(pts), "--eval-every", "0", *opts]
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(cmd, env=env, stdout=open(str(out) + ".log", "w"), stderr=subprocess.STDOUT)


def result(cap: Path, run: Path) -> dict:
    """Final held-out metrics of a finished run, with SSIM recomputed by scikit-image."""
    import cv2
    from skimage.metrics import structural_similarity

    from fourd.datasets import open_dataset
    from fourd.train.losses import ssim
    import torch

    m = json.loads((run / "eval" / "final" / "metrics.json").read_text())
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if x.strip()]
    steps = max((x.get("step", 0) for x in log), default=0)
    train_s = max((x.get("time", 0) for x in log if "loss" in x), default=0)
    # scikit-image on the written 8-bit images against the 8-bit ground truth, a few of them
    video = open_dataset(cap)
    ours, ref = [], []
    for r in m["per_frame"][:: max(1, len(m["per_frame"]) // 6)]:
        png = run / "eval" / "final" / r["camera"] / f"{r['frame']:06d}.png"
        img = cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB).astype(np.float64) / 255
        v = video.view(r["frame"], r["camera"])
        gt = np.round(v.image * v.mask[..., None]) / 255 if v.mask is not None else v.image / 255
        ref.append(structural_similarity(gt, img, channel_axis=-1, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False))
        ours.append(ssim(torch.from_numpy(img).float(), torch.from_numpy(gt).float()))
    s = m["summary"]
    return {"psnr": s["psnr"], "ssim": s["ssim"], "regions": s.get("regions"), "steps": steps,
            "ms_per_step": 1000 * train_s / max(steps, 1), "train_minutes": train_s / 60,
            "ssim_check": {"images": len(ours), "fourd": float(np.mean(ours)), "skimage": float(np.mean(ref)),
                           "max_abs_diff": float(np.max(np.abs(np.array(ours) - np.array(ref))))}}


def windows(mask: np.ndarray, gt: np.ndarray, h: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Top-left corners of an h×h window inside the subject where the ground truth is flattest,
    and of one centred on the silhouette at mid height."""
    import cv2

    inside = cv2.erode(mask.astype(np.uint8), np.ones((h, h), np.uint8), anchor=(0, 0)) > 0
    grad = np.abs(cv2.Laplacian(gt.astype(np.float32).mean(-1), cv2.CV_32F))
    busy = cv2.boxFilter(grad, -1, (h, h), anchor=(0, 0), normalize=True)
    ys, xs = np.nonzero(inside)
    if len(ys):
        i = int(np.argmin(busy[ys, xs] + 1e3 * (gt.mean(-1)[ys, xs] < 10)))  # not a dark hole
        flat = (int(ys[i]), int(xs[i]))
    else:
        flat = (0, 0)
    my, mx = np.nonzero(mask)
    y = (int(my.min()) + int(my.max())) // 2
    row = np.nonzero(mask[y])[0]
    x = int(row.min()) if len(row) else mask.shape[1] // 2
    H, W = mask.shape
    edge = (min(max(y - h // 2, 0), H - h), min(max(x - h // 2, 0), W - h))
    return flat, edge


def picture(cap: Path, runs: dict[str, Path], out: Path, h: int = 48) -> None:
    """ground truth | each run | error (first run), full view above, 4× crops (flat, edge) below."""
    import cv2

    from fourd.datasets import open_dataset
    from fourd.io import write_png

    first = next(iter(runs.values()))
    cam_dir = sorted(p for p in (first / "eval" / "final").iterdir() if p.is_dir())[0]
    pngs = sorted(cam_dir.glob("*.png"))
    png = pngs[len(pngs) // 2]
    v = open_dataset(cap).view(int(png.stem), cam_dir.name)
    gt = (v.image * v.mask[..., None]).astype(np.uint8)
    imgs = [gt] + [cv2.cvtColor(cv2.imread(str(r / "eval" / "final" / cam_dir.name / png.name)), cv2.COLOR_BGR2RGB)
                   for r in runs.values()]
    err = np.clip(np.abs(imgs[1].astype(np.int16) - gt.astype(np.int16)).mean(-1) * 4, 0, 255).astype(np.uint8)
    imgs.append(np.repeat(err[..., None], 3, -1))
    (fy, fx), (ey, ex) = windows(v.mask > 0, gt, h)

    def zoom(i, y, x):
        return cv2.resize(i[y:y + h, x:x + h], (4 * h, 4 * h), interpolation=cv2.INTER_NEAREST)

    w = gt.shape[1] // 2
    crops = [np.concatenate([cv2.resize(zoom(i, y, x), (w, w), interpolation=cv2.INTER_NEAREST)
                             for y, x in ((fy, fx), (ey, ex))], 1) for i in imgs]
    write_png(out, np.concatenate([np.concatenate(imgs, 1), np.concatenate(crops, 1)], 0))
    print(f"wrote {out}: ground truth | {' | '.join(runs)} | error ×4 of {next(iter(runs))}; below each, zoomed "
          f"crops: the flattest {h}×{h} window inside the subject at ({fy},{fx}) | the silhouette at ({ey},{ex})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--captures", default="demo,CesiumMan", help="demo and/or shipped assets (asset[:animation]), each optionally on another rig: "
                    "'CesiumMan@36x3' = 36 cameras on 3 rings from 5° to 50° elevation (4 held out, as the demo)")
    ap.add_argument("--variants", default="defaults,before", help=f"comma separated, of: {', '.join(VARIANTS)}")
    ap.add_argument("--minutes", type=float, default=20.0, help="wall-time budget of each training run")
    ap.add_argument("--jobs", type=int, default=1, help="runs trained at a time (the cores are split between them)")
    ap.add_argument("--work", default="outputs/bench_train")
    ap.add_argument("--out", default="bench_train.json")
    ap.add_argument("--picture", default="bench_train_{capture}.png", help="picture per capture ('' for none)")
    ap.add_argument("--reuse", action="store_true", help="keep finished runs in --work instead of training again")
    a = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    con = Console(width=180)
    work = Path(a.work)
    variants = [v for v in a.variants.split(",") if v]
    for v in variants:
        if v not in VARIANTS:
            raise SystemExit(f"unknown variant {v!r}: choose from {', '.join(VARIANTS)}")
    threads = max(1, (os.cpu_count() or 2) // a.jobs)
    jobs = []
    for cname in a.captures.split(","):
        cap = capture(work, cname)
        for v in variants:
            carve_opts = VARIANTS[v][2]
            pts = carve(cap, work / cname / ("carve" + "".join(carve_opts).replace("--", "_")), carve_opts)
            jobs.append((cname, v, cap, pts, work / cname / v))
    pending, running = list(jobs), []
    t0 = time.perf_counter()
    while pending or running:
        while pending and len(running) < a.jobs:
            cname, v, cap, pts, out = pending.pop(0)
            if a.reuse and (out / "eval" / "final" / "metrics.json").is_file():
                continue
            if out.exists():
                import shutil

                shutil.rmtree(out)
            con.print(f"training {cname} / {v} for {a.minutes:g} min ({threads} threads)")
            running.append((train(cap, pts, out, a.minutes, VARIANTS[v][1], threads), out))
        for p, out in list(running):
            if p.poll() is not None:
                running.remove((p, out))
                if p.returncode:
                    raise SystemExit(f"{out} failed: see {out}.log")
        time.sleep(2)
    rows = []
    for cname, v, cap, pts, out in jobs:
        rows.append({"capture": cname, "variant": v, "what": VARIANTS[v][0], "minutes_budget": a.minutes,
                     "threads": threads, **result(cap, out)})
    by_cap: dict[str, dict[str, Path]] = {}
    for cname, v, cap, pts, out in jobs:
        by_cap.setdefault(cname, {})[v] = out
    if a.picture:
        for cname, runs in by_cap.items():
            picture(capture(work, cname), runs, Path(a.picture.format(capture=cname.replace(":", "_").replace("@", "_"))))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {a.jobs} run(s) at a time × {threads} thread(s), no GPU"
    t = Table(title=f"held-out quality after {a.minutes:g} min of training ({machine})")
    for c in ("capture", "variant", "PSNR", "SSIM", "edge PSNR", "interior PSNR / SSIM", "outside PSNR", "steps",
              "ms/step", "SSIM (skimage)"):
        t.add_column(c)
    for r in rows:
        g = r["regions"] or {}
        t.add_row(r["capture"], r["variant"], f"{r['psnr']:.2f}", f"{r['ssim']:.4f}",
                  f"{g.get('edge', {}).get('psnr') or 0:.2f}",
                  f"{g.get('interior', {}).get('psnr') or 0:.2f} / {g.get('interior', {}).get('ssim') or 0:.3f}",
                  f"{g.get('outside', {}).get('psnr') or 0:.2f}", str(r["steps"]), f"{r['ms_per_step']:.0f}",
                  f"{r['ssim_check']['skimage']:.4f} vs {r['ssim_check']['fourd']:.4f}")
    con.print(t)
    with open(a.out, "w") as f:
        json.dump({"machine": machine, "wall_minutes": (time.perf_counter() - t0) / 60, "rows": rows}, f, indent=2)
    con.print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
