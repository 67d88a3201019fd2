"""Benchmark mesh fitting (the DIB-R / pytorch3d tutorial task) on one frame of a capture, and the
mesh rasterizer's visibility paths side by side.

    python scripts/bench_fit_mesh.py --out benchmarks/bench_fit_mesh.json [--presets fourd kaolin pytorch3d]
        [--iterations 2000] [--dataset demo] [--frame 0]

Fit rows: held-out + training cameras' hard mask IoU, PSNR of the unlit textured render, Chamfer
distance to the capture's ground-truth mesh (synthetic captures), ms per iteration.
Raster rows: one level-4 icosphere-like mesh at 128² and 512²: torch hard visibility search vs
OpenGL face ids (llvmpipe here), each followed by the same differentiable barycentrics.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch
from timing import best_of


def raster_rows(repeat: int = 3) -> list[dict]:
    from fourd.gen.softras import MeshRasterSettings, rasterize_mesh
    from fourd.structures.cameras import Cameras
    from fourd.structures.mesh import icosphere

    rows = []
    m = icosphere(4, 1.0)
    m = m.with_verts(m.verts * torch.tensor([1.0, 0.6, 0.8]))
    try:
        from fourd.gl.face_ids import GLFaceIds

        gl = GLFaceIds(m.faces)
    except Exception as e:  # noqa: BLE001 - no GL here: report torch rows only
        print(f"no GL face ids ({e})")
        gl = None
    for size in (128, 512):
        cam = Cameras.look_at([0.5, 0.8, 3.0], [0, 0, 0], H=size, W=size)
        row = {"faces": m.n_faces, "size": size}
        for name, fn in (("torch_hard_ms", lambda: rasterize_mesh(m.verts, m.faces, cam, MeshRasterSettings(sigma=0))),
                         ("torch_soft_ms", lambda: rasterize_mesh(m.verts, m.faces, cam, MeshRasterSettings(sigma=1))),
                         ("gl_ids_ms", (lambda: rasterize_mesh(m.verts, m.faces, cam, MeshRasterSettings(sigma=0),
                                                               face_ids=gl(m.verts, cam))) if gl else None)):
            if fn is None:
                continue
            fn()  # warm-up
            row[name] = 1000 * best_of(fn, repeat)[0]
        if "gl_ids_ms" in row:
            row["gl_speedup_vs_torch_hard"] = row["torch_hard_ms"] / row["gl_ids_ms"]
        rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="demo")
    ap.add_argument("--frame", type=int, default=0)
    ap.add_argument("--presets", nargs="+", default=["fourd", "kaolin", "pytorch3d"])
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override settings of every preset run (e.g. size=192); the row is named after them")
    ap.add_argument("--append", action="store_true", help="keep the other rows already in --out")
    ap.add_argument("--work", default="outputs/bench_fit_mesh")
    ap.add_argument("--out", default="benchmarks/bench_fit_mesh.json")
    args = ap.parse_args()
    from fourd.gen.fit_mesh import fit_mesh, preset_config

    torch.set_flush_denormal(True)
    overrides = {}
    for kv in args.set:
        k, v = kv.split("=", 1)
        overrides[k] = json.loads(v) if v[:1].isdigit() or v[:1] in "-[{" else v
    tag = "".join(f" {k}={v}" for k, v in overrides.items())
    old = json.loads(Path(args.out).read_text()) if args.append and Path(args.out).is_file() else None
    result = {"machine": {"cpu_count": torch.get_num_threads(), "platform": platform.platform()},
              "raster": old["raster"] if old else raster_rows(),
              "fits": [f for f in (old or {}).get("fits", []) if f["preset"] not in {n + tag for n in args.presets}]}
    for name in args.presets:
        cfg = preset_config(name, dataset=args.dataset, frame=args.frame, iterations=args.iterations,
                            out=Path(args.work) / (name + tag.replace(" ", "_")), **overrides)
        r = fit_mesh(cfg)
        result["fits"].append({"preset": name + tag, **{k: r[k] for k in (
            "iou", "iou_min", "psnr", "chamfer", "chamfer_percent_of_height", "ms_per_iteration", "seconds",
            "views", "eval_views", "faces")}, "out": str(cfg.out)})
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"{'preset':<22} {'IoU':>6} {'IoU min':>8} {'PSNR':>6} {'Chamfer %h':>10} {'ms/it':>7}")
    for f in result["fits"]:
        print(f"{f['preset']:<22} {f['iou']:6.3f} {f['iou_min']:8.3f} {f['psnr']:6.2f} "
              f"{f['chamfer_percent_of_height'] or float('nan'):10.2f} {f['ms_per_iteration']:7.0f}")
    print(f"\n{'faces':>6} {'size':>5} {'torch hard':>10} {'torch soft':>10} {'GL ids':>8} {'GL speedup':>10}")
    for r in result["raster"]:
        print(f"{r['faces']:6d} {r['size']:5d} {r['torch_hard_ms']:10.1f} {r['torch_soft_ms']:10.1f} "
              f"{r.get('gl_ids_ms', float('nan')):8.1f} {r.get('gl_speedup_vs_torch_hard', float('nan')):10.1f}")
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
