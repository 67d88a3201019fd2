"""The training step's peel stage side by side in one run: the one-pass K-buffer against the
K-pass peeler (and the whole step), on the demo preset, same carved points, same seed.

    python scripts/bench_peel_step.py --steps 20 --out bench_peel_step.json
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20, help="profiled steps per backend (after 5 warm-up steps)")
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per backend; the best of each is compared")
    ap.add_argument("--quality-steps", type=int, default=0,
                    help="also train each backend this many steps (same points, seed, schedule) and compare held-out PSNR/SSIM")
    ap.add_argument("--work", default="outputs/bench_peel_step")
    ap.add_argument("--out", default="bench_peel_step.json")
    args = ap.parse_args()
    from timing import stage_breakdown
    from rich.console import Console
    from rich.table import Table

    from fourd.config import apply_overrides, preset
    from fourd.train.trainer import Trainer

    torch.set_flush_denormal(True)
    con = Console()
    rows = []
    points = None
    for backend in ("gl-peel", "gl-kbuffer") * args.rounds:  # interleaved rounds: llvmpipe timings drift
        over = {"out": str(Path(args.work) / backend), "eval_every": 0, "ckpt_every": 10**9, "rasterizer": backend}
        if points:
            over["points_file"] = points
        tr = Trainer(apply_overrides(preset(args.preset), over))
        points = points or str(Path(args.work) / backend / "carve" / "points.safetensors")
        for _ in range(5):
            tr.train_step()
        ms = stage_breakdown(tr, args.steps)
        rows.append({"backend": backend, "preset": args.preset, "K": tr.run.settings.K, **ms})
        tr.run.release()
    best = {}
    for r in rows:  # the best round of each backend
        if r["backend"] not in best or r["total"] < best[r["backend"]]["total"]:
            best[r["backend"]] = r
    p, k = best["gl-peel"], best["gl-kbuffer"]
    t = Table(title=f"training step, {args.preset} preset, K={p['K']} ({platform.machine()}, "
                    f"{torch.get_num_threads()} threads, Mesa llvmpipe)")
    for c in ("backend", "peel ms", "peel_sources ms", "step ms"):
        t.add_column(c)
    for r in (p, k):
        t.add_row(r["backend"], f"{r['peel']:.1f}", f"{r['peel_sources']:.1f}", f"{r['total']:.1f}")
    t.add_row("ratio peel/kbuffer", f"{p['peel'] / k['peel']:.2f}", "", f"{p['total'] / k['total']:.2f}")
    con.print(t)
    out = {"rows": rows, "peel_speedup": p["peel"] / k["peel"], "step_speedup": p["total"] / k["total"],
           "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, Mesa llvmpipe GL"}
    if args.quality_steps:
        from fourd.train.evaluate import evaluate

        q = Table(title=f"held-out quality after {args.quality_steps} steps, same points and seed")
        for c in ("backend", "PSNR", "SSIM", "minutes"):
            q.add_column(c)
        out["quality"] = []
        for backend in ("gl-peel", "gl-kbuffer"):
            over = {"out": str(Path(args.work) / f"quality-{backend}"), "eval_every": 0, "ckpt_every": 10**9,
                    "rasterizer": backend, "points_file": points, "steps": args.quality_steps}
            tr = Trainer(apply_overrides(preset(args.preset), over))
            import time

            t0 = time.perf_counter()
            while tr.step < args.quality_steps:
                tr.train_step()
            minutes = (time.perf_counter() - t0) / 60
            m = evaluate(tr.run, Path(over["out"]) / "eval", frames=None, write_images=False)["summary"]
            out["quality"].append({"backend": backend, "steps": args.quality_steps, "psnr": m["psnr"],
                                   "ssim": m["ssim"], "minutes": minutes})
            q.add_row(backend, f"{m['psnr']:.2f}", f"{m['ssim']:.4f}", f"{minutes:.1f}")
            tr.run.release()
        con.print(q)
    Path(args.out).write_text(json.dumps(out, indent=2))
    con.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
