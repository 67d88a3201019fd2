"""Cameras that dropped frames: what each way of reading such a capture keeps, and the held-out
quality it trains to.

A real rig's cameras drop frames now and then, each its own. For each subject this makes the
synthetic bench capture (24 cameras, 4 held out, 30 frames, 512², as `scripts/bench_faults.py`)
and a copy in which every camera (held-out ones included) lacks ``--drop`` frames drawn at random,
then trains the demo preset (same steps) on:

- ``clean``: the full capture;
- ``gaps / skip`` (the default): each camera sits out the frames it lacks;
- ``gaps / keep``: every camera cut to the frames all of them have (fourd before the change).

(``leave_out`` reads this capture as ``keep``: no single camera's absence gives back a tenth of the
sequence when every camera drops its own few frames.) Each run is evaluated on the held-out
(frame, camera) pairs it has among every third frame and the frames ``keep`` trains; rows
``{subject, capture, mode, frames, eval_pairs, psnr, ssim, psnr_common, ssim_common, minutes}``,
where ``*_common`` average over the pairs every run of the subject scored.

    python scripts/bench_gaps.py --out benchmarks/bench_gaps.json --jobs 2

Runs already finished in --work are reused (delete a run folder to redo it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
from pathlib import Path

MODES = {"clean": ("clean", "skip"), "gaps_skip": ("gaps", "skip"), "gaps_keep": ("gaps", "keep")}


def make_gappy(clean: Path, out: Path, drop: int, seed: int = 0) -> dict[str, list[int]]:
    """``clean`` copied (images hard-linked) with each camera's ``drop`` random frames removed
    (image and mask): camera → the frames it lacks, also written to ``out/dropped.json``."""
    import numpy as np

    if (out / "dropped.json").is_file():
        return json.loads((out / "dropped.json").read_text())
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(clean, out, copy_function=os.link, ignore=shutil.ignore_patterns("gt"))
    rng = np.random.default_rng(seed)
    dropped = {}
    for cam in sorted(p.name for p in (out / "images").iterdir()):
        files = sorted((out / "images" / cam).iterdir())
        gone = sorted(int(i) for i in rng.choice(len(files), drop, replace=False))
        for i in gone:
            stem = files[i].stem
            files[i].unlink()
            for m in (out / "masks" / cam).glob(f"{stem}.*"):
                m.unlink()
        dropped[cam] = [int(files[i].stem) for i in gone]
    (out / "dropped.json").write_text(json.dumps(dropped, indent=1))
    return dropped


def set_mode(capture: Path, mode: str) -> None:
    """fourd.json's "incomplete_cameras" set (the file is unlinked first: the copy's files are hard
    links to the clean capture's, which must not change)."""
    meta = json.loads((capture / "fourd.json").read_text())
    meta["incomplete_cameras"] = mode
    (capture / "fourd.json").unlink()
    (capture / "fourd.json").write_text(json.dumps(meta, indent=2))


