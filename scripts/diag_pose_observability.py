"""How far can a camera's turn be told from a sideways shift of its centre, from images of the subject?

#15 asks the refined cameras' rotation error to fall to a third of the injected one. `fourd data
degrade` moves each training camera's centre too (0.2 % of its distance to the subject, in a random
direction) and, seen from 2.5–3 m, a sideways shift moves a subject of about a metre across the
image almost as a turn does: the two differ only by parallax across the subject's depth. This
script measures that, with the *true* surface (the synthetic capture's posed mesh) and the true
cameras, no training involved: for each training camera of a degraded capture it fits to the
true camera's image of the surface

* an image shift (a turn about the camera's x and y axes), a full turn, and a turn and centre
  shift (6 degrees of freedom), to the exact image positions — the floor of each kind of
  correction;
* the 6-DoF fit again with a measurement error added to the image positions: independent noise
  (it averages out over thousands of points), and a bias shaped like parallax (proportional to
  the point's depth about the subject's mean depth, one direction per camera, ``bias`` px at one
  standard deviation of depth) — the error a measurement from an approximate surface (the carved
  hull, a partly trained model) makes, which is what a turn and a centre shift are told apart by.

Rows: rotation error (degrees, as ``bench_faults.py`` reports it: after the one global rotation
that best aligns the rigs), centre error (fraction of the rig radius), mean image error (px) of the
fitted cameras against the true ones.

    python scripts/diag_pose_observability.py --out benchmarks/pose_observability.json
    python scripts/diag_pose_observability.py --oracle-captures   # also write WORK/SUBJECT/faulty_{truepose,turnfit}

``--oracle-captures`` writes two copies of the degraded capture (images hard-linked) whose training
cameras' poses are the true ones (``faulty_truepose``) or the given centre with the best turn
(``faulty_turnfit``), every other fault kept: trained with ``bench_faults.py --one``, they tell how
much of the every-fault gap the cameras account for (`benchmarks/bench_faults_s46.json`).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np

BIASES = (0.01, 0.02, 0.03, 0.05, 0.1)


def _project(K: np.ndarray, R: np.ndarray, C: np.ndarray, X: np.ndarray) -> np.ndarray:
    x = (X - C) @ R.T
    return np.stack([K[0, 0] * x[:, 0] / x[:, 2] + K[0, 2], K[1, 1] * x[:, 1] / x[:, 2] + K[1, 2]], 1)


def _fit(K, R0, C0, X, obs, dof: int):
    """The camera (R, C) near (R0, C0) whose image of X best matches obs: ``dof`` 2 (turn about x, y),
    3 (any turn) or 6 (turn and centre shift)."""
    from scipy.optimize import least_squares
    from scipy.spatial.transform import Rotation

    def camera(p):
        w = np.r_[p[:3], np.zeros(3 - min(len(p), 3))]
        return Rotation.from_rotvec(w).as_matrix() @ R0, C0 + (R0.T @ p[3:6] if dof == 6 else 0.0)

    p = least_squares(lambda p: (_project(K, *camera(p), X) - obs).ravel(), np.zeros(dof), x_scale=1e-3).x
    return camera(p)


def _setup(work: Path, capture: str, frames, samples: int, seed: int):
    """(training camera names, true cameras, given cameras, [N, 3] points of the true posed mesh on
    ``frames``, a random ``samples`` of them)."""
    from fourd.datasets.easyvolcap import read_easyvolcap_cameras
    from fourd.datasets.synth import load_ground_truth

    names = list(json.loads((work / capture / "faults.json").read_text())["cameras"])
    true, given = read_easyvolcap_cameras(work / "clean"), read_easyvolcap_cameras(work / capture)
    X = np.concatenate([load_ground_truth(work / "clean", f)[0] for f in frames]).astype(np.float64)
    return names, true, given, X[np.random.default_rng(seed).choice(len(X), min(len(X), samples), replace=False)]


def oracle_captures(work: Path, capture: str = "faulty", samples: int = 20000, seed: int = 0) -> None:
    """WORK/<capture>_truepose and WORK/<capture>_turnfit (see the module docstring)."""
    import shutil
    import subprocess

    import torch

    from fourd.datasets.easyvolcap import write_easyvolcap_cameras

    names, true, given, X = _setup(work, capture, range(0, 30, 3), samples, seed)
    for tag in ("truepose", "turnfit"):
        out = work / f"{capture}_{tag}"
        if out.exists():
            shutil.rmtree(out)
        subprocess.run(["cp", "-al", str(work / capture), str(out)], check=True)  # images hard-linked
        R, T = given.R.clone().double(), given.T.clone().double()
        for n in names:
            i, j = given.index(n), true.index(n)
            if tag == "truepose":
                R[i], T[i] = true.R[j].double(), true.T[j].double()
                continue
            Kt, Rt, Ct = true.K[j].double().numpy(), true.R[j].double().numpy(), true.centers[j].double().numpy()
            Cg = given.centers[i].double().numpy()
            Rn, _ = _fit(given.K[i].double().numpy(), given.R[i].double().numpy(), Cg, X, _project(Kt, Rt, Ct, X), 3)
            R[i], T[i] = torch.from_numpy(Rn), torch.from_numpy(-Rn @ Cg)
        (out / "extri.yml").unlink()  # a link to the degraded capture's: written anew, not through it
        (out / "intri.yml").unlink()
        fields = {k: getattr(given, k) for k in given.__dataclass_fields__}
        write_easyvolcap_cameras(out, type(given)(**{**fields, "R": R.to(given.R.dtype), "T": T.to(given.T.dtype)}))
        print(f"wrote {out}")


def measure(work: Path, capture: str = "faulty", samples: int = 20000, seed: int = 0) -> dict:
    from fourd.datasets import open_dataset
    from fourd.ingest.calibrate import compare_rigs

    frames = sorted({int(f) for f in np.linspace(0, len(open_dataset(work / "clean").frames) - 1, 10).round()})
    names, true, given, X = _setup(work, capture, frames, samples, seed)

    def cam(c, n):
        i = c.index(n)
        return c.K[i].double().numpy(), c.R[i].double().numpy(), c.centers[i].double().numpy()

    kinds = [("as given", 0, "none", 0.0), ("image shift, exact", 2, "none", 0.0), ("turn, exact", 3, "none", 0.0),
             ("turn + centre, exact", 6, "none", 0.0), ("turn + centre, 0.3 px noise", 6, "noise", 0.3)]
    kinds += [(f"turn + centre, {b} px parallax-shaped bias", 6, "bias", b) for b in BIASES]
    ti = [true.index(n) for n in names]
    Rt_all, Ct_all = true.R[ti].double().numpy(), true.centers[ti].double().numpy()
    rows = []
    for label, dof, err, size in kinds:
        rng = np.random.default_rng(seed + 1)  # the same draws for every fit of a kind
        Rs, Cs, px = [], [], []
        for n in names:
            (Kt, Rt, Ct), (Kg, Rg, Cg) = cam(true, n), cam(given, n)
            truth = _project(Kt, Rt, Ct, X)
            obs = truth
            if err == "noise":
                obs = truth + rng.normal(scale=size, size=truth.shape)
            elif err == "bias":
                z = ((X - Ct) @ Rt.T)[:, 2]
                d = rng.normal(size=2)
                obs = truth + size * ((z - z.mean()) / z.std())[:, None] * (d / np.linalg.norm(d))
            R, C = (Rg, Cg) if dof == 0 else _fit(Kg, Rg, Cg, X, obs, dof)
            Rs.append(R)
            Cs.append(C)
            px.append(float(np.linalg.norm(_project(Kg, R, C, X) - truth, axis=1).mean()))
        e = compare_rigs(np.stack(Rs), np.stack(Cs), Rt_all, Ct_all)
        rows.append({"fit": label, "dof": dof, "measurement_error": err, "error_px": size,
                     "rotation_deg_mean": e["rotation_deg_mean"], "centre_err_mean": e["center_err_mean"],
                     "image_err_px_mean": float(np.mean(px))})
    depth = np.array([((X - c) @ r.T)[:, 2] for r, c in zip(Rt_all, Ct_all)])
    return {"rows": rows, "depth_rel_std": float((depth.std(1) / depth.mean(1)).mean())}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", default="Fox.glb:Walk,CesiumMan.glb:", help="asset:animation, comma separated")
    ap.add_argument("--work", default="outputs/bench_faults", help="where bench_faults.py keeps its captures")
    ap.add_argument("--capture", default="faulty", help="the degraded capture in WORK/SUBJECT/ to measure")
    ap.add_argument("--out", default="pose_observability.json")
    ap.add_argument("--oracle-captures", action="store_true", help="also write the captures with oracle cameras")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_faults import make_captures
    from rich.console import Console
    from rich.table import Table

    out = {"machine": {"platform": platform.platform(), "python": platform.python_version()}, "subjects": {}}
    for asset, _, anim in (s.partition(":") for s in args.subjects.split(",")):
        work = Path(args.work) / Path(asset).stem
        make_captures(work, asset, anim or None)
        if args.oracle_captures:
            oracle_captures(work, args.capture)
        res = measure(work, args.capture)
        out["subjects"][Path(asset).stem] = res
        t = Table(title=f"{Path(asset).stem} ({args.capture}): refined camera against the true one "
                        f"(subject depth spread {100 * res['depth_rel_std']:.1f} % of distance)")
        for c in ("fit", "rotation error °", "centre error", "image error px"):
            t.add_column(c)
        for r in res["rows"]:
            t.add_row(r["fit"], f"{r['rotation_deg_mean']:.4f}", f"{r['centre_err_mean']:.5f}", f"{r['image_err_px_mean']:.3f}")
        Console(width=140).print(t)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
