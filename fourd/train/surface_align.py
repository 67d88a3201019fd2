"""Align each training camera's images with the carved surface as the other cameras see it.

After the rig check (:mod:`fourd.train.bundle`) a camera's calibration is still off by a fraction
of a pixel to a couple of pixels, almost all of it an image translation (a small turn): feature
tracks join a camera to its nearest neighbours only, so slowly varying modes around the ring stay,
and a camera whose view has few good features (the Fox from behind: 21 observations, 2.5 px
median residual even on an exact rig) can be moved the wrong way. The carved surface is evidence
of another kind: each carved point is seen by about five cameras all round the subject
(:func:`fourd.train.colour_check.surface_views`), and where a camera's pose is off it reads the
point's colour from the wrong pixel. Per camera, the image shift (a grid of ``step`` px within
``reach`` px) that makes its colours agree best with the mean of the other cameras' is found
(L1 over a few thousand points of several frames), and the camera turned by ``damping`` × that
shift. The damping is there because the hull is not the surface: its points sit a little off the
true surface, which biases every camera's best shift by a few tenths of a pixel. For the same
reason the cameras are moved only when they are off by more than that bias: all of them when
their best shifts average a quarter of a carve voxel as they see it or more (ACCEPT_OFF; exact
rigs: 0.10–0.17, the built-in captures with injected calibration error 0.33–0.49, with every
fault 0.31–0.35), else only a camera off by half a voxel or more on its own (ACCEPT_ONE; an exact
rig's largest: 0.33); and never for less than 0.4 px on average or 1 px alone (FLOOR_OFF,
FLOOR_ONE: on small images with a coarse hull — the tests' 96×80 capture, 6 cameras, its voxel
half a pixel — an exact rig's best shifts average 0.33 px, 0.9 px at most), nor a camera measured
on fewer than 500 points (MIN_POINTS; that capture's cameras see 195). A clean rig is then left
exactly as it is.

Measured (true-surface image error after the rig check → after this; `fourd data degrade`'s
captures): calibration only Fox 0.69 → 0.39 px (worst camera 2.49 → 0.74), CesiumMan 0.58 →
0.40 px; every fault 0.57 → 0.42 px, 0.56 → 0.44 px.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fourd.console import log

ACCEPT_DROP = 0.01
ACCEPT_OFF = 0.25  # the cameras' mean best shift, in carve voxels as they see them, above which all are moved
ACCEPT_ONE = 0.5  # a camera's own best shift (voxels) above which it is moved whatever the others' are
MIN_POINTS = 500  # a camera is measured on this many points seen by three cameras or more (the Fox's rear view: 1,500)
FLOOR_OFF, FLOOR_ONE = 0.4, 1.0  # and never below these (px): what a 0.25 px grid on images blurred 0.7 px tells


@dataclass
class AlignResult:
    names: list[str]
    shift: np.ndarray  # [C, 2] the image shift (px, x right / y down) each camera is moved by (damped)
    cost_before: float = float("nan")  # mean |colour − the other cameras' mean| (0–1), as given / aligned
    cost_after: float = float("nan")
    per_camera: dict = field(default_factory=dict)
    applied: bool = False
    off_voxels: float = float("nan")  # the cameras' mean best shift (undamped), in carve voxels as each sees it

    @property
    def improves(self) -> bool:
        """Whether some camera is off by more than the carve's own error (see
        :func:`align_to_surface`) and the cameras moved agree with the others by ACCEPT_DROP or more
        better for it."""
        moved = [c for c in self.per_camera.values() if c.get("moved")]
        if not moved:
            return False
        before = sum(c["points"] * c["cost_before"] for c in moved)
        after = sum(c["points"] * c["cost_best"] for c in moved)
        return bool(after < (1 - ACCEPT_DROP) * before)

    def turns(self, cameras) -> np.ndarray:
        """[C, 3] the rotation vectors (camera frame, radians; what
        :class:`~fourd.model.corrections.CameraCorrections` composes with) that move each camera's
        image by its shift: a turn θ about the camera's y axis moves the image by fx·θ to the
        right, a turn φ about its x axis by fy·φ up."""
        out = np.zeros((len(self.names), 3))
        for a, n in enumerate(self.names):
            K = cameras[n].K[0].double().numpy()
            out[a] = [-self.shift[a, 1] / K[1, 1], self.shift[a, 0] / K[0, 0], 0.0]
        return out

    def to_json(self) -> dict:
        return {"model": "each camera's image moved by shift (px, x right, y down) as a turn about its centre",
                "names": self.names, "shift": self.shift.tolist(), "cost_before": self.cost_before,
                "cost_after": self.cost_after, "off_voxels": self.off_voxels, "applied": self.applied,
                "cameras": self.per_camera}

    @classmethod
    def from_json(cls, d: dict) -> AlignResult:
        return cls(list(d["names"]), np.asarray(d["shift"], np.float64).reshape(-1, 2), float(d["cost_before"]),
                   float(d["cost_after"]), dict(d.get("cameras", {})), bool(d.get("applied", False)),
                   float(d.get("off_voxels", float("nan"))))


def align_to_surface(video, names: list[str], points, frames: list[int], reach: float = 2.5, step: float = 0.25,
                     damping: float = 0.75, per_frame: int = 3000, seed: int = 0,
                     colours=None) -> AlignResult | None:
    """Each camera of ``names``'s image shift that best makes its colours of the carved surface
    ``points`` (on ``frames``) agree with the other cameras' (see the module docstring); the
    cameras are ``video.cameras``, their colours corrected by ``colours`` (the colour check's
    :class:`~fourd.train.colour_check.ColourResult`) when given: a camera's colour cast would
    otherwise pull its best shift toward darker or brighter pixels. None when no point is seen by
    three cameras."""
    import cv2

    from fourd.train.colour_check import surface_views

    g = np.arange(-reach, reach + step / 2, step)
    shifts = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2).astype(np.float32)
    cost = np.zeros((len(names), len(shifts)))
    count = np.zeros(len(names))

    def sample(img, uv):
        m = cv2.remap(img, uv[:, :1].copy(), uv[:, 1:].copy(), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return m.reshape(-1, 3)

    fix = {}  # camera index → (gain⁻¹ [3], −offset/gain [3]): the colour check's per-channel correction
    if colours is not None:
        A, b = colours.correction()
        fix = {a: (np.diagonal(A[colours.names.index(n)]).astype(np.float32), b[colours.names.index(n)].astype(np.float32))
               for a, n in enumerate(names) if n in colours.names}

    for _, P, views in surface_views(video, names, points, frames, per_frame, seed=seed):
        total, seen = np.zeros((P, 3)), np.zeros(P)
        read = []
        for a, got, uv, img in views:
            img = img.astype(np.float32) / 255
            if a in fix:
                img = img * fix[a][0] + fix[a][1]
            uv = uv.astype(np.float32)
            col = sample(img, uv)
            np.add.at(total, got, col)
            np.add.at(seen, got, 1)
            read.append((a, got, uv, img, col))
        for a, got, uv, img, col in read:
            ok = seen[got] >= 3  # the point seen by two other cameras at least
            if not ok.any():
                continue
            others = (total[got[ok]] - col[ok]) / (seen[got[ok]] - 1)[:, None]
            for k, d in enumerate(shifts):
                cost[a, k] += np.abs(sample(img, uv[ok] + d) - others).mean(1).sum()
            count[a] += ok.sum()
    if not count.any():
        return None
    zero = int(np.argmin(np.abs(shifts).sum(1)))
    best = np.where(count > 0, np.argmin(cost, 1), zero)
    voxel = _voxel_px(video.cameras, names, points, frames[0])
    px = np.linalg.norm(shifts[best], axis=1)
    off = px / voxel
    measured = count >= MIN_POINTS
    mean_off = float(off[measured].mean()) if measured.any() else float("nan")
    rig_off = measured.sum() >= 3 and mean_off >= ACCEPT_OFF and px[measured].mean() >= FLOOR_OFF
    # the whole rig off by more than the carve's bias: every camera moves; else only a camera that is
    # clearly off on its own (half a voxel: an exact rig's largest is a third)
    moves = measured & (((off >= ACCEPT_ONE) & (px >= FLOOR_ONE)) | rig_off)
    used = np.where(moves, best, zero)
    shift = damping * shifts[used].astype(np.float64)
    if rig_off:
        # comparing a camera with the cameras that see the same points — its neighbours — cannot
        # see the whole ring turned alike, so the shifts' mean is the hull's bias, not the rig's
        # error: taken out (the silhouette alignment measures that mode). Image error after the rig
        # check → this, every fault (seeds 0 and 1): Fox 0.57 → 0.42 (0.48 with the mean kept),
        # 0.74 → 0.48 (0.56); CesiumMan 0.56 → 0.45 (0.50), 0.53 → 0.35 (0.36) px
        shift[measured] -= shift[measured].mean(0)
    n = np.maximum(count, 1)
    before, after = cost[:, zero] / n, cost[np.arange(len(names)), used] / n
    per = {nm: {"points": int(count[a]), "best_px": shifts[best[a]].tolist(), "voxel_px": float(voxel[a]),
                "off_voxels": float(off[a]), "moved": bool(moves[a]), "shift_px": shift[a].tolist(),
                "cost_before": float(before[a]), "cost_best": float(after[a])} for a, nm in enumerate(names)}
    w = count / count.sum()
    return AlignResult(list(names), shift, float((w * before).sum()), float((w * after).sum()), per,
                       off_voxels=mean_off)


def _voxel_px(cameras, names: list[str], points, frame: int) -> np.ndarray:
    """[C] the carve's voxel (its point spacing) as each camera sees it at the subject, in px."""
    from fourd.train.run import spacing_of

    centre = points.frame(frame).double().mean(0, keepdim=True)
    spacing = spacing_of(points)
    out = np.zeros(len(names))
    for a, nm in enumerate(names):
        c = cameras[nm].to(dtype=centre.dtype)
        _, z = c.project(centre)
        out[a] = spacing * float(c.K[0, 0, 0]) / max(float(z.reshape(-1)[0]), 1e-9)
    return out


def log_result(r: AlignResult) -> None:
    moved = np.linalg.norm(r.shift, axis=1)
    worst = r.names[int(np.argmax(moved))]
    log(f"surface alignment: colour disagreement {255 * r.cost_before:.2f} → {255 * r.cost_after:.2f} /255 "
        f"(best shifts), cameras off by {r.off_voxels:.2f} of a carve voxel on average ({np.mean(moved):.2f} px "
        f"damped), most {moved.max():.2f} px (camera {worst})"
        + (" — applied" if r.applied else " — not applied (within the carve's own error)"
           if not moved.any() else " — not applied"))
