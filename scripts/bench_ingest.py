"""`fourd data ingest` end to end on rigs made from two subjects, against the exact capture.

For each subject: render a rig's raw videos (textured studio, a ChArUco board waved before a clap
and flash, cameras starting at different times, an empty-studio plate, H.264 + AAC), ingest them,
measure sync / calibration / masks against the truth, then train the demo preset for the same
number of steps on (a) the ingested capture and (b) the same images with the exact cameras and
masks, and compare held-out PSNR/SSIM on every frame — both against the same ground truth (the
held-out images composited with the exact masks; each run with its own cameras), and the
ingested run also against its own masks (what `fourd eval` reports for it).

    python scripts/bench_ingest.py --steps 1000 --out benchmarks/bench_ingest.json
    python scripts/bench_ingest.py --reuse ...   # keep the rigs and runs of a previous call, evaluate again
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path


def exact_twin(ingested: Path, synth: Path, out: Path) -> Path:
    """The ingested images with the synthetic capture's exact cameras and masks."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copytree(ingested / "images", out / "images")
    shutil.copytree(synth / "masks", out / "masks")
    for f in ("intri.yml", "extri.yml"):
        shutil.copy(synth / f, out / f)
    shutil.copy(ingested / "fourd.json", out / "fourd.json")
    return out


