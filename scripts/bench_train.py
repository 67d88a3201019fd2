"""Training quality for a fixed CPU budget on the demo capture, side by side in one run:
the hybrid model (PSNR/SSIM on held-out cameras vs minutes), the untrained baseline (carved
points coloured by a uniform blend of the nearest views), and the paper's ablation (blend only,
SH only) on the same budget; plus the step time broken down by stage.

    python scripts/bench_train.py --minutes 20 --ablation-minutes 8 --out bench_train.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch


def run(cfg, minutes: float, eval_every_min: float, eval_frames: int, label: str, con) -> dict:
    from fourd.train.evaluate import evaluate
    from fourd.train.trainer import Trainer

    tr = Trainer(cfg)
    curve, t_train, next_eval = [], 0.0, 0.0
    out = Path(cfg.out)
    while True:
        done = t_train >= minutes * 60 or tr.step >= cfg.steps
        if t_train >= next_eval or done:
            m = evaluate(tr.run, out / "eval" / f"t{int(t_train):05d}", frames=eval_frames, write_images=False)
            curve.append({"minutes": t_train / 60, "step": tr.step, "psnr": m["psnr"], "ssim": m["ssim"]})
            con.print(f"{label}: {t_train / 60:5.1f} min, step {tr.step}: PSNR {m['psnr']:.2f} SSIM {m['ssim']:.3f}")
            next_eval += eval_every_min * 60
            if done:
                break
        t = time.perf_counter()
        tr.train_step()
        t_train += time.perf_counter() - t
    tr.save()
    final = evaluate(tr.run, out / "eval" / "final", frames=None)
    return {"label": label, "curve": curve, "final": final["summary"], "steps": tr.step,
            "ms_per_step": 1000 * t_train / max(tr.step, 1), "trainer": tr}


def breakdown(tr, steps: int = 10) -> dict:
    from torch.profiler import ProfilerActivity, profile

    stages = ("grid", "heads", "peel", "peel_sources", "blend", "composite", "backward", "optimizer")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        for _ in range(steps):
            tr.train_step()
        total = (time.perf_counter() - t) / steps * 1000
    ev = {e.key: e.cpu_time_total / 1000 / steps for e in prof.key_averages() if e.key in stages}
    ev = {k: ev.get(k, 0.0) for k in stages}
    ev["other"] = total - sum(ev.values())
    ev["total"] = total
    return ev


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20.0, help="CPU budget of the hybrid model")
    ap.add_argument("--ablation-minutes", type=float, default=8.0, help="budget of each ablation (and hybrid at that point); 0 skips the ablations")
    ap.add_argument("--eval-every", type=float, default=2.0, help="minutes between curve points")
    ap.add_argument("--eval-frames", type=int, default=3)
    ap.add_argument("--steps-per-minute", type=float, default=75.0,
                    help="expected speed: sets the run length, so the learning-rate decay ends with the budget")
    ap.add_argument("--work", default="outputs/bench_train")
    ap.add_argument("--out", default="bench_train.json")
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    from fourd.config import apply_overrides, preset
    from fourd.train.evaluate import evaluate

    con = Console()
    work = Path(args.work)
    base = apply_overrides(preset("demo"), {"eval_every": 0, "ckpt_every": 10**9, "points_file": None})
    steps = lambda minutes: max(10, int(minutes * args.steps_per_minute))  # noqa: E731
    results = {}
    hyb = run(apply_overrides(base, {"out": str(work / "hybrid"), "steps": steps(args.minutes)}), args.minutes,
              args.eval_every, args.eval_frames, "hybrid", con)
    tr = hyb.pop("trainer")
    results["stage_ms"] = breakdown(tr)
    results["baseline"] = evaluate(tr.run, work / "baseline", frames=None, baseline=True, write_images=False)["summary"]
    results["hybrid"] = hyb
    points = str(work / "hybrid" / "carve" / "points.safetensors")
    for mode in ("blend", "sh") if args.ablation_minutes > 0 else ():
        cfg = apply_overrides(base, {"out": str(work / mode), "points_file": points, "model": {"appearance": mode},
                                     "steps": steps(args.ablation_minutes)})
        r = run(cfg, args.ablation_minutes, args.eval_every, args.eval_frames, mode, con)
        r.pop("trainer")
        results[mode] = r
    at = [c for c in hyb["curve"] if c["minutes"] <= args.ablation_minutes + 1e-6]
    results["hybrid_at_ablation_budget"] = at[-1] if at else None
    results["machine"] = f"{platform.machine()}, {torch.get_num_threads()} threads, Mesa llvmpipe GL"
    t = Table(title=f"demo capture, held-out cameras ({results['machine']})")
    for c in ("model", "budget min", "steps", "PSNR", "SSIM", "ms/step"):
        t.add_column(c)
    t.add_row("baseline (carved + uniform blend)", "0", "0", f"{results['baseline']['psnr']:.2f}",
              f"{results['baseline']['ssim']:.3f}", "")
    for k, mins in (("hybrid", args.minutes), ("blend", args.ablation_minutes), ("sh", args.ablation_minutes)):
        r = results.get(k)
        if r is None:
            continue
        t.add_row(k, f"{mins:g}", str(r["steps"]), f"{r['final']['psnr']:.2f}", f"{r['final']['ssim']:.3f}",
                  f"{r['ms_per_step']:.0f}")
    con.print(t)
    con.print("step time by stage (ms):", {k: round(v, 1) for k, v in results["stage_ms"].items()})
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    con.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
