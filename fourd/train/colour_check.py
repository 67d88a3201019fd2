"""Measure each training camera's colour response from the images alone, before training.

The cameras of a rig disagree in colour (gain, white balance, black level). The image blend copies
source pixels, so one camera's cast shows in every render that blends it. Fitting a correction
against the model's renders during training (:mod:`fourd.train.align`) is circular — the model
was fitted to the same miscoloured views — and recovered the injected gains only to 3.5 %. The
carved surface is direct evidence instead (:func:`surface_tracks`): each carved point is one
surface point seen by every camera in front of it, so its colours in those cameras differ by the
cameras' responses (and by view-dependent shading, which the robust loss treats as an outlier).
Per camera and channel the model is ``recorded = gain · true + offset``; the points' true colours
and the cameras' gains and offsets are solved together by alternating weighted least squares with
a Huber weight, the corrections averaging to the identity (the scene's colour stays that of the
rig as a whole). The result is used only when it explains the colours clearly better than "every
camera alike" (:attr:`ColourResult.improves`), so a rig whose cameras agree is left alone.

Why the carved points and not the rig check's feature tracks (:func:`fourd.train.bundle.collect_tracks`,
which :func:`fit_colours` also takes): a feature track joins a camera to its nearest neighbours
only, and the colour of a SIFT patch differs by 1–2 /255 from camera to camera even on an exact rig
(the patch covers a different bit of surface in each view). A carved point is seen by five
cameras on the average, all around the subject, and its colour is read at one pixel: on the
miscoloured test captures the gains came out 0.5–0.6 % from the injected ones (max 1.9 %), where
the feature tracks reached 3 %.

Diagonal (per-channel) gains, not a full 3×3: cameras' white balance and exposure act per channel,
and a 3×3 per camera fitted from the colours of a single-coloured subject is poorly determined
(the Fox is mostly one orange).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fourd.console import log

ACCEPT_RATIO = 0.8
ACCEPT_DROP = 1.0 / 255  # and by this much at least: a rig that agrees within a level needs nothing
SATURATED = (1.5 / 255, 253.5 / 255)  # a channel at the end of its range says nothing of the gain
FLAT = 0.05  # colours read where the image's local spread is below this (surface_tracks)
ITERATIONS = 100  # rounds of the surface fit: the slow twist round the rig converges last


@dataclass
class ColourResult:
    names: list[str]
    gain: np.ndarray  # [C, 3] recorded = gain · true + offset (colours in [0, 1])
    offset: np.ndarray  # [C, 3]
    tracks: int = 0
    spread_before: float = float("nan")  # median |colour − the track's| (every camera alike / corrected)
    spread_after: float = float("nan")
    per_camera: dict = field(default_factory=dict)
    applied: bool = False

    @property
    def improves(self) -> bool:
        """Whether the cameras' responses explain the tracks' colours clearly better than one shared
        response: the median colour disagreement down by a fifth or more, and by one level of 255
        at least (the cameras of an exact rig already agree within a level; a fit there only
        rearranges the rounding)."""
        return bool(self.spread_after < ACCEPT_RATIO * self.spread_before
                    and self.spread_before - self.spread_after >= ACCEPT_DROP)

    def correction(self) -> tuple[np.ndarray, np.ndarray]:
        """(A [C, 3, 3], b [C, 3]): the map x ↦ A x + b from each camera's recorded colours to the
        rig's shared colour space (what :class:`~fourd.model.corrections.CameraCorrections` applies)."""
        A = np.stack([np.diag(1 / g) for g in self.gain])
        return A, -self.offset / self.gain

    def to_json(self) -> dict:
        return {"model": "recorded = gain * true + offset, per channel, RGB in [0, 1]", "names": self.names,
                "gain": self.gain.tolist(), "offset": self.offset.tolist(), "tracks": self.tracks,
                "spread_before": self.spread_before, "spread_after": self.spread_after,
                "applied": self.applied, "cameras": self.per_camera}

    @classmethod
    def from_json(cls, d: dict) -> ColourResult:
        return cls(list(d["names"]), np.asarray(d["gain"], np.float64).reshape(-1, 3),
                   np.asarray(d["offset"], np.float64).reshape(-1, 3), int(d.get("tracks", 0)),
                   float(d.get("spread_before", "nan")), float(d.get("spread_after", "nan")),
                   dict(d.get("cameras", {})), bool(d.get("applied", False)))


