"""Align each training camera's images with the carved hull's silhouette.

The rig check (:mod:`fourd.train.bundle`) joins a camera to its nearest neighbours only, and the
colour alignment (:mod:`fourd.train.surface_align`) compares a camera with the few cameras that see
the same surface point, again its neighbours. Neither sees a mode that turns every camera of the
ring the same way about its own centre: a group of neighbouring cameras turned alike reads the
surface consistently, as if it had moved. Such a common turn is not a motion of the whole rig
(that would also move the centres), so the held-out cameras see the model trained through it
misregistered; on `fourd data degrade`'s captures it is most of what the two checks leave
(Fox: 0.23 of the 0.57 px the rig check leaves, CesiumMan 0.25 of 0.54).

Silhouettes see it: cameras across the ring see the same rim of the subject from opposite sides,
so when each camera's view is shifted sideways its mask pokes out of the hull the others carve on
one side and sits inside it on the other. Per camera, over the mask outlines of several frames,
the signed distance of each outline pixel from the hull's silhouette is fitted as ``c + n·t``
(``n`` the silhouette's outward normal there): ``c`` is how much fatter the hull is than the
subject (carving tolerance, voxels), ``t`` the image shift that would put the hull where the mask
is. The camera is turned by ``damping`` × ``t``. On the test captures with every fault (after the
rig check) the fitted shifts correlate with the true misregistration at −0.9 (x) and −0.8 (y) and
average 0.41 px (Fox) and 0.37 px (CesiumMan); moving by t takes the cameras' mean image offset
from 0.55 to 0.28 px (Fox) and from 0.54 to 0.29 px (CesiumMan). On the exact rigs the fitted
shifts are noise of 0.13 and 0.10 px on the average, so cameras are moved only when the rig's
shifts average ACCEPT_PX or more.

What it leaves (every fault: 0.29 / 0.25 px per camera, Fox / CesiumMan) is an image shift no
longer correlated with the injected one — its floor. Redoing only this step on finished runs'
carves, the true-surface image error after it (every fault, seed 0; 0.316 / 0.301 px as made):
the hull's fatness fitted per frame 0.310 / 0.297, 20 frames instead of 10 0.321 / 0.310, a turn
about the optical axis fitted too 0.319 / 0.324 (the roll it finds on turns-only captures is
noise: 0.038° → 0.035°), outline pixels within 2 or 6 px 0.338 / 0.307 and 0.316 / 0.313, each
camera against the hull the other cameras carve 0.335 / 0.287 (averaged with this fit 0.302 /
0.285); moving the cameras 1.2 × t 0.309 / 0.278 (turns only 0.312 / 0.296 → 0.283 / 0.271: the
camera's own cone bounds the hull where it is off inwards, so the fit sees less than the whole
shift), which trained bought nothing held-out (34.04 → 33.95 dB, 29.08 → 29.12) and turned the
cameras further from their true rotation (0.0705 → 0.0718°, 0.0687 → 0.0709°): not kept.
"""

from __future__ import annotations

import numpy as np

from fourd.console import log
from fourd.train.surface_align import (
    AlignResult,  # the shifts' record (off_voxels: the mean fitted shift in px here)
)

ACCEPT_PX = 0.25  # the cameras' mean fitted shift (px) from which they are moved (exact rigs: 0.10–0.13, every fault: 0.37–0.41)
REACH_PX = 4.0  # outline pixels farther than this from the hull's silhouette (a blob, a hole) are left out
MIN_OUTLINE = 500  # a camera is measured on this many outline pixels or more


class SilhouetteResult(AlignResult):
    """:class:`~fourd.train.surface_align.AlignResult` whose cameras are moved when the fitted shifts
    average ACCEPT_PX or more: the outline offsets' own pixel noise (0.7–1 px mean absolute) hides
    a few tenths of a pixel's improvement in their mean, so that is not the test here."""

    @property
    def improves(self) -> bool:
        return any(c.get("moved") for c in self.per_camera.values())


