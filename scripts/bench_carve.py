"""Benchmark carving: fourd (torch, coarse-to-fine and dense) vs Open3D's VoxelGrid.carve_silhouette,
side by side in one run on the same cameras, masks and grid; plus accuracy against ground truth.

    python scripts/bench_carve.py --out bench_carve.json [--dataset demo] [--resolutions 128 256]

Speed rows use Open3D's rule (a voxel survives a camera when the bilinearly interpolated mask is
positive at any of its 8 corners; all cameras must agree) so both sides compute the same hull; 'voxels_kept' shows it.
Accuracy rows use fourd's defaults (voxel centres, voting) through the full carve pipeline.
"""

from __future__ import annotations

import argparse
import json
import platform

import numpy as np
import torch
from timing import best_of


def open3d_carve(grid, cams, masks):
    import open3d as o3d

    from fourd.structures.cameras import K_to_opencv


    vg = o3d.geometry.VoxelGrid.create_dense(grid.lo.double().numpy(), np.zeros(3), grid.size,
                                            *(float(n) * grid.size for n in grid.shape))
    for i, m in enumerate(masks):
        p = o3d.camera.PinholeCameraParameters()
        K = K_to_opencv(cams.K[i].numpy())  # Open3D interpolates masks with pixel centres at integers
        H, W = m.shape
        p.intrinsic = o3d.camera.PinholeCameraIntrinsic(W, H, K[0, 0], K[1, 1], K[0, 2], K[1, 2])
        E = np.eye(4)
        E[:3, :3], E[:3, 3] = cams.R[i].double().numpy(), cams.T[i].double().numpy()
        p.extrinsic = E
        vg.carve_silhouette(o3d.geometry.Image(m.astype(np.float32)), p, keep_voxels_outside_image=False)
    return vg


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="demo")
    ap.add_argument("--frame", type=int, default=0)
    ap.add_argument("--resolutions", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--accuracy-frames", type=int, default=3, help="frames carved for the accuracy rows")
    ap.add_argument("--out", default="bench_carve.json")
    args = ap.parse_args()
    torch.set_flush_denormal(True)

    from rich.console import Console
    from rich.table import Table

    from fourd.carve.hull import Grid, HullSettings, MaskStack, carve_coarse_to_fine, carve_dense
    from fourd.carve.run import frame_views
    from fourd.carve.volume import find_bounds
    from fourd.datasets import open_dataset

    video = open_dataset(args.dataset)
    names = video.camera_names
    cams, masks, _ = frame_views(video, args.frame, names, 4096)
    lo, hi = find_bounds([(cams, masks)], settings=HullSettings(vote=1.0))
    # a cube around the subject, as a user of Open3D would set up
    c, h = (lo + hi) / 2, (hi - lo).max() / 2
    lo, hi = c - h, c + h
    stack = MaskStack.build(cams, masks)
    rows = []
    o3d_rule = HullSettings(vote=1.0, min_views=1, sample="open3d")
    for res in args.resolutions:
        grid = Grid.from_bounds(lo, hi, res)
        t_o3d, vg = best_of(lambda: open3d_carve(grid, cams, masks), args.repeat)
        kept_o3d = len(vg.get_voxels())
        t_c2f, occ = best_of(lambda: carve_coarse_to_fine(grid, stack, o3d_rule), args.repeat)
        methods = [("open3d_carve_silhouette", t_o3d, kept_o3d), ("fourd_coarse_to_fine", t_c2f, int(occ.sum()))]
        if res <= 64:
            t_dense, occ_d = best_of(lambda: carve_dense(grid, stack, o3d_rule), 1)
            methods.append(("fourd_dense_reference", t_dense, int(occ_d.sum())))
        t_center, occ_c = best_of(lambda: carve_coarse_to_fine(grid, stack, HullSettings()), args.repeat)
        methods.append(("fourd_coarse_to_fine_vote0.9_centres", t_center, int(occ_c.sum())))
        for m, t, k in methods:
            rows.append({"method": m, "cameras": len(names), "resolution": res, "seconds": t, "voxels_kept": k,
                         "speedup_vs_open3d": t_o3d / t, "kept_vs_open3d": k / max(kept_o3d, 1) - 1})

    acc = accuracy(video, args.accuracy_frames)
    meta = {"machine": f"{platform.machine()} {torch.get_num_threads()} threads, {platform.processor() or 'cpu'}",
            "dataset": str(video.path), "frame": args.frame, "accuracy": acc}
    con = Console()
    t = Table(title=f"carving, {len(names)} cameras, frame {args.frame}")
    for col in ("method", "res", "seconds", "voxels kept", "× vs Open3D", "kept vs Open3D"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["method"], str(r["resolution"]), f"{r['seconds']:.3f}", str(r["voxels_kept"]),
                  f"{r['speedup_vs_open3d']:.1f}", f"{r['kept_vs_open3d']:+.2%}")
    con.print(t)
    con.print(json.dumps(acc, indent=2))
    with open(args.out, "w") as f:
        json.dump({"rows": rows, "meta": meta}, f, indent=2)
    con.print(f"wrote {args.out}")


def accuracy(video, n_frames: int) -> dict:
    """Full pipeline with the demo preset: Chamfer to the GT mesh (in subject heights) and IoU."""
    from pathlib import Path

    from fourd.carve.metrics import chamfer_to_mesh
    from fourd.carve.run import carve_sequence
    from fourd.config import CarveConfig, apply_overrides, preset
    from fourd.datasets.synth import load_ground_truth

    root = Path(video.path)
    if not (root / "gt").is_dir():
        return {}
    frames = video.frames[:: max(1, len(video.frames) // n_frames)][:n_frames]
    out = {}
    import dataclasses

    for name, cfg in (("demo_preset", preset("demo", "carve")),
                      ("defaults_vote0.9", apply_overrides(CarveConfig(), {"points": 32768}))):
        overrides = {k: v for k, v in dataclasses.asdict(cfg).items() if getattr(CarveConfig(), k) != v}
        seq, rep = carve_sequence(video, cfg, frames=frames)
        ch = []
        for f in frames:
            v, fc = load_ground_truth(root, f)
            h = float(v[:, 1].max() - v[:, 1].min())
            c = chamfer_to_mesh(seq.frame(f).numpy(), v, fc)
            ch.append({k: val / h for k, val in c.items()})
        out[name] = {"config": overrides, "iou_mean": rep["iou_mean"],
                     "iou_min": min(s["iou_min"] for s in rep["frames"]),
                     "seconds_per_frame": float(np.mean([s["seconds"] for s in rep["frames"]])),
                     **{f"{k}_over_height": float(np.mean([c[k] for c in ch])) for k in ch[0]}}
    return out


if __name__ == "__main__":
    main()
