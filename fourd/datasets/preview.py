"""Contact sheet of a capture: frames × cameras thumbnails with mask outlines, beside a
top-down drawing of the camera rig (held-out cameras in red)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fourd.datasets.base import MultiViewVideo
from fourd.io import write_png


def _evenly(items: list, n: int) -> list:
    if len(items) <= n:
        return list(items)
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in idx]


def top_view(centers: np.ndarray, forwards: np.ndarray, up: np.ndarray, labels: list[str], colors: list[tuple],
             size: int, title: str, polyline: np.ndarray | None = None, legend: str = "") -> np.ndarray:
    """A top-down drawing (looking against ``up``) of camera centres [N, 3] with view directions,
    and optionally a polyline [M, 3] (a camera path) in the same frame."""
    import cv2

    up = up / max(np.linalg.norm(up), 1e-9)
    a = np.cross(up, [1.0, 0, 0] if abs(up[0]) < 0.9 else [0, 0, 1.0])
    a /= np.linalg.norm(a)
    b = np.cross(up, a)
    flat = lambda X: np.stack([X @ a, X @ b], -1)  # noqa: E731
    P, D = flat(centers), flat(forwards)
    allp = P if polyline is None else np.concatenate([P, flat(polyline)])
    lo, hi = allp.min(0), allp.max(0)
    span = max(float((hi - lo).max()), 1e-6)
    pad = 0.12 * size
    to_px = lambda q: (pad + (q - (lo + hi) / 2) / span * (size - 2 * pad) + size / 2 - pad).astype(int)  # noqa: E731
    img = np.full((size, size, 3), 24, np.uint8)
    cv2.putText(img, title, (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (200, 200, 200), 1, cv2.LINE_AA)
    if polyline is not None:
        pts = np.array([to_px(q) for q in flat(polyline)], np.int32)
        cv2.polylines(img, [pts], False, (80, 170, 255), 1, cv2.LINE_AA)
        cv2.circle(img, tuple(map(int, pts[0])), 4, (80, 170, 255), -1, cv2.LINE_AA)
    for n, p, d, col in zip(labels, P, D, colors):
        q, q2 = to_px(p), to_px(p + d * span * 0.08)
        cv2.arrowedLine(img, tuple(map(int, q)), tuple(map(int, q2)), col, 1, cv2.LINE_AA, tipLength=0.3)
        cv2.circle(img, tuple(map(int, q)), 3, col, -1, cv2.LINE_AA)
        cv2.putText(img, n, (int(q[0]) + 4, int(q[1]) - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.3, col, 1, cv2.LINE_AA)
    if legend:
        cv2.putText(img, legend, (8, size - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (200, 200, 200), 1, cv2.LINE_AA)
    return img


def camera_frame(cams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centres, forward axes, mean up) of a camera rig, in world space."""
    C = cams.centers.double().cpu().numpy()
    fwd = cams.R[:, 2].double().cpu().numpy()
    up = cams.up_direction()
    return C, fwd, up


def rig_plot(video: MultiViewVideo, size: int) -> np.ndarray:
    """Top-down view of the capture's cameras (held-out ones in red)."""
    C, fwd, up = camera_frame(video.cameras)
    held = set(video.held_out)
    cols = [(230, 60, 60) if n in held else (90, 200, 120) for n in video.cameras.names]
    return top_view(C, fwd, up, video.cameras.names, cols, size, "camera rig (top view)",
                    legend="green: train  red: held out")


def contact_sheet(video: MultiViewVideo, out: str | Path, max_cameras: int = 24, max_frames: int = 4,
                  thumb: int = 112, columns: int = 12) -> Path:
    """Write a PNG: left the rig plot, right a grid with one block of rows per frame
    (cameras in order, ``columns`` to a row)."""
    import cv2

    names = _evenly(video.camera_names, max_cameras)
    frames = _evenly(video.frames, max_frames)
    label_h = 16
    cols = min(columns, len(names))
    rows_per_frame = -(-len(names) // cols)
    grid = np.full((len(frames) * rows_per_frame * (thumb + label_h) + 6 * len(frames), cols * thumb, 3), 12, np.uint8)
    for fi, f in enumerate(frames):
        for k, n in enumerate(names):
            r, c = fi * rows_per_frame + k // cols, k % cols
            if not video.has(f, n):  # a frame the camera dropped: its label alone, in red
                y0 = r * (thumb + label_h) + label_h + 6 * fi
                cv2.putText(grid, f"cam {n} f{f}: missing", (c * thumb + 3, y0 - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.33,
                            (255, 60, 60), 1, cv2.LINE_AA)
                continue
            v = video.view(f, n)
            h, w = v.image.shape[:2]
            s = thumb / max(h, w)
            tw, th = max(1, round(w * s)), max(1, round(h * s))
            t = cv2.resize(v.image, (tw, th), interpolation=cv2.INTER_AREA)
            if v.mask is not None:
                m = cv2.resize(v.mask.astype(np.uint8), (tw, th), interpolation=cv2.INTER_NEAREST)
                contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                cv2.drawContours(t, contours, -1, (60, 220, 255), 1)
            y0 = r * (thumb + label_h) + label_h + 6 * fi
            x0 = c * thumb + (thumb - tw) // 2
            grid[y0:y0 + th, x0:x0 + tw] = t
            col = (230, 90, 90) if n in video.held_out else (200, 200, 200)
            cv2.putText(grid, f"cam {n} f{f}", (c * thumb + 3, y0 - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.33, col, 1,
                        cv2.LINE_AA)
    side = max(256, min(grid.shape[0], 480))
    plot = rig_plot(video, side)
    H = max(grid.shape[0], side)
    sheet = np.full((H, side + 8 + grid.shape[1], 3), 12, np.uint8)
    sheet[:side, :side] = plot
    sheet[:grid.shape[0], side + 8:] = grid
    return write_png(out, sheet)


def log_info(info: dict) -> None:
    """A capture's summary (:meth:`MultiViewVideo.info`) as a table on the console."""
    from rich.table import Table

    from fourd.console import log

    t = Table(title=f"capture {info['path']}", show_header=False)
    for k, v in info.items():
        if k == "left_out":  # name: reason — the names here (the reasons were said on load)
            v = ", ".join(v) or "none"
        if k == "gaps":  # camera: frames it lacks (its views of them are skipped)
            v = ", ".join(f"{n}: {c} frame{'s' * (c != 1)}" for n, c in v.items()) or "none"
        t.add_row(k, f"{v:.1%}" if k == "mask_coverage" and v is not None else str(v))
    log(t)
