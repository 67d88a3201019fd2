"""Take a static background plate's colour back out of the mask's soft edge.

Masks from matting are binary, but the images they cut out are not: along the outline a pixel
covers part subject, part background, so over a studio backdrop the mask's outermost pixels carry
the backdrop's colour (on `fourd data degrade`'s captures, whose plate is composited with a
gaussian edge of 1 px, the innermost mask pixel holds about a third of plate). Trained as they
are, the model paints that colour onto the subject's rim.

Three things the capture itself tells, per training camera:

* **the plate**: the capture's own picture of the empty scene where it has one (4K4D's
  ``bkgd/<cam>.jpg``); otherwise, since the subject moves and the backdrop does not, the colour behind a pixel is the
  median of that pixel over the frames in which it lies well outside the mask; where the subject
  never left, the plate is filled in (inpainted) up to FILL_PX from where it was seen
  (``plate_unknown="fill"``, the default since stop 50) or those edge pixels leave the colour loss
  (``"skip"``);
* **the matte's softness**: for mask pixels 1, 2, 3 px in from the outline, the share ``a`` of
  subject colour in ``I = a·F + (1 − a)·P``, with ``P`` the plate behind the pixel and ``F`` taken
  from the nearest pixel deeper inside (a neighbour's colour is a poor guess per pixel, but the
  median over every outline pixel of many frames is a steady estimate of the ring's share); the
  2nd and 3rd rings' shares give the width ``sigma`` of a gaussian that blurs the mask into the
  matte (the rig's median: one matting process);
* so each edge pixel's share is the blurred mask there, and a training target's edge pixels are
  un-mixed, ``F = P + (I − P) / a``, before being composited over the training background.

Nothing is done for a camera whose backdrop is the training background already (clean and
synthetic captures: their targets are bit-identical) or whose matte is hard.

A capture whose masks are soft (coverage, 0–255: a matte's alpha or an anti-aliased render's) says
each pixel's share itself: the matte is not measured, only the plate, and each target pixel is
un-mixed by its own coverage ``c`` (the subject's part ``c·F = I − (1 − c)·P``, no division:
:meth:`fourd.train.data.ViewSampler.target`). Held-out cameras
(the ground truth) are measured nothing from — except that with soft masks and the capture's own
picture of the empty scene their partly covered pixels are un-mixed by it alike, so the truth is
the subject over the training background as the model is asked to render it — and the blended
source views (whose edge pixels ``source_masks`` leaves out) are not touched. Report: RUN/cameras/plate.json.

Measured on the every-fault captures (8 training cameras × 4 frames against the clean capture,
the true colour response undone): the innermost mask pixel's squared error 0.040 as recorded,
0.010 un-mixed (Fox); 0.041 → 0.015 (CesiumMan); on a capture with only the plate injected and
the true plate and matte, 0.003.
Held-out, every fault: with ``fill`` as good as with the true plate on both subjects (stop 50:
Fox 34.39 dB against 34.38 with the capture's own backdrops, 34.04 with ``skip``; CesiumMan 29.06,
29.10, 29.08) — left out, the rim pixels' coverage went unsupervised and the held-out outline's
first inside pixel came out darker (alpha 0.73 against 0.77 with the plate known, 0.82 clean; Fox).
(At stop 36, before the silhouette alignment and K 12, ``skip`` had measured a little better.)
"""

from __future__ import annotations

import warnings
from statistics import NormalDist
from dataclasses import dataclass, field

import numpy as np

from fourd.console import log

RINGS = 3  # mask rings (px in from the outline) whose subject share is measured
FAR_PX = 3  # a pixel this far outside a frame's mask shows the plate in that frame
MIN_SEEN = 2  # frames in which a pixel must show the plate for its colour to be trusted
FILL_PX = 8  # the plate is filled in (inpainted) this far into where the subject never left
PLATE_LEVEL = 8 / 255  # the plate must differ this much from the training background (median, max channel)
SOFT = 0.9  # the innermost ring's subject share below which the matte is soft enough to un-mix
MIN_SHARE = 0.3  # a pixel's subject share is not taken below this (un-mixing would amplify noise)
EDGE_SHARE = 0.99  # mask pixels whose modelled subject share is below this are edge pixels
MAX_FRAMES = 16  # frames per camera the plate and matte are measured on


