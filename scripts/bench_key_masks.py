"""Masks from a plain backdrop (`fourd data masks --key`, `fourd.ingest.masks.key_mask`) against the
true masks of the benchmark captures: each capture's images composited over black (a renderer's
film without alpha) and over a green screen shaded 0.8–1.1 top to bottom with sensor noise (σ 3/255).
The backdrop's colour is found from the borders (`--key auto`), per camera from 5 frames.

    python scripts/bench_key_masks.py --work outputs/bench_faults --out benchmarks/bench_key_masks.json

The captures are the clean ones `scripts/bench_faults.py` makes in --work (made here when missing).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

SUBJECTS = {"Fox": ("Fox.glb", "Walk"), "CesiumMan": ("CesiumMan.glb", None)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="outputs/bench_faults")
    ap.add_argument("--out", default="bench_key_masks.json")
    ap.add_argument("--every-camera", type=int, default=3, help="use every n-th camera")
    ap.add_argument("--every-frame", type=int, default=6, help="use every n-th frame")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_faults import make_captures

    from fourd.datasets.easyvolcap import EasyVolcapCapture
    from fourd.ingest.masks import key_mask, key_plate

    rng = np.random.default_rng(0)
    rows = []
    for subject, (asset, anim) in SUBJECTS.items():
        work = Path(args.work) / subject
        make_captures(work, asset, anim)
        src = EasyVolcapCapture(work / "clean")
        for backdrop in ("black", "green screen"):
            ious, t0 = [], time.perf_counter()
            for n in src.camera_names[::args.every_camera]:
                frames = src.frames[::args.every_frame]
                imgs = []
                for f in frames:
                    img, m = src.image(f, n).astype(np.float32), src.mask(f, n)[..., None]
                    if backdrop == "green screen":
                        H, W = m.shape[:2]
                        shade = np.linspace(0.8, 1.1, H)[:, None, None]
                        img = np.where(m, img, np.array([40.0, 170.0, 70.0]) * shade + rng.normal(0, 3, (H, W, 3)))
                    imgs.append(np.clip(img, 0, 255).astype(np.uint8))
                plate, lightness = key_plate(imgs[:5], None)
                for f, img in zip(frames, imgs):
                    a, b = key_mask(img, plate, lightness), src.mask(f, n)
                    ious.append(float((a & b).sum() / max((a | b).sum(), 1)))
            rows.append({"subject": subject, "backdrop": backdrop, "masks": len(ious), "iou_mean": float(np.mean(ious)),
                         "iou_min": float(np.min(ious)), "ms_per_mask": 1000 * (time.perf_counter() - t0) / len(ious)})
            print(f"{subject:10s} {backdrop:13s} IoU mean {rows[-1]['iou_mean']:.4f} min {rows[-1]['iou_min']:.4f} "
                  f"({len(ious)} masks, {rows[-1]['ms_per_mask']:.0f} ms each)", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": "2-core x86_64 VM, no GPU", "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
