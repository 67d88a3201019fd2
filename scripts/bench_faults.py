"""Real-rig faults: held-out quality of a clean capture, the same capture with every fault of
`fourd data degrade`, and the faulty one with each remedy switched off in turn.

For each subject: a synthetic capture (24 cameras, 4 held out clean, 30 frames, 512²) and its
degraded copy (colour, distortion, calibration, masks, background, noise on the 20 training
cameras; pose errors relative to the rig, as `fourd data degrade` makes them by default — captures
made before it took their common motion out hold ~1 / 0.5 dB of unobservable world-frame shift,
see `benchmarks/bench_faults_s31.json` vs `_s32.json`). Every run trains the demo preset (same
steps) and is evaluated on every frame of the held-out cameras. Rows `{subject, capture, remedies, psnr, ssim, minutes}`; the faulty runs with the
defaults also report how well the refined poses and colour corrections match `faults.json`, and
whether carving flagged the injector's most damaged camera.

    python scripts/bench_faults.py --out benchmarks/bench_faults.json        # all rows
    python scripts/bench_faults.py --single-faults all ...   # also one capture per fault (attribution)
    python scripts/bench_faults.py --worlds ...   # also the clean capture in other world frames
    python scripts/bench_faults.py --jobs 2 ...   # two runs at a time (one thread each; minutes then
                                                  # count a shared machine)
Runs already finished in --work are reused (delete a run folder to redo it).
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

NONE = {"colour_correction": False, "pose_refinement": False, "source_masks": False, "edge_band": 0,
        "refine_rig": False, "refine_colour": False, "align_surface": False, "align_silhouettes": False,
        "repair_masks": False, "fix_mask_outlines": False, "unmix_plate": False, "learn_pose": "off",
        "carve": {"mask_tolerance": 0, "drop_outlier_masks": False}}
ABLATIONS: dict = {  # remedy → the settings that switch a default one off
    "rig": {"refine_rig": False},
    "colour-check": {"refine_colour": False},
    "surface-align": {"align_surface": False},
    "silhouette-align": {"align_silhouettes": False},
    "plate": {"unmix_plate": False},
    "unanimous": {"carve": {"try_unanimous": False}},
    "mask-outlines": {"fix_mask_outlines": False},
    "repair": {"repair_masks": False},
}
OPT_IN = {  # opt-in remedies switched on ("+" rows)
    "pose": {"pose_refinement": True},
    "colour": {"colour_correction": True},
    "colour, pose": {"colour_correction": True, "pose_refinement": True},
    "turns": {"lr_pose": 8e-6},
    "masks": {"edge_band": 1, "carve": {"mask_tolerance": 1, "drop_outlier_masks": True}},
}


def plan(subjects: list[str], single: list[str] = (), worlds: bool = False) -> list[dict]:
    """Every run, in the order they are trained (what the acceptance needs first; with --jobs 2 the
    two subjects' runs of one kind train side by side). ``single``: faults to inject one at a
    time (a capture ``only_<fault>`` each, trained with the defaults) to attribute the gap."""
    runs = []
    kinds = [(f"only_{x}", "defaults", {}) for x in single]
    kinds += [("faulty", "defaults", {}), ("clean", "defaults", {}), ("faulty", "none", NONE), ("clean", "none", NONE)]
    kinds += [("faulty", f"defaults − {k}", v) for k, v in ABLATIONS.items()]
    kinds += [("faulty", f"defaults + {k}", v) for k, v in OPT_IN.items() if k != "colour, pose"]
    kinds += [("clean", "defaults + colour", OPT_IN["colour"])]  # what colour correction costs on a clean rig
    kinds += [(c, "defaults + colour, pose", OPT_IN["colour, pose"]) for c in ("faulty", "clean")]
    if worlds:  # the clean capture in other world frames, with the grid's axes its own and the world's
        kinds += [(w, "defaults", {}) for w in WORLDS]
        kinds += [("world_turned", "defaults − principal-axes", {"model": {"grid": {"axes": "world"}}})]
    for capture, remedies, over in kinds:
        runs += [{"subject": s, "capture": capture, "remedies": remedies, "over": over} for s in subjects]
    return runs


def run_name(r: dict) -> str:
    tag = r["remedies"].replace("defaults − ", "no_").replace("defaults + ", "with_").replace(", ", "_")
    return f"run_{r['capture']}_{tag}"


WORLDS = {  # the clean capture in another world frame (images untouched): X' = s·Q·X + t
    "world_turned": (1000.0, True),  # millimetres, z up and turned 30° about it, off the origin
    "world_scaled": (1000.0, False),  # millimetres, off the origin
    "world_rotated": (1.0, True),  # z up and turned 30° about it
}


def world_variant(clean: Path, out: Path, scale: float, turn: bool) -> None:
    """``clean`` with its calibration written in another world frame, as other rigs and renderers
    write theirs (ZJU-MoCap: z up; structure from motion: any turn and scale); images, masks and
    the rest linked. A method that does not depend on the world's axes trains it as ``clean``."""
    import math

    import numpy as np
    import torch

    from fourd.datasets.easyvolcap import read_easyvolcap_cameras, write_easyvolcap_cameras

    out.mkdir(parents=True, exist_ok=True)
    for item in clean.iterdir():
        if item.name not in ("intri.yml", "extri.yml") and not (out / item.name).exists():
            os.symlink(item.resolve(), out / item.name)
    a = math.radians(30)
    Q = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]]) @ \
        np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], float) if turn else np.eye(3)  # y up → z up, 30° about z
    t = np.array([2.5, -1.0, 0.7]) * scale if scale != 1.0 else np.zeros(3)
    cams = read_easyvolcap_cameras(clean)
    R = cams.R.double().numpy() @ Q.T
    cams.R = torch.from_numpy(R)
    cams.T = torch.from_numpy(scale * cams.T.double().numpy() - np.einsum("bij,j->bi", R, t))
    write_easyvolcap_cameras(out, cams)


