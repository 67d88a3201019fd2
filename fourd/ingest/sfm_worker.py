"""Child process of :mod:`fourd.ingest.sfm`: run COLMAP on WORK/images/<camera>/*.png (one camera
per folder) and write WORK/sfm.json. Imports pycolmap and numpy only (no OpenCV: see sfm.py).

    python -m fourd.ingest.sfm_worker WORK MODEL
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(work: str, model: str) -> None:
    import numpy as np
    import pycolmap

    # the same capture gives the same calibration: RANSAC's samples seeded, and one thread everywhere —
    # COLMAP's threads share its random generators and Ceres sums residuals in thread order, so with
    # more than one the poses differ run to run (by over a degree for a camera that sees few points)
    pycolmap.set_random_seed(0)
    work = Path(work)
    images = work / "images"
    db = work / "database.db"
    ro = pycolmap.ImageReaderOptions()
    ro.camera_model = model
    pycolmap.extract_features(db, images, camera_mode=pycolmap.CameraMode.PER_FOLDER, reader_options=ro,
                              extraction_options=pycolmap.FeatureExtractionOptions(num_threads=1),
                              device=pycolmap.Device.cpu)
    pycolmap.match_exhaustive(db, matching_options=pycolmap.FeatureMatchingOptions(num_threads=1),
                              device=pycolmap.Device.cpu)
    n_images = len([p for p in images.iterdir() if p.is_dir()])
    # incremental mapping is the more accurate when it registers every camera; a ring of inward-
    # looking cameras often splits it, and global mapping (GLOMAP) then places them all
    best, mapper = None, None
    for name, run, opts in (("incremental", pycolmap.incremental_mapping, pycolmap.IncrementalPipelineOptions),
                            ("global", pycolmap.global_mapping, pycolmap.GlobalPipelineOptions)):
        (work / name).mkdir(exist_ok=True)
        try:
            recs = run(db, images, work / name, opts(num_threads=1, random_seed=0))
        except Exception as e:  # noqa: BLE001 - a failed mapper leaves the other to try
            print(f"{name} mapping failed: {e}", file=sys.stderr)
            continue
        if recs:
            rec = max(recs.values(), key=lambda r: r.num_reg_images())
            if best is None or rec.num_reg_images() > best.num_reg_images():
                best, mapper = rec, name
            if best.num_reg_images() == n_images:
                break
    out = {"cameras": {}, "points": 0, "mean_reproj_px": None, "mapper": mapper}
    if best is not None:
        rec = best
        out["points"] = int(rec.num_points3D())
        out["mean_reproj_px"] = float(rec.compute_mean_reprojection_error())
        for im in rec.images.values():
            if not im.has_pose:
                continue
            cam = rec.cameras[im.camera_id]
            T = im.cam_from_world()
            R = np.asarray(T.rotation.matrix())
            t = np.asarray(T.translation)
            errs = []
            for p in im.points2D:
                if p.has_point3D():
                    X = rec.points3D[p.point3D_id].xyz
                    uv = cam.img_from_cam(R @ X + t)
                    errs.append(float(np.linalg.norm(np.asarray(uv).reshape(-1)[:2] - np.asarray(p.xy))))
            out["cameras"][im.name.split("/")[0]] = {
                "model": cam.model.name, "params": [float(x) for x in cam.params],
                "width": int(cam.width), "height": int(cam.height), "R": R.tolist(), "t": t.tolist(),
                "observations": len(errs), "reproj_px": float(np.sqrt(np.mean(np.square(errs)))) if errs else None,
            }
    (work / "sfm.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
