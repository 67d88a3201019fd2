"""A picture of a carve: a held-out camera's image beside the carved points of the same frame
rendered from that camera through the point renderer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fourd.io import write_png


def carve_picture(video, seq, report: dict, path: str | Path) -> Path:
    """Real image | carved points, for the middle frame of ``seq`` (``report``: the carve's
    carve.json, for the point spacing)."""
    import cv2

    from fourd.render.preview import render_points

    cam_name = (video.held_out or video.camera_names)[0]
    mine = [f for f in seq.frames if video.has(f, cam_name)] or list(seq.frames)
    f = mine[len(mine) // 2]
    view = video.view(f, cam_name)
    spacing = next(s["spacing"] for s in report["frames"] if s["frame"] == f)
    img = render_points(seq.frame(f), seq.attribute("colors", f), 0.8 * spacing, view.camera)
    both = np.concatenate([view.image, img], 1)
    for x, label in ((8, f"camera {cam_name} (held out), frame {f}"), (view.image.shape[1] + 8, "carved points")):
        cv2.putText(both, label, (x, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (230, 230, 230), 1, cv2.LINE_AA)
    return write_png(path, both)