def make_captures(work: Path, asset: str, anim: str | None, single: list[str] = (), worlds: bool = False) -> None:
    from fourd.datasets.degrade import degrade
    from fourd.datasets.synth import ring_recipe, synthesize

    if not (work / "clean" / "extri.yml").is_file():
        synthesize(ring_recipe(asset, anim, cameras=24, frames=30, size=512, held_out=4), work / "clean")
    if not (work / "faulty" / "faults.json").is_file():
        degrade(work / "clean", work / "faulty", seed=0)
    for fault in single:  # the same seed: each fault as it is in the capture with all of them
        if not (work / f"only_{fault}" / "faults.json").is_file():
            degrade(work / "clean", work / f"only_{fault}", faults=(fault,), seed=0)
    for name, (scale, turn) in WORLDS.items() if worlds else ():
        if not (work / name / "extri.yml").is_file():
            world_variant(work / "clean", work / name, scale, turn)
    for cap in [work / "faulty"] + [work / f"only_{f}" for f in single]:
        rec = json.loads((cap / "faults.json").read_text())
        if "calibration" in rec["faults"] and "calibration_common_motion_removed" not in rec:
            print(f"warning: {cap} was made with the pose errors as drawn (their common motion included); "
                  "delete it to remake it as `fourd data degrade` does now", file=sys.stderr)


def train_one(capture: Path, out: Path, over: dict) -> dict:
    """One run (in this process): the demo preset with ``over``; returns the final evaluation."""
    import shutil

    import torch

    from fourd.config import apply_overrides, preset
    from fourd.train.trainer import Trainer

    torch.set_num_threads(int(os.environ.get("FOURD_BENCH_THREADS", torch.get_num_threads())))
    if out.exists():
        shutil.rmtree(out)
    earlier = os.environ.get("FOURD_BENCH_CHECKS_FROM")  # a run of the same capture: its (deterministic)
    if earlier:  # rig, colour and silhouette checks are read instead of measured again (~1 min each)
        (out / "cameras").mkdir(parents=True)
        for name in ("bundle", "colour_check", "silhouette_align"):
            if (Path(earlier) / "cameras" / f"{name}.json").is_file():
                shutil.copy(Path(earlier) / "cameras" / f"{name}.json", out / "cameras")
    cfg = apply_overrides(preset("demo"), {"dataset": str(capture), "out": str(out), "eval_every": 0, **over})
    t0 = time.time()
    tr = Trainer(cfg)
    m = tr.fit()["eval"]
    minutes = (time.time() - t0) / 60
    tr.run.release()
    res = {"psnr": m["psnr"], "ssim": m["ssim"], "minutes": minutes, "steps": cfg.steps}
    (out / "bench_row.json").write_text(json.dumps(res))
    return res


