"""Every stage at DNA-Rendering scale: time and peak resident memory, and how each grows.

A capture with DNA-Rendering's camera mix (`fourd data synth --rig dna_rendering`: 48 cameras at
2448×2048 and 12 at 4096×3000 times --scale, lens distortion and Color_Calibration on every camera,
SMC layout) goes through every stage, each run as its own `fourd` process so its peak RSS is its
own (os.wait4). One configuration is the baseline; each variable (frames, cameras, points) is
then changed alone, and the growth exponent of a stage in a variable is
log(time₁ / time₀) / log(v₁ / v₀) (1 = linear; the acceptance wants ≤ 1).

Stages: synth (writing the capture), decode (images/s at full size and at half size with
OpenCV's reduced JPEG decode), carve, train (ms/step at the dna_rendering preset, and the time a
step waited for data), eval, bake (compact and views: s/frame, bytes/frame), view (one headless
1080p frame), render (an orbit at 1080p, s/frame).

    python scripts/bench_scale.py --scale 1 --out benchmarks/bench_scale.json      # full size (hours)
    python scripts/bench_scale.py --scale 0.05 --frames 4,8 --cameras 24,60 --points 4096,16384 --steps 10
    python scripts/bench_scale.py --full 60 --eval-frames 10 --out benchmarks/bench_scale_full.json  # the full-size run
Captures are cached in --work and reused.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

FOURD = [sys.executable, "-m", "fourd.cli"]  # the same as the `fourd` command


def run_stage(cmd: list[str], env=None) -> dict:
    """Run one command; its wall time and peak resident memory (MiB)."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out = p.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t
    if p.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{out[-3000:]}")
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024, "output": out}


DECODE = """
import json, sys, time
import cv2, numpy as np
from fourd.datasets import open_dataset
v = open_dataset(sys.argv[1])
f = v.frames[0]
t = time.perf_counter(); n = 0
for cam in v.camera_names:
    v.image(f, cam); n += 1
full = n / (time.perf_counter() - t)
t = time.perf_counter()
for cam in v.camera_names:
    data, where = v.image_bytes(f, cam)
    cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_COLOR_2)
half = n / (time.perf_counter() - t)
print(json.dumps({"full": full, "half": half}))
"""


def capture(work: Path, frames: int, cameras: int, scale: float) -> Path:
    out = work / f"capture_f{frames}_c{cameras}_s{scale:g}"
    if (out / "synth.json").is_file():
        return out
    from fourd.datasets.synth import dna_rendering_recipe, synthesize

    t = time.perf_counter()
    synthesize(dna_rendering_recipe(frames=frames, scale=scale, cameras=cameras), out, "smc")
    (out / "synth_seconds.txt").write_text(str(time.perf_counter() - t))
    return out


