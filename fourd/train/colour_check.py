"""Measure each training camera's colour response from the images alone, before training.

The cameras of a rig disagree in colour (gain, white balance, black level). The image blend copies
source pixels, so one camera's cast shows in every render that blends it. Fitting a correction
against the model's renders during training (:mod:`fourd.train.align`) is circular — the model
was fitted to the same miscoloured views — and recovered the injected gains only to 3.5 %. The
rig check's feature tracks (:func:`fourd.train.bundle.collect_tracks`) are direct evidence
instead: every track is one surface point seen by several cameras, so its colours in those cameras
differ by the cameras' responses (and by view-dependent shading, which the robust loss treats as
an outlier). Per camera and channel the model is ``recorded = gain · true + offset``; the true
colours of the tracks and the cameras' gains and offsets are solved together by alternating
weighted least squares with a Huber weight, the corrections averaging to the identity (the
scene's colour stays that of the rig as a whole). The result is used only when it explains the
tracks' colours clearly better than "every camera alike" (:attr:`ColourResult.improves`), so a
rig whose cameras agree is left alone.

Diagonal (per-channel) gains, not a full 3×3: cameras' white balance and exposure act per channel,
and a 3×3 per camera fitted from a few hundred tracks of a single-coloured subject is poorly
determined (the Fox is mostly one orange).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fourd.console import log

ACCEPT_RATIO = 0.8
SATURATED = (1.5 / 255, 253.5 / 255)  # a channel at the end of its range says nothing of the gain


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
        response (the median colour disagreement down by a fifth or more)."""
        return bool(self.spread_after < ACCEPT_RATIO * self.spread_before)

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

    Few iterations and a firm prior on purpose: tracks join only neighbouring cameras, so a gain
    that changes slowly around the rig is barely seen by them, and the fit run to convergence let
    such a twist grow from the tracks' small per-camera biases (measured on exact rigs, Fox and
    CesiumMan: the gains wandered 2.4–10 % from one; colours of the miscoloured captures came out
    further from the truth than uncorrected). Five rounds from "all cameras alike" with a 1 %
    prior: exact rigs 1.7–1.9 % from one (and not applied), colour error of the miscoloured ones
    down by a third."""
    names, C = tracks.names, len(tracks.names)
    obs = tracks.colour
    ok = np.all((obs > SATURATED[0]) & (obs < SATURATED[1]), axis=1)
    tr = tracks.subset(ok).seen_by(2)
    T = tr.count
    if T < min_tracks * C:
        return None
    t, cam, o = tr.track, tr.cam, tr.colour

    def track_mean(v, w):
        num = np.zeros((T, 3))
        den = np.zeros((T, 3))
        np.add.at(num, t, v * w)
        np.add.at(den, t, w)
        return num / np.maximum(den, 1e-12)

    ones = np.ones_like(o)
    truth = track_mean(o, ones)
    spread0 = np.abs(o - truth[t])
    # the same measure before and after: the median disagreement of a colour with its track's
    # (leave-one-out would be fairer to short tracks; both sides use the same, so the ratio holds)
    before = float(np.median(spread0))
    g, h = np.ones((C, 3)), np.zeros((C, 3))
    for _ in range(iterations):
        r = o - (g[cam] * truth[t] + h[cam])
        sigma = 1.4826 * np.median(np.abs(r), axis=0) + 1e-6
        w = _huber(r, 1.345 * sigma)
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
    r = o - (g[cam] * truth[t] + h[cam])
    after = float(np.median(np.abs(r)))
    per = {}
    for a, n in enumerate(names):
        sel = cam == a
        per[n] = {"observations": int(sel.sum()), "gain": g[a].tolist(), "offset": h[a].tolist(),
                  "spread_before": float(np.median(spread0[sel])) if sel.any() else float("nan"),
                  "spread_after": float(np.median(np.abs(r[sel]))) if sel.any() else float("nan")}
    return ColourResult(list(names), g, h, T, before, after, per)


def log_result(res: ColourResult) -> None:
    dev = np.abs(res.gain - 1).max(1)
    worst = int(np.argmax(dev))
    what = (f"applied; largest gain change {100 * dev[worst]:.1f} % (camera {res.names[worst]})" if res.applied else
            "not applied (the cameras agree)")
    log(f"colour check from {res.tracks:,} feature tracks: median colour disagreement "
        f"{255 * res.spread_before:.2f} → {255 * res.spread_after:.2f} /255 — {what}")