def pose_and_colour(work: Path, run: Path, capture: str = "faulty") -> dict:
    """Refined cameras and colour corrections of ``run`` against the injected faults of ``capture``."""
    import numpy as np
    import torch

    from fourd.datasets import open_dataset
    from fourd.datasets.easyvolcap import read_easyvolcap_cameras
    from fourd.ingest.calibrate import compare_rigs

    faults = json.loads((work / capture / "faults.json").read_text())
    true = open_dataset(work / "clean").cameras
    given = open_dataset(work / capture).cameras
    refined = read_easyvolcap_cameras(run / "cameras")
    names = list(faults["cameras"])  # the training cameras

    def err(c):
        idx = [c.index(n) for n in names]
        ti = [true.index(n) for n in names]
        return compare_rigs(c.R[idx].double().numpy(), c.centers[idx].double().numpy(),
                            true.R[ti].double().numpy(), true.centers[ti].double().numpy())

    before, after = err(given), err(refined)
    # what matters for the images: how far the subject's surface lands from where the true camera
    # sees it (a turn and a sideways shift of a camera move a small subject's image alike)
    from fourd.datasets.synth import load_ground_truth

    verts = torch.from_numpy(load_ground_truth(work / "clean", 0)[0]).double()

    def px(c):
        e = []
        for n in names:
            uv_t = true[n].to(dtype=torch.float64).project(verts, distort=False)[0][0]
            uv_c = c[n].to(dtype=torch.float64).project(verts, distort=False)[0][0]
            e.append(float((uv_c - uv_t).norm(dim=1).mean()))
        return float(np.mean(e)), float(np.max(e))
    out = {"rotation_deg_mean_injected": before["rotation_deg_mean"], "rotation_deg_mean_refined": after["rotation_deg_mean"],
           "rotation_deg_max_injected": before["rotation_deg_max"], "rotation_deg_max_refined": after["rotation_deg_max"],
           "centre_err_mean_injected": before["center_err_mean"], "centre_err_mean_refined": after["center_err_mean"]}
    (out["px_err_mean_injected"], out["px_err_max_injected"]), (out["px_err_mean_refined"], out["px_err_max_refined"]) = \
        px(given), px(refined)
    col = json.loads((run / "cameras" / "colour.json").read_text())["cameras"]
    if any("colour_gain" in faults["cameras"][n] for n in names):
        g_true = np.array([faults["cameras"][n]["colour_gain"] for n in names])
        g_got = np.array([col[n]["colour_gain"] for n in names])
        # the rig's mean colour is a free choice (the corrections' mean is the identity): compare
        # each camera's gain relative to the rig's mean gain
        rel_true, rel_got = g_true / g_true.mean(0), g_got / g_got.mean(0)
        e = np.abs(rel_got / rel_true - 1)
        e0 = np.abs(1 / rel_true - 1)
        out.update({"gain_err_max": float(e.max()), "gain_err_mean": float(e.mean()),
                    "gain_err_max_uncorrected": float(e0.max()), "gain_err_mean_uncorrected": float(e0.mean())})
    return out


def ground_truth(v):
    """A clean held-out view over black, as training evaluates against it: the image cut by its
    mask, or where the mask is soft (coverage) the image as rendered (its edge pixels are the
    subject's share over black)."""
    import numpy as np

    keep = v.mask if v.coverage is None else v.coverage > 0
    return v.image.astype(np.float64) / 255 * keep[..., None]


def edge_psnr(work: Path, run: Path, band: int = 3) -> float:
    """PSNR of the held-out renders within ``band`` px of the true silhouette (where a halo of
    background colour would show), against the clean capture composited over black."""
    import cv2
    import numpy as np

    from fourd.datasets import open_dataset

    clean = open_dataset(work / "clean")
    k = np.ones((2 * band + 1, 2 * band + 1), np.uint8)
    se, n = 0.0, 0
    for cam_dir in sorted(p for p in (run / "eval" / "final").iterdir() if p.is_dir()):
        for png in sorted(cam_dir.glob("*.png")):
            f = int(png.stem)
            v = clean.view(f, cam_dir.name)
            gt = ground_truth(v)
            img = cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB).astype(np.float64) / 255
            m = v.mask.astype(np.uint8)
            ring = (cv2.dilate(m, k) > 0) & ~(cv2.erode(m, k) > 0)
            se += float(((img - gt) ** 2)[ring].sum())
            n += int(ring.sum()) * 3
    return float(10 * np.log10(1 / max(se / max(n, 1), 1e-12)))