def stages(cap: Path, run: Path, points: int, steps: int, frames: int, cameras: int, scale: float,
           minutes: float | None = None, eval_frames: int = 1) -> list[dict]:
    """Every stage on one capture, each as its own process. Training runs ``steps`` steps, or to a
    ``minutes`` budget (the full-size run)."""
    import shutil

    if run.exists():
        shutil.rmtree(run)
    base = {"frames": frames, "cameras": cameras, "points": points, "scale": scale}
    rows = []

    def add(stage, res, **extra):
        rows.append({"stage": stage, **base, "seconds": res["seconds"], "peak_rss_mb": res["peak_rss_mb"], **extra})
        print(f"  {stage:14s} {res['seconds']:8.1f} s  {res['peak_rss_mb']:8.0f} MiB  {extra if extra else ''}", flush=True)

    d = run_stage([sys.executable, "-c", DECODE, str(cap)])
    add("decode", d, **json.loads(d["output"].strip().splitlines()[-1]))
    add("carve", run_stage(FOURD + ["carve", "--dataset", str(cap), "--out", str(run / "carve"), "--points", str(points)]))
    res = run_stage(FOURD + ["train", "--preset", "dna_rendering", "--dataset", str(cap), "--out", str(run),
                             "--points-file", str(run / "carve" / "points.safetensors"),
                             *(["--minutes", str(minutes)] if minutes else ["--steps", str(steps)]),
                             "--eval-every", "0", "--log-every", "1", "--eval-frames", str(eval_frames)])
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if x.strip()]
    steps_t = [b["time"] - a["time"] for a, b in zip(log, log[1:]) if "loss" in a and "loss" in b]
    waits = sorted(x.get("data_ms", 0.0) for x in log if "loss" in x)
    ms = 1000 * sorted(steps_t)[len(steps_t) // 2] if steps_t else None
    final = next((x["eval"] for x in reversed(log) if "eval" in x), {})
    add("train", res, ms_per_step=ms, data_wait_ms=waits[len(waits) // 2] if waits else None,
        data_wait_ms_p95=waits[int(0.95 * (len(waits) - 1))] if waits else None,
        steps=max((x.get("step", 0) for x in log), default=0), psnr=final.get("psnr"), ssim=final.get("ssim"))
    add("eval", run_stage(FOURD + ["eval", str(run), "--frames", str(eval_frames)]))
    for appearance in ("compact", "views"):
        out = run / f"{appearance}.fourd"
        r = run_stage(FOURD + ["bake", str(run), "--out", str(out), "--appearance", appearance])
        add(f"bake_{appearance}", r, seconds_per_frame=r["seconds"] / frames, bytes_per_frame=out.stat().st_size / frames)
        add(f"view_{appearance}", run_stage(FOURD + ["view", str(out), "--headless", "--size", "1920x1080",
                                                     "--screenshot", str(run / f"view_{appearance}.png")]))
    r = run_stage(FOURD + ["render", str(run / "compact.fourd"), "--orbit", "--frames", "8", "--size", "1920x1080",
                           "--out", str(run / "orbit.mp4")])
    add("render", r, seconds_per_frame=r["seconds"] / 8)
    return rows


def exponents(rows: list[dict], base: dict, variables: dict) -> dict:
    """Per stage and variable: log(t₁/t₀) / log(v₁/v₀) between the baseline and the run that
    changed only that variable."""
    out: dict = {}
    by = {}
    for r in rows:
        by[(r["stage"], r["frames"], r["cameras"], r["points"])] = r["seconds"]
    for stage in sorted({r["stage"] for r in rows}):
        key0 = (stage, base["frames"], base["cameras"], base["points"])
        for var, (v0, v1) in variables.items():
            alt = dict(base, **{var: v1})
            key1 = (stage, alt["frames"], alt["cameras"], alt["points"])
            if key0 in by and key1 in by and v1 != v0:
                out.setdefault(stage, {})[var] = math.log(by[key1] / by[key0]) / math.log(v1 / v0)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="image size factor (1: DNA-Rendering's native sizes)")
    ap.add_argument("--frames", default="30,150")
    ap.add_argument("--cameras", default="24,60")
    ap.add_argument("--points", default="32768,262144")
    ap.add_argument("--steps", type=int, default=50, help="training steps timed per configuration")
    ap.add_argument("--work", default=os.path.join(os.environ.get("FOURD_CACHE", os.path.expanduser("~/.cache/fourd")),
                                                   "bench_scale"))
    ap.add_argument("--out", default="bench_scale.json")
    ap.add_argument("--full", type=float, default=None, metavar="MINUTES",
                    help="instead: the one full-size run (the largest --frames and --cameras, the dna_rendering "
                         "preset's points) through every stage, training for MINUTES")
    ap.add_argument("--eval-frames", type=int, default=1, help="frames evaluated (every held-out camera)")
    args = ap.parse_args()
    if args.full:
        return full_run(args)
    F = [int(x) for x in args.frames.split(",")]
    C = [int(x) for x in args.cameras.split(",")]
    P = [int(x) for x in args.points.split(",")]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    base = {"frames": F[0], "cameras": C[0], "points": P[0]}
    configs = [base, dict(base, frames=F[-1]), dict(base, cameras=C[-1]), dict(base, points=P[-1])]
    rows = []
    for c in configs:
        print(f"frames {c['frames']}, cameras {c['cameras']}, points {c['points']}, scale {args.scale:g}", flush=True)
        t = time.perf_counter()
        cap = capture(work, c["frames"], c["cameras"], args.scale)
        synth_s = float((cap / "synth_seconds.txt").read_text()) if (cap / "synth_seconds.txt").is_file() else time.perf_counter() - t
        rows.append({"stage": "synth", **c, "scale": args.scale, "seconds": synth_s, "peak_rss_mb": None})
        run = work / f"run_f{c['frames']}_c{c['cameras']}_p{c['points']}_s{args.scale:g}"
        rows += stages(cap, run, c["points"], args.steps, c["frames"], c["cameras"], args.scale)
    exp = exponents(rows, base, {"frames": (F[0], F[-1]), "cameras": (C[0], C[-1]), "points": (P[0], P[-1])})
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"every stage at DNA-Rendering scale × {args.scale:g} (growth exponents: 1 = linear)")
    for col in ("stage", "seconds (base)", "peak RSS MiB (max)", "exp frames", "exp cameras", "exp points"):
        table.add_column(col)
    for stage in dict.fromkeys(r["stage"] for r in rows):
        b = next(r for r in rows if r["stage"] == stage and all(r[k] == base[k] for k in base))
        peak = max((r["peak_rss_mb"] or 0) for r in rows if r["stage"] == stage)
        e = exp.get(stage, {})
        table.add_row(stage, f"{b['seconds']:.1f}", f"{peak:.0f}" if peak else "-",
                      *(f"{e[v]:.2f}" if v in e else "-" for v in ("frames", "cameras", "points")))
    Console(width=160).print(table)
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "python": platform.python_version()}
    Path(args.out).write_text(json.dumps({"machine": machine, "scale": args.scale, "steps": args.steps, "rows": rows,
                                          "exponents": exp}, indent=2))
    print(f"wrote {args.out}")