def with_exact_masks(capture: Path, synth: Path, out: Path) -> Path:
    """``capture`` (its images and cameras) with the synthetic capture's exact masks."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for d in ("images",):
        shutil.copytree(capture / d, out / d)
    shutil.copytree(synth / "masks", out / "masks")
    for f in ("intri.yml", "extri.yml", "fourd.json"):
        shutil.copy(capture / f, out / f)
    return out


def evaluate_on(run: Path, capture: Path, out: Path) -> dict:
    from fourd.train.evaluate import evaluate
    from fourd.train.run import load_run

    r = load_run(run, dataset=capture)
    m = evaluate(r, out, write_images=False)
    r.release()
    return {"psnr": m["psnr"], "ssim": m["ssim"]}


def train(capture: Path, run: Path, steps: int) -> dict:
    from fourd.config import apply_overrides, preset
    from fourd.train.trainer import Trainer

    if run.exists():
        shutil.rmtree(run)
    cfg = apply_overrides(preset("demo"), {"dataset": str(capture), "out": str(run), "steps": steps,
                                           "eval_every": 0, "ckpt_every": 10**9})
    t0 = time.time()
    tr = Trainer(cfg)
    m = tr.fit()["eval"]
    minutes = (time.time() - t0) / 60
    tr.run.release()
    return {"psnr": m["psnr"], "ssim": m["ssim"], "minutes": minutes}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", default="Fox.glb:Walk,CesiumMan.glb:", help="asset:animation, comma separated")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--work", default="outputs/bench_ingest")
    ap.add_argument("--out", default="bench_ingest.json")
    ap.add_argument("--reuse", action="store_true", help="reuse rigs, ingests and runs already in --work")
    args = ap.parse_args()
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from fourd.datasets import open_dataset
    from fourd.ingest.calibrate import BoardSpec, compare_rigs
    from fourd.ingest.masks import mask_iou
    from fourd.ingest.pipeline import IngestOptions, ingest
    from fourd.ingest.testrig import RigRecipe, make_rig

    rows = []
    for item in args.subjects.split(","):
        asset, _, anim = item.partition(":")
        work = Path(args.work) / Path(asset).stem
        reuse = args.reuse and (work / "ingested" / "ingest.json").is_file()
        if not reuse:
            if work.exists():
                shutil.rmtree(work)
            truth = make_rig(work, RigRecipe(asset=asset, animation=anim or None))
            t0 = time.time()
            opt = IngestOptions(background=work / "plate", board=BoardSpec(**truth["board"]),
                                held_out=",".join(truth["held_out"]))
            rep = ingest(work / "videos", work / "ingested", opt)
            ingest_s = time.time() - t0
            (work / "ingest_seconds.txt").write_text(str(ingest_s))
        else:
            truth = json.loads((work / "truth.json").read_text())
            rep = json.loads((work / "ingested" / "ingest.json").read_text())
            ingest_s = float((work / "ingest_seconds.txt").read_text()) if (work / "ingest_seconds.txt").is_file() else None
        got, exact = open_dataset(work / "ingested"), open_dataset(truth["synth"])
        cmp = compare_rigs(got.cameras.R.double().numpy(), got.cameras.centers.double().numpy(),
                           exact.cameras.R.double().numpy(), exact.cameras.centers.double().numpy())
        ious = [mask_iou(got.mask(f, n), exact.mask(f, n)) for f in got.frames for n in got.camera_names]
        base = {"subject": Path(asset).stem, "cameras": len(got.camera_names), "frames": len(got.frames),
                "size": int(got.cameras.W[0]), "steps": args.steps,
                "offsets_exact": rep["sync"]["offsets"] == truth["event_frame"],
                "rotation_deg_max": cmp["rotation_deg_max"], "center_err_max": cmp["center_err_max"],
                "reproj_rms_max_px": rep["calibration"]["max_rms_px"],
                "mask_iou_min": float(min(ious)), "mask_iou_mean": float(np.mean(ious)), "ingest_seconds": ingest_s}
        twin = work / "exact" if reuse else exact_twin(work / "ingested", Path(truth["synth"]), work / "exact")
        gt = with_exact_masks(work / "ingested", Path(truth["synth"]), work / "ingested_gt")
        for name, cap in (("ingested", work / "ingested"), ("exact", twin)):
            run = work / f"run_{name}"
            if reuse and (run / "checkpoints" / "latest.txt").is_file():
                recs = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if x.strip()]
                trained = {"minutes": max((x.get("time", 0) for x in recs), default=0) / 60 or None}
            else:
                trained = train(cap, run, args.steps)
            same_gt = evaluate_on(run, gt if name == "ingested" else twin, work / f"eval_{name}")
            own = evaluate_on(run, cap, work / f"eval_{name}_own") if name == "ingested" else same_gt
            rows.append({**base, "capture": name, "minutes": trained["minutes"], "psnr": same_gt["psnr"],
                         "ssim": same_gt["ssim"], "psnr_own_masks": own["psnr"], "ssim_own_masks": own["ssim"]})
    table = Table(title=f"fourd data ingest → train ({args.steps} steps, demo preset)")
    for c in ("subject", "capture", "psnr", "ssim", "psnr (own masks)", "minutes", "rot° max", "centre err",
              "reproj px", "mask IoU min", "offsets"):
        table.add_column(c)
    for r in rows:
        table.add_row(r["subject"], r["capture"], f"{r['psnr']:.2f}", f"{r['ssim']:.4f}", f"{r['psnr_own_masks']:.2f}",
                      "-" if r["minutes"] is None else f"{r['minutes']:.1f}",
                      f"{r['rotation_deg_max']:.3f}", f"{100 * r['center_err_max']:.2f} %",
                      f"{r['reproj_rms_max_px']:.2f}", f"{r['mask_iou_min']:.3f}", "exact" if r["offsets_exact"] else "OFF")
    Console(width=200).print(table)
    gaps = {}
    for r in rows:
        gaps.setdefault(r["subject"], {})[r["capture"]] = r["psnr"]
    for s, g in gaps.items():
        print(f"{s}: ingested − exact = {g['ingested'] - g['exact']:+.2f} dB (same ground truth: exact masks)")
    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()}, "steps": args.steps, "rows": rows,
              "psnr_gap_db": {s: g["ingested"] - g["exact"] for s, g in gaps.items()}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"→ {args.out}")


if __name__ == "__main__":
    main()