def picture(work: Path, subjects: list[str], out: Path) -> None:
    """One held-out view per subject: ground truth | clean capture, defaults | faulty, no remedies |
    faulty, defaults — whole image and a 3× crop at the silhouette."""
    import cv2
    import numpy as np

    from fourd.datasets import open_dataset

    rows = []
    for s in subjects:
        runs = [work / s / n for n in ("run_clean_defaults", "run_faulty_none", "run_faulty_defaults")]
        if not all((r / "eval" / "final").is_dir() for r in runs):
            continue
        cam_dir = sorted(p for p in (runs[0] / "eval" / "final").iterdir() if p.is_dir())[0]
        png = sorted(cam_dir.glob("*.png"))[len(list(cam_dir.glob("*.png"))) // 2]
        v = open_dataset(work / s / "clean").view(int(png.stem), cam_dir.name)
        gt = np.round(ground_truth(v) * 255).astype(np.uint8)
        imgs = [gt] + [cv2.cvtColor(cv2.imread(str(r / "eval" / "final" / cam_dir.name / png.name)), cv2.COLOR_BGR2RGB)
                       for r in runs]
        ys, xs = np.nonzero(v.mask)
        y, x = int(ys.min()) + (int(ys.max()) - int(ys.min())) // 3, int(xs.min())  # a stretch of outline
        h = 64
        y0, x0 = max(0, y - h // 2), max(0, x - h // 4)
        crops = [cv2.resize(i[y0:y0 + h, x0:x0 + h], (3 * h, 3 * h), interpolation=cv2.INTER_NEAREST) for i in imgs]
        side = imgs[0].shape[0]
        crops = [cv2.resize(c, (side, side), interpolation=cv2.INTER_NEAREST) for c in crops]
        rows.append(np.concatenate([np.concatenate(imgs, 1), np.concatenate(crops, 1)], 0))
    if rows:
        from fourd.io import write_png

        write_png(out, np.concatenate(rows, 0))
        print(f"wrote {out} (columns: ground truth | clean, defaults | faulty, none | faulty, defaults)")


def carve_flags(work: Path, run: Path, capture: str = "faulty") -> dict:
    """Did carving flag the injector's most damaged camera (most pixels of holes and blobs)?"""
    faults = json.loads((work / capture / "faults.json").read_text())
    rep = json.loads((run / "carve" / "carve.json").read_text())
    damage: dict[str, int] = {}
    for key, what in faults["images"].items():
        if what["kind"] in ("hole", "blob"):
            cam = key.split("/")[1]
            damage[cam] = damage.get(cam, 0) + what["pixels"]
    worst = max(damage, key=damage.get) if damage else None
    flagged = {x["camera"] for x in rep["masks_flagged"]}
    ranking = [x["camera"] for x in rep["cameras_by_mask_disagreement"]]
    return {"most_damaged_camera": worst, "most_damaged_flagged": worst in flagged,
            "most_damaged_rank": ranking.index(worst) + 1 if worst in ranking else None,
            "masks_flagged": len(rep["masks_flagged"])}


def run_jobs(todo: list[dict], jobs: int, script: str) -> None:
    """Train each of ``todo`` (dicts with "job", its JSON for ``script --one``, "dir" and "label")
    in a subprocess, ``jobs`` at a time (one thread each when more than one), logging to dir.log."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FOURD_BENCH_THREADS": "1"} if jobs > 1 else dict(os.environ)
    todo, procs = list(todo), []
    while todo or procs:
        while todo and len(procs) < jobs:
            r = todo.pop(0)
            r["dir"].parent.mkdir(parents=True, exist_ok=True)
            log = open(str(r["dir"]) + ".log", "w")
            print(f"training {r['label']} → {r['dir']}", flush=True)
            procs.append((subprocess.Popen([sys.executable, script, "--one", json.dumps(r["job"])],
                                           stdout=log, stderr=log, env=env), r))
        time.sleep(5)
        for p, r in list(procs):
            if p.poll() is not None:
                procs.remove((p, r))
                if p.returncode:
                    print(f"[failed] {r['dir']} (exit {p.returncode}); see {r['dir']}.log", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", default="Fox.glb:Walk,CesiumMan.glb:", help="asset:animation, comma separated")
    ap.add_argument("--work", default="outputs/bench_faults")
    ap.add_argument("--out", default="bench_faults.json")
    ap.add_argument("--jobs", type=int, default=1, help="runs trained at a time")
    ap.add_argument("--picture", default="docs/images/bench_faults.png", help="comparison picture ('' for none)")
    ap.add_argument("--single-faults", default="", help="faults to also inject one at a time (comma separated, "
                    "or 'all'), to attribute the gap fault by fault")
    ap.add_argument("--worlds", action="store_true", help="also train the clean capture in other world frames "
                    "(millimetres, z up, turned): the same held-out quality is expected")
    ap.add_argument("--table-only", action="store_true", help="train nothing: tabulate the runs already finished in --work")
    ap.add_argument("--only", default="", help="comma-separated run names (e.g. run_faulty_defaults) to limit to")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: train one run (JSON)
    args = ap.parse_args()
    if args.one:
        job = json.loads(args.one)
        train_one(Path(job["capture"]), Path(job["out"]), job["over"])
        return
    from rich.console import Console
    from rich.table import Table

    from fourd.datasets.degrade import FAULTS

    subjects = [s.partition(":") for s in args.subjects.split(",")]
    single = list(FAULTS) if args.single_faults == "all" else [x for x in args.single_faults.split(",") if x]
    unknown = [x for x in single if x not in FAULTS]
    if unknown:
        ap.error(f"unknown faults {unknown}; pick from {', '.join(FAULTS)}")
    work = Path(args.work)
    for asset, _, anim in subjects:
        if not args.table_only:
            make_captures(work / Path(asset).stem, asset, anim or None, single, args.worlds)
    runs = plan([Path(a).stem for a, _, _ in subjects], single, args.worlds)
    only = {x for x in args.only.split(",") if x}
    todo = []
    for r in runs:
        r["dir"] = work / r["subject"] / run_name(r)
        if (only and run_name(r) not in only) or (r["dir"] / "bench_row.json").is_file() or args.table_only:
            continue
        todo.append(r)
    for r in todo:
        r["job"] = {"capture": str(work / r["subject"] / r["capture"]), "out": str(r["dir"]), "over": r["over"]}
        r["label"] = f"{r['subject']} {r['capture']} ({r['remedies']})"
    run_jobs(todo, args.jobs, __file__)
    rows = []
    shown = {"clean": 0, "faulty": 1}
    for r in sorted(runs, key=lambda r: (r["subject"], shown.get(r["capture"], 2), r["capture"], r["remedies"] != "none",
                                         r["remedies"] != "defaults", r["remedies"])):
        f = r["dir"] / "bench_row.json"
        if not f.is_file():
            continue
        row = {"subject": r["subject"], "capture": r["capture"], "remedies": r["remedies"], **json.loads(f.read_text())}
        row["edge_psnr"] = edge_psnr(work / r["subject"], r["dir"])
        if r["capture"] == "faulty":
            sw = work / r["subject"]
            if (r["dir"] / "cameras" / "colour.json").is_file():  # a run that refined its cameras
                row.update(pose_and_colour(sw, r["dir"]))
            if (r["dir"] / "carve" / "carve.json").is_file():
                row.update(carve_flags(sw, r["dir"]))
        rows.append(row)
    table = Table(title="held-out quality with real-rig faults (demo preset, every frame of 4 clean held-out cameras)")
    for c in ("subject", "capture", "remedies", "PSNR", "SSIM", "Δ PSNR vs clean", "edge PSNR", "minutes"):
        table.add_column(c)
    clean = {(x["subject"], x["remedies"]): x for x in rows if x["capture"] == "clean"}
    for x in rows:
        ref = clean.get((x["subject"], "defaults" if x["remedies"] != "none" else "none"))
        d = f"{x['psnr'] - ref['psnr']:+.2f}" if ref and x["capture"] != "clean" else ""
        table.add_row(x["subject"], x["capture"], x["remedies"], f"{x['psnr']:.2f}", f"{x['ssim']:.4f}", d,
                      f"{x['edge_psnr']:.2f}", f"{x['minutes']:.1f}")
    Console(width=160).print(table)
    extra = Table(title="what the defaults recovered on the faulty captures")
    for c in ("subject", "rot° mean injected → refined", "px err mean injected → refined",
              "gain err mean (uncorrected → corrected)", "most damaged mask flagged (rank)"):
        extra.add_column(c)
    for x in rows:
        if x["capture"] == "faulty" and "rotation_deg_mean_refined" in x:
            extra.add_row(f"{x['subject']} ({x['remedies']})", f"{x['rotation_deg_mean_injected']:.3f} → {x['rotation_deg_mean_refined']:.3f}",
                          f"{x['px_err_mean_injected']:.2f} → {x['px_err_mean_refined']:.2f}",
                          f"{100 * x.get('gain_err_mean_uncorrected', 0):.1f} % → {100 * x.get('gain_err_mean', 0):.1f} %",
                          f"{x.get('most_damaged_camera')}: {x.get('most_damaged_flagged')} ({x.get('most_damaged_rank')})")
    Console(width=160).print(extra)
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "python": platform.python_version(),
               "jobs": args.jobs, "note": "minutes with --jobs 2 count two runs sharing 2 cores"}
    Path(args.out).write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    if args.picture:
        picture(work, [Path(a).stem for a, _, _ in subjects], Path(args.picture))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