def surface_views(video, names: list[str], points, frames: list[int], per_frame: int = 3000, blur: float = 0.7,
                  min_facing: float = 0.3, inset: int = 2, seed: int = 0):
    """Per frame of ``frames``, ``per_frame`` points of the carve ``points`` (a
    :class:`~fourd.structures.points.PointSequence` with normals) and how each camera of ``names``
    sees them: yields ``(frame, count, [(camera index, points seen [k], their pixels [k, 2] (float),
    the image blurred by blur px (uint8))])``. A camera sees a point when it is in front (a coarse
    z-buffer, :func:`fourd.carve.run.front`), faces it (cosine above ``min_facing``: a grazing view
    mixes colours) and lands ``inset`` px inside its mask (an edge pixel mixes in the background).
    The cameras are ``video.cameras`` (the caller sets the refined rig)."""
    import cv2
    import torch

    from fourd.carve.run import front, pixel_of
    from fourd.train.run import spacing_of

    rng = np.random.default_rng(seed)
    sp = spacing_of(points)
    kernel = np.ones((2 * inset + 1, 2 * inset + 1), np.uint8)
    for f in frames:
        p = points.frame(f).double()
        n = points.attribute("normals", f).double()
        pick = torch.from_numpy(np.sort(rng.choice(len(p), min(per_frame, len(p)), replace=False)))
        views = []
        for a, name in enumerate(names):
            if not video.has(f, name):  # (a camera that dropped the frame)
                continue
            v = video.view(f, video.cameras.index(name))
            if v.mask is None:
                continue
            c = v.camera.to(dtype=torch.float64)
            H, W = v.image.shape[:2]
            uv, z = c.project(p)
            uv, z = uv[0], z[0]
            facing = (torch.nn.functional.normalize(c.centers[0] - p, dim=1) * n).sum(1)
            px = pixel_of(uv, H, W)
            inner = cv2.erode(v.mask.astype(np.uint8), kernel) > 0
            seen = front(uv, z, float(c.K[0, 0, 0]), sp, H, W) & (facing > min_facing)
            seen &= torch.from_numpy(inner[px[:, 1].numpy(), px[:, 0].numpy()])
            got = torch.nonzero(seen[pick]).squeeze(1)
            img = cv2.GaussianBlur(v.image, (0, 0), blur) if blur > 0 else v.image
            views.append((a, got.numpy(), uv[pick[got]].numpy(), img))
        yield f, len(pick), views