def full_run(args) -> None:
    """The acceptance run: carve → train --minutes → eval → bake (both) → view → render, one table."""
    from rich.console import Console
    from rich.table import Table

    frames, cameras = max(int(x) for x in args.frames.split(",")), max(int(x) for x in args.cameras.split(","))
    work = Path(args.work)
    t = time.perf_counter()
    cap = capture(work, frames, cameras, args.scale)
    synth_s = float((cap / "synth_seconds.txt").read_text()) if (cap / "synth_seconds.txt").is_file() else time.perf_counter() - t
    run = work / f"full_f{frames}_c{cameras}_s{args.scale:g}"
    rows = [{"stage": "synth", "frames": frames, "cameras": cameras, "points": 262_144, "scale": args.scale,
             "seconds": synth_s, "peak_rss_mb": None}]
    rows += stages(cap, run, 262_144, args.steps, frames, cameras, args.scale, minutes=args.full,
                   eval_frames=args.eval_frames)
    table = Table(title=f"full-size run: {cameras} cameras × {frames} frames at DNA-Rendering sizes × {args.scale:g}")
    for col in ("stage", "seconds", "peak RSS MiB", "notes"):
        table.add_column(col)
    for r in rows:
        notes = {k: v for k, v in r.items() if k not in ("stage", "frames", "cameras", "points", "scale", "seconds",
                                                         "peak_rss_mb")}
        table.add_row(r["stage"], f"{r['seconds']:.1f}", f"{r['peak_rss_mb']:.0f}" if r["peak_rss_mb"] else "-",
                      json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in notes.items()}))
    Console(width=160).print(table)
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "python": platform.python_version()}
    Path(args.out).write_text(json.dumps({"machine": machine, "scale": args.scale, "full_minutes": args.full,
                                          "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