def one(job: dict) -> None:
    """Train one run in this process and evaluate it on ``job["frames"]`` (those it has)."""
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_faults import train_one

    from fourd.train.evaluate import evaluate
    from fourd.train.run import load_run

    out = Path(job["out"])
    res = train_one(Path(job["capture"]), out, {})
    run = load_run(out)
    frames = [f for f in job["frames"] if f in run.video.frames]
    with torch.no_grad():
        m = evaluate(run, out / "eval" / "bench", frames=frames, write_images=False)
    res.update(frames=len(run.video.frames), eval_pairs=len(m["per_frame"]), psnr=m["psnr"], ssim=m["ssim"],
               per_pair=[[r["frame"], r["camera"], r["psnr"], r["ssim"]] for r in m["per_frame"]])
    (out / "bench_row.json").write_text(json.dumps(res))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", default="Fox.glb:Walk,CesiumMan.glb:", help="asset:animation, comma separated")
    ap.add_argument("--work", default="outputs/bench_gaps", help="captures and runs (a bench_faults --work "
                    "folder's clean captures are reused when --clean-from names it)")
    ap.add_argument("--clean-from", default=None, help="folder holding <subject>/clean made by bench_faults.py")
    ap.add_argument("--drop", type=int, default=1, help="frames each camera lacks (drawn at random)")
    ap.add_argument("--out", default="bench_gaps.json")
    ap.add_argument("--jobs", type=int, default=1, help="runs trained at a time (one thread each when > 1)")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: one run (JSON)
    args = ap.parse_args()
    if args.one:
        one(json.loads(args.one))
        return
    from rich.console import Console
    from rich.table import Table

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_faults import make_captures, run_jobs

    work = Path(args.work)
    subjects = [s.partition(":") for s in args.subjects.split(",")]
    todo, runs = [], []
    for asset, _, anim in subjects:
        name = Path(asset).stem
        src = Path(args.clean_from) / name if args.clean_from else work / name
        if not (src / "clean" / "extri.yml").is_file():
            make_captures(src, asset, anim or None)
        dropped = make_gappy(src / "clean", work / name / "gaps", args.drop)
        lacking = {f for v in dropped.values() for f in v}
        n_frames = len(list((src / "clean" / "images" / min(dropped)).iterdir()))
        common = [f for f in range(n_frames) if f not in lacking]
        frames = sorted(set(range(0, n_frames, 3)) | set(common))
        for key, (cap, mode) in MODES.items():
            capture = src / "clean" if cap == "clean" else work / name / f"gaps_{mode}"
            if cap == "gaps" and not (capture / "fourd.json").is_file():
                shutil.copytree(work / name / "gaps", capture, copy_function=os.link)
                set_mode(capture, mode)
            r = {"subject": name, "capture": cap, "mode": mode, "dir": work / name / f"run_{key}",
                 "job": {"capture": str(capture), "out": str(work / name / f"run_{key}"), "frames": frames}}
            runs.append(r)
            if not (r["dir"] / "bench_row.json").is_file():
                todo.append(r)
    for r in todo:
        r["label"] = f"{r['subject']} {r['capture']} ({r['mode']})"
    run_jobs(todo, args.jobs, __file__)
    rows = []
    for r in runs:
        f = r["dir"] / "bench_row.json"
        if f.is_file():
            rows.append({"subject": r["subject"], "capture": r["capture"], "mode": r["mode"], **json.loads(f.read_text())})
    for subject in {x["subject"] for x in rows}:  # the pairs every run of the subject scored
        mine = [x for x in rows if x["subject"] == subject]
        shared = set.intersection(*({(p[0], p[1]) for p in x["per_pair"]} for x in mine))
        for x in mine:
            got = [p for p in x["per_pair"] if (p[0], p[1]) in shared]
            x["common_pairs"] = len(got)
            x["psnr_common"] = float(sum(p[2] for p in got) / max(len(got), 1))
            x["ssim_common"] = float(sum(p[3] for p in got) / max(len(got), 1))
    table = Table(title=f"cameras that dropped {args.drop} frame(s) each (demo preset, held-out cameras)")
    for c in ("subject", "capture", "mode", "frames", "eval pairs", "PSNR", "SSIM", "PSNR common", "SSIM common", "minutes"):
        table.add_column(c)
    for x in sorted(rows, key=lambda x: (x["subject"], x["capture"] != "clean", x["mode"] != "skip")):
        table.add_row(x["subject"], x["capture"], x["mode"], str(x["frames"]), str(x["eval_pairs"]), f"{x['psnr']:.2f}",
                      f"{x['ssim']:.4f}", f"{x['psnr_common']:.2f}", f"{x['ssim_common']:.4f}", f"{x['minutes']:.1f}")
    Console(width=160).print(table)
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "python": platform.python_version(), "jobs": args.jobs,
               "note": "minutes with --jobs 2 count two runs sharing 2 cores"}
    for x in rows:
        x.pop("per_pair", None)
    Path(args.out).write_text(json.dumps({"machine": machine, "drop": args.drop, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