def surface_tracks(video, names: list[str], points, frames: list[int], per_frame: int = 3000, blur: float = 0.7,
                   min_facing: float = 0.3, inset: int = 2, seed: int = 0, flat: float = FLAT, flat_window: int = 5):
    """The carved surface as colour tracks (a :class:`~fourd.train.bundle.Tracks`): each point of
    :func:`surface_views` observed by the cameras that see it, with the colour of the pixel it
    lands on — where the image is flat around it: the colours' standard deviation over the
    ``flat_window``² pixels round it below ``flat`` in every channel (0: everywhere), or, in a
    camera where fewer than half its points are that flat, the flatter half.

    Why flat: a camera a fraction of a pixel off, or one whose image is a little softer (a lens
    undistorted on load is resampled twice, JPEG drops fine detail), reads a texture edge with less
    contrast, which the line fit of :func:`fit_colours` takes for a lower gain and a higher offset.
    Those small per-camera biases add up round the rig into a slow twist of the gains, the one
    pattern the tracks barely see (a point is seen by its neighbouring cameras). Every fault, seed
    0, ten rounds: max gain error Fox 3.8 → 3.2 %, and with the rounds run to convergence (the trainer's
    hundred) 3.0 → 1.1 %, CesiumMan 2.3 → 1.9 %."""
    import torch

    from fourd.carve.run import pixel_of
    from fourd.train.bundle import Tracks

    track, cam, colour = [], [], []
    base = 0
    for _, count, views in surface_views(video, names, points, frames, per_frame, blur, min_facing, inset, seed):
        for a, got, uv, img in views:
            xy = pixel_of(torch.from_numpy(uv), *img.shape[:2]).numpy()
            if flat > 0 and len(got):
                sd = local_spread(img, flat_window)[xy[:, 1], xy[:, 0]]
                keep = sd <= max(flat, float(np.median(sd)))  # half the camera's points at least
                got, xy = got[keep], xy[keep]
            track.append(base + got)
            cam.append(np.full(len(got), a))
            colour.append(img[xy[:, 1], xy[:, 0]].astype(np.float64) / 255)
        base += count
    t = np.concatenate(track) if track else np.zeros(0, np.int64)
    _, t = np.unique(t, return_inverse=True)
    C = len(names)
    return Tracks(list(names), np.zeros((C, 3, 3)), np.zeros((C, 3, 3)), np.zeros((C, 3)), t.reshape(-1),
                  np.concatenate(cam) if cam else np.zeros(0, np.int64), np.zeros((len(t), 2)),
                  np.concatenate(colour) if colour else np.zeros((0, 3)))


def local_spread(img: np.ndarray, window: int) -> np.ndarray:
    """Per pixel of ``img`` (uint8 [H, W, 3]) the largest over the channels of the colours'
    standard deviation (in [0, 1]) over the ``window``² pixels round it."""
    import cv2

    f = img.astype(np.float32) / 255
    m1 = cv2.blur(f, (window, window))
    m2 = cv2.blur(f * f, (window, window))
    return np.sqrt(np.maximum(m2 - m1 * m1, 0)).max(axis=2)


def _huber(r: np.ndarray, k: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= k, 1.0, k / np.maximum(a, 1e-12))