@dataclass
class CameraPlate:
    plate: np.ndarray  # [H, W, 3] uint8 (undistorted, full resolution: 60 cameras of 5 MP hold 0.9 GB)
    seen: np.ndarray  # [H, W] bool: the plate's colour is known there
    sigma: float  # the matte's softness: the width (px) of a gaussian that blurs the mask into it

    def behind(self, box: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """The plate (float32 [h, w, 3] in [0, 1]) and where it is known ([h, w] bool) behind a view
        cropped to ``box`` = (x0, y0, w, h) of the full frame and resized to ``shape``."""
        import cv2

        x0, y0, bw, bh = box
        h, w = shape
        P = self.plate[y0:y0 + bh, x0:x0 + bw].astype(np.float32) / 255
        seen = self.seen[y0:y0 + bh, x0:x0 + bw].astype(np.float32)
        if (h, w) != (bh, bw):
            P = cv2.resize(P, (w, h), interpolation=cv2.INTER_AREA)
            seen = cv2.resize(seen, (w, h), interpolation=cv2.INTER_AREA)
        return P, seen > 0.999

    def unmix(self, image: np.ndarray, mask: np.ndarray,
              box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """``image`` (uint8 [h, w, 3], the view cropped to ``box`` = (x0, y0, w, h) of the full
        frame and resized) with the plate taken out of the mask's soft edge, float32 in [0, 1], and
        the edge pixels [h, w] bool whose plate is not known (left as recorded)."""
        import cv2

        bw = box[2]
        h, w = image.shape[:2]
        P, seen = self.behind(box, (h, w))
        img = image.astype(np.float32) / 255
        m = np.asarray(mask, bool)
        share = cv2.GaussianBlur(m.astype(np.float32), (0, 0), self.sigma * w / bw)  # the matte, per pixel
        edge = m & (share < EDGE_SHARE)
        sel = edge & seen
        a = np.maximum(share[sel], MIN_SHARE)[:, None]
        img[sel] = np.clip(P[sel] + (img[sel] - P[sel]) / a, 0, 1)
        return img, edge & ~sel


@dataclass
class PlateResult:
    per_camera: dict = field(default_factory=dict)  # name → {"plate_level", "seen", "share", "sigma_px", "unmixed"}
    plates: dict = field(default_factory=dict)  # name → CameraPlate (cameras that are un-mixed)
    coverage_masks: bool = False  # the masks are soft (coverage): the matte is given, not measured

    @property
    def applied(self) -> bool:
        return bool(self.plates)

    def to_json(self) -> dict:
        return {"per_camera": self.per_camera, "rings_px": RINGS, "plate_level_min": PLATE_LEVEL, "soft_below": SOFT}


def _rings_share(img: np.ndarray, mask: np.ndarray, P: np.ndarray, seen: np.ndarray) -> list[np.ndarray]:
    """Per ring, the subject share of each usable outline pixel in one frame (see the module)."""
    import cv2

    m = mask.astype(np.uint8)
    depth = cv2.distanceTransform(m, cv2.DIST_L2, 5)
    core = (depth >= RINGS + 0.5).astype(np.uint8)
    out = [np.zeros(0, np.float32) for _ in range(RINGS)]
    if not core.any():
        return out
    # the nearest core pixel of every pixel (the colour taken for F)
    _, lab = cv2.distanceTransformWithLabels(1 - core, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    ys, xs = np.nonzero(core)
    where = np.zeros((int(lab.max()) + 1, 2), np.int64)
    where[lab[ys, xs]] = np.stack([ys, xs], 1)
    for ring in range(1, RINGS + 1):
        yy, xx = np.nonzero((m > 0) & (depth > ring - 0.5) & (depth <= ring + 0.5) & seen)
        if not len(yy):
            continue
        q = where[lab[yy, xx]]
        Pp, Fp = P[yy, xx], img[q[:, 0], q[:, 1]]
        d = Fp - Pp
        nn = (d * d).sum(1)
        ok = nn > 0.02  # the subject's colour must differ from the plate's to read the share
        out[ring - 1] = ((img[yy, xx] - Pp) * d).sum(1)[ok] / nn[ok]
    return out


def _edge_width(share: list[float]) -> float | None:
    """The width of the gaussian edge that leaves the rings ``share``: a straight outline blurred by
    a gaussian of width sigma leaves the pixel ``k`` px in (centre ``k − 0.5`` px in) the share
    Φ((k − 0.5) / sigma). Read from the 2nd and 3rd rings: the outermost one also carries the
    image's own anti-aliasing (an outline pixel the subject half covers is already half dark in a
    clean image), which made CesiumMan's edge read 1.9 px wide where 1 px was injected, and at
    shares near 0.6 a small error moves sigma a lot (0.6 → 2.0 px, 0.7 → 0.95 px)."""
    inv = NormalDist().inv_cdf
    est = [(k - 0.5) / inv(a) for k, a in enumerate(share, start=1) if k >= 2 and 0.55 < a < 0.995]
    if not est:
        return None  # a hard matte after all (or nothing readable)
    return float(np.clip(np.median(est), 0.3, 4.0))


def measure_camera(images: list[np.ndarray], masks: list[np.ndarray], background,
                   fill: bool = True, given: np.ndarray | None = None,
                   matte_given: bool = False) -> tuple[dict, CameraPlate | None]:
    """One camera's plate and matte from its views of several frames (uint8 images, bool masks);
    ``fill``: inpaint the plate up to FILL_PX under where the subject never left; ``given``: the
    capture's own image of the empty scene (uint8 [H, W, 3], e.g. 4K4D's ``bkgd/``), taken as the
    plate everywhere instead of measuring it; ``matte_given``: the capture's masks are coverage
    (soft), so the matte is not measured — the training targets un-mix each pixel by its own
    coverage (:meth:`fourd.train.data.ViewSampler.target`) and only the plate is needed."""
    import cv2

    H, W = masks[0].shape
    if given is not None:
        plate, seen = given.astype(np.float32) / 255, np.ones((H, W), bool)
    else:
        kernel = np.ones((2 * FAR_PX + 1, 2 * FAR_PX + 1), np.uint8)
        far = np.stack([cv2.dilate(m.astype(np.uint8), kernel) == 0 for m in masks])
        seen = far.sum(0) >= MIN_SEEN
        plate = np.zeros((H, W, 3), np.float32)
        for y in range(0, H, 128):  # the median over the frames that show the plate, a band of rows at a time
            stack = np.stack([im[y:y + 128] for im in images]).astype(np.float32) / 255
            stack[~far[:, y:y + 128]] = np.nan
            with warnings.catch_warnings():  # rows no frame shows the plate in: all-NaN, left 0 (not seen)
                warnings.simplefilter("ignore", RuntimeWarning)
                plate[y:y + 128] = np.nan_to_num(np.nanmedian(stack, 0))
    bg = np.asarray(background, np.float32)
    level = float(np.median(np.abs(plate[seen] - bg).max(1))) if seen.any() else 0.0
    rec = {"plate_level": round(level * 255, 2), "seen": round(float(seen.mean()), 3), "share": None, "unmixed": False,
           "plate": "given" if given is not None else "measured"}
    if level < PLATE_LEVEL:
        return rec, None  # the backdrop is the training background already
    if matte_given:
        rec["matte"], rec["unmixed"] = "given (coverage masks)", True
        plate, seen = _filled(plate, seen, fill)
        return rec, CameraPlate(np.clip(plate * 255 + 0.5, 0, 255).astype(np.uint8), seen, 0.0)
    shares = [[] for _ in range(RINGS)]
    for im, m in zip(images, masks):
        for ring, s in enumerate(_rings_share(im.astype(np.float32) / 255, m, plate, seen)):
            shares[ring].append(s)
    share = [float(np.median(np.concatenate(s))) if sum(map(len, s)) >= 50 else 1.0 for s in shares]
    rec["share"] = [round(a, 3) for a in share]
    if share[0] >= SOFT:
        return rec, None  # a hard matte: nothing of the plate to take out
    sigma = _edge_width(share)
    if sigma is None:
        return rec, None
    # where the subject never left, the plate is filled in from around (its coarse pattern holds a
    # few pixels in: on the every-fault Fox, with the 1st ring's width, the filled edge pixels
    # un-mixed to 0.013 squared error against the clean image, 0.034 as recorded, 0.008 where
    # the plate was seen; a third of the outline's pixels were never seen)
    plate, seen = _filled(plate, seen, fill)
    rec["sigma_px"] = round(sigma, 3)
    rec["unmixed"] = True
    return rec, CameraPlate(np.clip(plate * 255 + 0.5, 0, 255).astype(np.uint8), seen, sigma)


def _filled(plate: np.ndarray, seen: np.ndarray, fill: bool) -> tuple[np.ndarray, np.ndarray]:
    """With ``fill``, the plate inpainted up to FILL_PX into where it was not seen (and that
    counted as seen); as it is otherwise."""
    import cv2

    hidden = (~seen).astype(np.uint8)
    if fill and hidden.any():
        p8 = np.clip(plate * 255 + 0.5, 0, 255).astype(np.uint8)
        filled = cv2.inpaint(p8, hidden, 5, cv2.INPAINT_TELEA).astype(np.float32) / 255
        near = (cv2.distanceTransform(hidden, cv2.DIST_L2, 5) <= FILL_PX) & (hidden > 0)
        plate[near] = filled[near]
        seen = seen | near
    return plate, seen


def measure(video, cams: list[str], background, max_frames: int = MAX_FRAMES, progress=None,
            fill: bool = True, soft_masks: bool = True) -> PlateResult:
    """Every listed camera's plate and matte (views through the capture's loader: undistorted,
    masks as repaired); ``soft_masks``: a camera whose masks are coverage has its matte given by
    them (else measured, as for a hard mask)."""
    frames = list(video.frames)
    if len(frames) > max_frames:
        frames = [frames[round(i * (len(frames) - 1) / (max_frames - 1))] for i in range(max_frames)]
    result = PlateResult()
    for cam in cams:
        views = [video.view(f, cam) for f in video.frames_of(cam, frames)]
        views = [v for v in views if v.mask is not None and v.mask.any()]
        if len(views) < MIN_SEEN:
            continue
        soft = soft_masks and any(v.coverage is not None for v in views)
        result.coverage_masks |= soft
        rec, plate = measure_camera([v.image for v in views], [v.mask for v in views], background, fill,
                                    video.backdrop(cam), matte_given=soft)
        result.per_camera[cam] = rec
        if plate is not None:
            result.plates[cam] = plate
        if progress is not None:
            progress()
    if result.plates:
        # one matting process for the rig: the cameras' median softness (a camera's own reading
        # strays where little of its outline has a known plate behind it)
        measured = [p for c, p in result.plates.items() if "matte" not in result.per_camera[c]]
        if measured:
            sigma = float(np.median([p.sigma for p in measured]))
            for p in measured:
                p.sigma = sigma
    return result


def log_result(r: PlateResult) -> None:
    if not r.per_camera:
        return
    if r.coverage_masks:
        log("masks: soft (coverage) — each edge pixel is trained as the subject's share of it")
    if not r.applied:
        log("background plate: none behind the subject (or a hard matte) — edge pixels trained as recorded")
        return
    recs = [r.per_camera[c] for c in r.plates]
    given = sum(rec.get("plate") == "given" for rec in recs)
    source = f"; {given} from the capture's bkgd/ pictures" if given else ""
    shares = [rec["share"][0] for rec in recs if rec["share"]]
    matte = (f"the outermost mask pixel holds {np.mean(shares):.0%} subject" if shares
             else "each pixel by its mask's coverage")
    log(f"background plate: un-mixing the mask's edge rings on {len(r.plates)} of {len(r.per_camera)} training "
        f"cameras (plate known behind {np.mean([rec['seen'] for rec in recs]):.0%} of the image{source}; {matte})")