def fit_shift(silhouette: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """Rows ``[1, nx, ny, offset]`` for the outline pixels of ``mask``: the signed distance (px,
    positive outside) of each from the ``silhouette``'s outline and the silhouette's outward normal
    there; None when either is empty."""
    import cv2

    s = np.asarray(silhouette, np.uint8)
    m = np.asarray(mask, np.uint8)
    if not s.any() or not m.any() or s.all():
        return None
    # distances from pixel centres to the nearest pixel of the other kind, less half a pixel: the
    # outline then lies at 0 (without it the field jumps from −1 to +1 across it and a mask shifted
    # by a fraction of a pixel reads about twice that)
    sd = (cv2.distanceTransform(1 - s, cv2.DIST_L2, 5) - 0.5) * (s == 0) - (cv2.distanceTransform(s, cv2.DIST_L2, 5) - 0.5) * (s > 0)
    gy, gx = np.gradient(cv2.GaussianBlur(sd, (0, 0), 1.5))
    outline = (m - cv2.erode(m, np.ones((3, 3), np.uint8))) > 0
    off, nx, ny = sd[outline], gx[outline], gy[outline]
    norm = np.hypot(nx, ny)
    ok = (np.abs(off) < REACH_PX) & (norm > 0.3)  # away from a blob / hole, where the normal is defined
    return np.stack([np.ones(int(ok.sum())), nx[ok] / norm[ok], ny[ok] / norm[ok], off[ok]], 1)


def solve(rows: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(c, tx, ty), mean |residual| at t = 0 and at the fit: robust least squares (twice, the
    second time without the rows the first left more than 1.5 px off)."""
    A, b = rows[:, :3], rows[:, 3]
    x = np.linalg.lstsq(A, b, rcond=None)[0]
    keep = np.abs(A @ x - b) < 1.5
    if keep.sum() >= 3:
        x = np.linalg.lstsq(A[keep], b[keep], rcond=None)[0]
    c0 = np.median(b)
    return x, float(np.abs(b - c0).mean()), float(np.abs(A @ x - b).mean())


def align_to_silhouettes(video, names: list[str], points, frames: list[int], damping: float = 1.0,
                         max_side: int = 4096, seed: int = 0) -> SilhouetteResult | None:
    """Each camera of ``names``'s image shift that puts the carved ``points``' silhouette (on
    ``frames``) where its masks are (see the module docstring), through ``video.cameras``. None
    when no camera has enough outline."""
    from fourd.carve.metrics import splat_masks
    from fourd.carve.run import frame_views
    from fourd.train.run import spacing_of

    spacing = spacing_of(points)
    rows: dict[int, list[np.ndarray]] = {a: [] for a in range(len(names))}
    for f in frames:
        here = video.cameras_at(f, names)  # (a camera that dropped the frame sits it out)
        cams, masks = frame_views(video, f, here, max_side)[:2]
        sils = splat_masks(points.frame(f).float().cpu(), cams.to("cpu"), spacing)
        for a, s, m in zip([names.index(n) for n in here], sils, masks):
            r = fit_shift(s, m)
            if r is not None and len(r):
                rows[a].append(r)
    shift = np.zeros((len(names), 2))
    per, measured = {}, np.zeros(len(names), bool)
    for a, nm in enumerate(names):
        r = np.concatenate(rows[a]) if rows[a] else np.zeros((0, 4))
        if len(r) < MIN_OUTLINE:
            per[nm] = {"points": len(r), "moved": False}
            continue
        x, before, after = solve(r)
        measured[a] = True
        shift[a] = x[1:]
        per[nm] = {"points": len(r), "fat_px": float(x[0]), "best_px": x[1:].tolist(),
                   "cost_before": before, "cost_best": after}
    if not measured.any():
        return None
    mean_px = float(np.linalg.norm(shift[measured], axis=1).mean())
    move = mean_px >= ACCEPT_PX and measured.sum() >= 3
    applied = np.where(measured[:, None] & move, damping * shift, 0.0)
    for a, nm in enumerate(names):
        if measured[a]:
            per[nm].update(moved=bool(move), shift_px=applied[a].tolist())
    n = np.array([per[nm]["points"] if measured[a] else 0 for a, nm in enumerate(names)], float)
    w = n / n.sum()
    before = float(sum(w[a] * per[nm]["cost_before"] for a, nm in enumerate(names) if measured[a]))
    after = float(sum(w[a] * per[nm]["cost_best"] for a, nm in enumerate(names) if measured[a]))
    return SilhouetteResult(list(names), applied, before, after, per, off_voxels=mean_px)


def log_result(r: SilhouetteResult) -> None:
    moved = np.linalg.norm(r.shift, axis=1)
    worst = r.names[int(np.argmax(moved))]
    log(f"silhouette alignment: masks off the hull's silhouette by {r.off_voxels:.2f} px on average (fitted shifts)"
        + (f"; cameras moved {np.mean(moved):.2f} px on average, most {moved.max():.2f} px (camera {worst})"
           if r.applied else " — not applied (within the carve's own error)"))
