"""A camera path drawn from above, over the capture's cameras (``fourd path show --plot``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fourd.io import write_png
from fourd.offline.paths import CameraPath


def plot_path(cp: CameraPath, out: str | Path, cameras=None, size: int = 480) -> Path:
    """Top view of ``cp`` (samples in blue, the start as a dot) over ``cameras`` (the capture's
    rig, in green) or, without them, over the path's own keyframes."""
    from fourd.datasets.preview import camera_frame, top_view

    samples = np.stack([cp.camera_at(t).centers[0].double().numpy() for t in cp.sample(200)])
    if cameras is not None:
        C, fwd, up = camera_frame(cameras)
        labels, cols = cameras.names, [(90, 200, 120)] * len(cameras)
    else:
        k = [kf.camera for kf in cp.keyframes]
        C = np.stack([c.centers[0].double().numpy() for c in k])
        fwd = np.stack([c.R[0, 2].double().numpy() for c in k])
        up = -np.stack([c.R[0, 1].double().numpy() for c in k]).mean(0)
        labels, cols = [f"k{i}" for i in range(len(k))], [(230, 200, 90)] * len(k)
    img = top_view(C, fwd, up, labels, cols, size, "camera path (top view)", samples,
                   "blue: path (dot = start)  green: capture cameras")
    return write_png(out, img)
