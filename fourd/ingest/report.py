"""``ingest_report.png``: for a few cameras, a capture frame with its mask outline and a board
frame with detected corners (green) and the calibrated rig's reprojection of them (red), plus the
recovered rig from above."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _label(img: np.ndarray, text: str) -> np.ndarray:
    import cv2

    img = img.copy()
    cv2.putText(img, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def reprojected_corners(cal, cam: int, frame: int, ids: np.ndarray, board) -> np.ndarray:
    """Pixel positions (OpenCV convention) of board corners ``ids`` at ``frame`` through camera ``cam``."""
    import cv2

    Rb, tb = cal.board_poses[frame]
    X = board.corners()[ids] @ Rb.T + tb
    uv, _ = cv2.projectPoints(X, cv2.Rodrigues(cal.R[cam])[0], cal.T[cam], cal.K[cam], cal.D[cam])
    return uv.reshape(-1, 2)


def ingest_picture(out: Path, cams, names: list[str], keep: list[int], ext: str, cal, board_snap: dict,
                   mask_scores: dict, tile: int = 320, max_cameras: int = 4) -> Path:
    import cv2

    from fourd.datasets.codecs import decode_image
    from fourd.datasets.preview import _evenly, camera_frame, top_view
    from fourd.io import write_png

    chosen = _evenly(names, max_cameras)
    frames = sorted({0, len(keep) // 2, max(len(keep) - 1, 0)})
    rows = []
    for n in chosen:
        tiles = []
        for k in frames:
            img = decode_image((out / "images" / n / f"{k:06d}{ext}").read_bytes(), n)
            s = tile / max(img.shape[:2])
            small = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
            mp = out / "masks" / n / f"{k:06d}.png"
            if mp.is_file():
                m = decode_image(mp.read_bytes(), str(mp), grayscale=True)
                m = cv2.resize(m, small.shape[1::-1], interpolation=cv2.INTER_AREA) > 127
                cs, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
                cv2.drawContours(small, cs, -1, (255, 255, 255), 2, cv2.LINE_AA)
                cv2.drawContours(small, cs, -1, (20, 200, 20), 1, cv2.LINE_AA)
            tiles.append(_label(small, f"cam {n} frame {k}"))
        if cal is not None and n in board_snap:
            j, img = board_snap[n]
            s = tile / max(img.shape[:2])
            img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
            ci = cal.names.index(n)
            obs = [o for o in cal.observations if o[0] == ci and o[1] == j]
            if obs:
                _, _, ids, uv = obs[0]
                at = lambda p, s=s: (round((p[0] + 0.5) * s - 0.5), round((p[1] + 0.5) * s - 0.5))
                for p in uv:
                    cv2.circle(img, at(p), 4, (40, 255, 40), 1, cv2.LINE_AA)
                for p in reprojected_corners(cal, ci, j, ids, cal.board_spec):
                    x, y = at(p)
                    cv2.line(img, (x - 3, y), (x + 3, y), (255, 40, 40), 1)
                    cv2.line(img, (x, y - 3), (x, y + 3), (255, 40, 40), 1)
            rms = cal.rms_px.get(n, float("nan"))
            tiles.append(_label(img, f"board, frame {j}, rms {rms:.2f} px"))
        h = max(t.shape[0] for t in tiles)
        tiles = [np.pad(t, ((0, h - t.shape[0]), (0, tile - t.shape[1]), (0, 0))) for t in tiles]
        rows.append(np.concatenate(tiles, 1))
    w = max(r.shape[1] for r in rows)
    grid = np.concatenate([np.pad(r, ((0, 0), (0, w - r.shape[1]), (0, 0))) for r in rows], 0)
    C, fwd, up = camera_frame(cams)
    bad = {f["camera"] for f in (mask_scores or {}).get("flagged", [])}
    cols = [(230, 60, 60) if n in bad else (90, 200, 120) for n in cams.names]
    side = min(grid.shape[0], 2 * tile)
    rig = top_view(C, fwd, up, cams.names, cols, side, "recovered rig (top view)",
                   legend="red: masks disagree with the hull")
    rig = np.pad(rig, ((0, grid.shape[0] - side), (0, 0), (0, 0)), constant_values=24)
    return write_png(out / "ingest_report.png", np.concatenate([grid, rig], 1))

