"""A ZJU-MoCap sequence folder written from a capture, as the dataset ships one (test helper)."""

import os

import cv2
import numpy as np

from fourd.structures.cameras import K_to_opencv


def write_zju(src, dst, mask_dir="mask_cihp"):
    """``src`` written as ZJU-MoCap ships a sequence: camera folders Camera_B<i>, part-id masks (14 for
    the subject, as a human parser labels a torso), annots.npy with T in millimetres."""
    cams = src.cameras
    names = [f"Camera_B{i + 1}" for i in range(len(cams))]
    ims = []
    for f in src.frames:
        row = []
        for n, own in zip(names, src.camera_names):
            data, where = src.image_bytes(f, own)
            rel = f"{n}/{f:06d}{os.path.splitext(where)[1]}"
            (dst / n).mkdir(parents=True, exist_ok=True)
            (dst / rel).write_bytes(data)
            (dst / mask_dir / n).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(dst / mask_dir / n / f"{f:06d}.png"), src.mask(f, own).astype(np.uint8) * 14)
            row.append(rel)
        ims.append({"ims": row, "kpts2d": np.zeros((len(row), 25, 3))})
    annots = {"cams": {"K": [K_to_opencv(k) for k in cams.K.double().numpy()],
                       "R": [r for r in cams.R.double().numpy()],
                       "T": [t.reshape(3, 1) * 1000.0 for t in cams.T.double().numpy()],
                       "D": [d.reshape(5, 1) for d in cams.D.double().numpy()]},
              "ims": ims}
    np.save(dst / "annots.npy", np.array(annots, dtype=object), allow_pickle=True)
    return names


class RunsCode:
    """Unpickling this calls os.mkdir(marker): what np.load(allow_pickle=True) would do with a file
    holding it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)