def fit_colours(tracks, iterations: int = 5, min_tracks: int = 5, gain_prior: float = 0.01,
                offset_prior: float = 0.01) -> ColourResult | None:
    """Per camera and channel the gain and offset that make the tracks' colours agree (see the
    module docstring); ``tracks``: a :class:`~fourd.train.bundle.Tracks`. ``gain_prior`` and
    ``offset_prior``: the spread expected of gains around one and of offsets around zero (a
    Gaussian prior; a subject of few colours cannot tell a gain from an offset by itself). None
    when too few tracks.

    Few iterations and a firm prior on purpose for feature tracks: they join only neighbouring
    cameras, so a gain that changes slowly around the rig is barely seen by them, and the fit run
    to convergence let such a twist grow from the tracks' small per-camera biases (measured on
    exact rigs, Fox and CesiumMan: the gains wandered 2.4–10 % from one). Five rounds from "all
    cameras alike" with a 1 % prior: exact rigs 1.7–1.9 % from one (and not applied), colour error
    of the miscoloured ones down by a third. The carved surface's tracks (:func:`surface_tracks`)
    join cameras all around and take more rounds: the trainer runs :data:`ITERATIONS` (a hundred;
    ten left the gains' slow twist round the rig half fitted: every fault, seed 0, max gain error
    Fox 3.2 → 1.1 %, CesiumMan 2.3 → 1.9 % with the flat-texture reading of :func:`surface_tracks`;
    exact rigs stay within 1 % of one and are not applied)."""
    names, C = tracks.names, len(tracks.names)
    # a saturated channel says nothing of that channel's gain, but the others of the same pixel still
    # do: dropping the whole observation left a camera whose red and green clip on white fur with
    # only dark blues to fit its blue gain from (Fox, colour fault only: its blue 2.2 % off, 0.3 % now)
    obs = tracks.colour
    ok = (obs > SATURATED[0]) & (obs < SATURATED[1])
    per_track = np.zeros((tracks.count, 3))
    np.add.at(per_track, tracks.track, ok.astype(np.float64))
    ok &= per_track[tracks.track] >= 2  # a channel seen unsaturated by one camera only: no comparison
    keep = ok.any(axis=1)
    tr, ok = tracks.subset(keep), ok[keep]
    T = tr.count
    if T < min_tracks * C:
        return None
    t, cam, o = tr.track, tr.cam, tr.colour
    valid = ok.astype(np.float64)

    def track_mean(v, w):
        num = np.zeros((T, 3))
        den = np.zeros((T, 3))
        np.add.at(num, t, v * w)
        np.add.at(den, t, w)
        return num / np.maximum(den, 1e-12)

    truth = track_mean(o, valid)
    spread0 = np.abs(o - truth[t])
    # the same measure before and after: the median disagreement of a colour with its track's
    # (leave-one-out would be fairer to short tracks; both sides use the same, so the ratio holds)
    before = float(np.median(spread0[ok]))
    g, h = np.ones((C, 3)), np.zeros((C, 3))
    for _ in range(iterations):
        r = o - (g[cam] * truth[t] + h[cam])
        sigma = np.array([1.4826 * np.median(np.abs(r[ok[:, k], k])) for k in range(3)]) + 1e-6
        w = _huber(r, 1.345 * sigma) * valid
        # each camera's gain and offset per channel: weighted line fit of recorded on true colours,
        # with the prior toward (1, 0) weighed against the observations' own noise
        x = truth[t]
        for k in range(3):
            sw = np.bincount(cam, w[:, k], C)
            sx = np.bincount(cam, w[:, k] * x[:, k], C)
            sy = np.bincount(cam, w[:, k] * o[:, k], C)
            sxx = np.bincount(cam, w[:, k] * x[:, k] ** 2, C)
            sxy = np.bincount(cam, w[:, k] * x[:, k] * o[:, k], C)
            lg, lh = (sigma[k] / gain_prior) ** 2, (sigma[k] / offset_prior) ** 2
            a11, a12, a22 = sxx + lg, sx, sw + lh
            b1, b2 = sxy + lg, sy
            det = a11 * a22 - a12 * a12
            g[:, k] = (b1 * a22 - a12 * b2) / det
            h[:, k] = (a11 * b2 - a12 * b1) / det
        # the tracks' true colours given the cameras' responses (each observation inverted, weighed
        # by w · gain², the weighted least-squares estimate)
        truth = track_mean((o - h[cam]) / g[cam], w * g[cam] ** 2)
    # the gauge (each channel's true colours may all be scaled and shifted, the cameras' responses
    # taking the inverse): the corrections x ↦ (x − offset) / gain average to the identity, as
    # CameraCorrections keeps them (so its re-centring leaves these as they are). Held only loosely
    # during the iterations (by the prior), fixed once here: re-centred every iteration, it let the
    # well-observed cameras drift together while the weakly observed ones took up the difference
    s = 1 / (1 / g).mean(0)
    q = s * (h / g).mean(0)
    g, h = g / s, h - g / s * q
    truth = truth * s + q
    r = np.abs(o - (g[cam] * truth[t] + h[cam]))
    after = float(np.median(r[ok]))
    per = {}
    for a, n in enumerate(names):
        sel = ok & (cam == a)[:, None]
        per[n] = {"observations": int(sel.any(axis=1).sum()), "gain": g[a].tolist(), "offset": h[a].tolist(),
                  "spread_before": float(np.median(spread0[sel])) if sel.any() else float("nan"),
                  "spread_after": float(np.median(r[sel])) if sel.any() else float("nan")}
    return ColourResult(list(names), g, h, T, before, after, per)


def log_result(res: ColourResult) -> None:
    dev = np.abs(res.gain - 1).max(1)
    worst = int(np.argmax(dev))
    what = (f"applied; largest gain change {100 * dev[worst]:.1f} % (camera {res.names[worst]})" if res.applied else
            "not applied (the cameras agree)")
    log(f"colour check from {res.tracks:,} surface points: median colour disagreement "
        f"{255 * res.spread_before:.2f} → {255 * res.spread_after:.2f} /255 — {what}")
