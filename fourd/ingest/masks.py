"""Foreground masks for an ingested capture.

- ``plate``: background-plate differencing. Each camera filmed the empty scene; its plate is the
  per-pixel median of those frames and its noise level their spread. A pixel differs from the plate
  by a distance in CIE Lab (lightness weighted down, so soft shadows count less than colour);
  hysteresis keeps weak differences only where they touch strong ones; small specks are dropped,
  holes inside the silhouette filled, and the edge is snapped to the image with a guided filter.
- ``key``: a plain backdrop of one colour — a renderer's black or white, a chroma-key studio's green
  or blue — is a plate of that colour (the median of the images' borders, or a given one), its noise
  the borders' spread; on a coloured screen lightness counts a third (the screen's shading varies).
- ``model``: a learned segmenter from a local folder (see ``fourd.ingest.segmenter``).
- ``check_masks``: multi-view consistency. Carve the visual hull of each frame from all masks,
  project it back, and flag masks the hull does not explain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fourd.errors import DataError


@dataclass
class Plate:
    lab: np.ndarray    # [H, W, 3] float32 median plate in Lab
    sigma: float       # noise level of the Lab distance (robust)


def to_lab(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def lab_distance(a: np.ndarray, b: np.ndarray, lightness: float = 1.0, rim: bool = True) -> np.ndarray:
    """Lab distance with the chroma difference min-filtered over 3×3: video codecs store colour at
    half resolution (4:2:0), which bleeds a subject's colour one pixel into the background; the
    minimum keeps chroma evidence inside regions and drops that rim (lightness is full resolution).
    ``lightness`` weighs the lightness difference; ``rim=False`` skips the min filter (images that
    hold colour at full resolution: a thin part two pixels wide keeps its colour)."""
    import cv2

    d = a - b
    chroma = np.sqrt(d[..., 1] ** 2 + d[..., 2] ** 2).astype(np.float32)
    if rim:
        chroma = cv2.erode(chroma, np.ones((3, 3), np.uint8))
    return np.sqrt((lightness * d[..., 0]) ** 2 + chroma ** 2)


def make_plate(frames: list[np.ndarray], where: str = "") -> Plate:

    if not frames:
        raise DataError("background plate has no frames", where, "film a few seconds of the empty scene")
    labs = np.stack([to_lab(f) for f in frames])
    med = np.median(labs, 0)
    if len(frames) > 1:
        sigma = float(np.median(np.stack([lab_distance(x, med) for x in labs])) * 1.4826)
    else:
        sigma = 1.0
    return Plate(med.astype(np.float32), max(sigma, 0.5))


def plate_mask(rgb: np.ndarray, plate: Plate, low: float = 4.0, high: float = 10.0,
               min_area: float = 0.002, max_fraction: float = 0.01, refine: bool = True,
               blur: bool = False, lightness: float = 1.0, rim: bool = True) -> np.ndarray:
    """Boolean foreground mask of ``rgb`` against ``plate``; ``low``/``high`` in units of the plate's
    noise level (each at least a few Lab units, so a clean plate does not make everything foreground).
    Holes up to ``max_fraction`` of the silhouette are filled (subject colours that happen to match
    the plate); larger ones are background seen through the subject (between the legs) and stay.
    ``blur``: smooth the image first (very noisy sensors); ``lightness``: weight of the lightness
    difference, ``rim`` whether chroma is taken as half resolution (:func:`lab_distance`)."""
    import cv2
    from scipy import ndimage
    from skimage.filters import apply_hysteresis_threshold

    if rgb.shape[:2] != plate.lab.shape[:2]:
        raise DataError(f"image {rgb.shape[1]}×{rgb.shape[0]} and plate {plate.lab.shape[1]}×{plate.lab.shape[0]} "
                        "differ in size", None, "film the plate with the same camera settings")
    d = lab_distance(to_lab(cv2.GaussianBlur(rgb, (3, 3), 0) if blur else rgb), plate.lab, lightness, rim)
    lo, hi = max(low * plate.sigma, 6.0), max(high * plate.sigma, 14.0)
    m = apply_hysteresis_threshold(d, lo, hi)
    m = ndimage.binary_closing(m, np.ones((3, 3)), iterations=1)
    lab, n = ndimage.label(m)
    if n:
        area = ndimage.sum(np.ones_like(d), lab, np.arange(1, n + 1))
        keep = np.zeros(n + 1, bool)
        keep[1:] = area >= max(min_area * m.size, 0.05 * area.max())
        m = keep[lab]
    m = fill_small_holes(m, max_fraction)
    if refine and m.any():
        m = guided_refine(rgb, m, d, lo, hi)
    return m


KEYS = {"black": (0, 0, 0), "white": (255, 255, 255)}
KEY_SPREAD_MAX = 25.0  # Lab units: borders more varied than this are a room, not a backdrop


def parse_key(key: str) -> tuple[int, int, int] | None:
    """``auto`` → None (the images' borders tell), ``black``, ``white`` or ``R,G,B`` (0–255)."""
    from fourd.errors import FourdError

    k = key.strip().lower()
    if k == "auto":
        return None
    if k in KEYS:
        return KEYS[k]
    try:
        rgb = tuple(int(v) for v in k.split(","))
    except ValueError:
        rgb = ()
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise FourdError(f"cannot read the key colour '{key}'", "--key",
                         "use auto (a green or blue screen too), black, white or R,G,B with 0–255 values")
    return rgb


def key_plate(frames: list[np.ndarray], key: tuple[int, int, int] | None, where: str = "",
              border: int = 6) -> tuple[Plate, float]:
    """The plate of a plain backdrop behind ``frames`` (one camera's images): the colour ``key`` or,
    when None, the median of the frames' border pixels; its noise level from their spread about it.
    Returns (plate, lightness weight): a coloured screen (chroma above 20) weighs lightness a third,
    since its shading varies; black, white or grey keep it whole (lightness is all they differ by)."""
    edge = np.concatenate([np.concatenate([f[:border].reshape(-1, 3), f[-border:].reshape(-1, 3),
                                           f[:, :border].reshape(-1, 3), f[:, -border:].reshape(-1, 3)])
                           for f in frames])
    lab_edge = to_lab(edge[None])[0]
    lab_key = (np.median(lab_edge, 0) if key is None else
               to_lab(np.array([[key]], np.uint8))[0, 0]).astype(np.float32)
    lightness = 0.33 if float(np.hypot(lab_key[1], lab_key[2])) > 20 else 1.0
    d = lab_distance(lab_edge[None], np.broadcast_to(lab_key, lab_edge[None].shape), lightness)[0]
    # the backdrop's own range (a screen's shading, noise): 95 % of the border lies within it (the
    # subject may touch a border); key_mask thresholds at 1.5× and 3× that
    spread = float(np.percentile(d, 95))
    if spread > KEY_SPREAD_MAX or float(np.median(d)) > KEY_SPREAD_MAX / 2:
        raise DataError(f"the images' borders are not one colour (95 % within {spread:.1f} Lab units of "
                        f"{np.round(lab_key, 1).tolist()}): not a plain backdrop", where,
                        "film the empty scene and cut masks with --background, or use --model")
    H, W = frames[0].shape[:2]
    return Plate(np.broadcast_to(lab_key, (H, W, 3)).copy(), max(spread, 0.5)), lightness


def key_mask(rgb: np.ndarray, plate: Plate, lightness: float) -> np.ndarray:
    """Boolean foreground of ``rgb`` before a plain backdrop (:func:`key_plate`): pixels beyond 3×
    the backdrop's own range seed the subject, hysteresis grows them down to 1.5× (at least 6 and
    14 Lab units), then as :func:`plate_mask`. Chroma is read at full resolution: the min filter
    against a video's half-resolution colour would erase a thin part two pixels wide (a render's
    limb far away), against one pixel of a video's colour rim the guided refinement snaps to.
    Before a coloured screen a hole in the silhouette is the screen seen through the subject (the
    gap between an arm and the body: its colour is the key's, no subject's), so only specks of 16
    pixels or fewer are filled; before black or white a hole may be a subject part as dark or as
    light as the backdrop, and holes up to 1 % of the silhouette are filled as for a plate."""
    return plate_mask(rgb, plate, low=1.5, high=3.0, lightness=lightness, rim=False,
                      max_fraction=0.0 if lightness < 1.0 else 0.01)


def fill_small_holes(m: np.ndarray, max_fraction: float) -> np.ndarray:
    from scipy import ndimage

    holes = ndimage.binary_fill_holes(m) & ~m
    lab, n = ndimage.label(holes)
    if not n:
        return m
    area = ndimage.sum(np.ones(m.shape), lab, np.arange(1, n + 1))
    small = np.zeros(n + 1, bool)
    small[1:] = area <= max(16.0, max_fraction * m.sum())
    return m | small[lab]


def guided_refine(rgb: np.ndarray, m: np.ndarray, d: np.ndarray, lo: float, hi: float, radius: int = 2,
                  eps: float = 1e-3) -> np.ndarray:
    """Snap the mask's edge to the image: a guided filter (He et al. 2010) of the soft difference
    score with the image as guide, thresholded at one half, inside a band around the edge only."""
    import cv2

    soft = np.clip((d - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)
    soft = np.where(m, np.maximum(soft, 0.5 + 0.5 * soft), soft * 0.5)
    guide = rgb.astype(np.float32) / 255.0
    gray = cv2.cvtColor(guide, cv2.COLOR_RGB2GRAY)
    k = (2 * radius + 1, 2 * radius + 1)
    mean = lambda x: cv2.blur(x, k)
    mI, mp = mean(gray), mean(soft)
    a = (mean(gray * soft) - mI * mp) / (mean(gray * gray) - mI * mI + eps)
    b = mp - a * mI
    q = mean(a) * gray + mean(b)
    band = cv2.dilate(m.astype(np.uint8), np.ones((5, 5), np.uint8)) != cv2.erode(m.astype(np.uint8),
                                                                                     np.ones((5, 5), np.uint8))
    out = m.copy()
    out[band] = q[band] > 0.5
    return out


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    u = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / u) if u else 1.0


def _carve(cams, masks: dict, X: np.ndarray):
    import torch

    inside = np.zeros(len(X), np.int32)
    seen = np.zeros(len(X), np.int32)
    proj = {}
    for n, m in masks.items():
        i = cams.index(n)
        uv, z = cams[i].project(torch.from_numpy(X).to(cams.K.dtype))
        uv, z = uv.reshape(-1, 2).double().numpy(), z.reshape(-1).double().numpy()
        H, W = m.shape
        px, py = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
        ok = (z > 0) & (px >= 0) & (py >= 0) & (px < W) & (py < H)
        hit = np.zeros(len(X), bool)
        hit[ok] = m[py[ok], px[ok]]
        inside += hit
        seen += ok
        proj[n] = (px, py, ok, z)
    # in the hull when inside every camera's mask but one (one bad mask does not cut the hull); a
    # camera that does not see the voxel counts as a miss: the subject is in every view of a rig
    return inside >= max(2, len(masks) - 1), proj


def _grid(lo: np.ndarray, hi: np.ndarray, n: int) -> tuple[np.ndarray, float]:
    step = float((hi - lo).max()) / (n - 1)
    axes = [np.arange(lo[k], hi[k] + step / 2, step) for k in range(3)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3), step


def check_masks(cams, masks: dict[str, np.ndarray], grid: int = 64, radius: float | None = None,
                center=(0.0, 0.0, 0.0)) -> dict[str, float]:
    """IoU of each camera's mask with the projection of the visual hull carved from all masks (one
    frame). A mask the others disagree with (a hole, a stray blob, a missed limb) scores low.
    Carved twice: coarsely in a cube around ``center`` to find the subject, then finely in its box."""
    import cv2

    C = cams.centers.double().numpy()
    center = np.asarray(center, np.float64)
    if radius is None:
        radius = 0.8 * float(np.linalg.norm(C - center, axis=1).min())
    X, step = _grid(center - radius, center + radius, 40)
    hull, _ = _carve(cams, masks, X)
    if not hull.any():
        raise DataError("the masks share no common volume (visual hull is empty)", None,
                        "check the calibration (cameras may be mirrored or misplaced) and the masks")
    lo, hi = X[hull].min(0) - step, X[hull].max(0) + step
    X, step = _grid(lo, hi, grid)
    hull, proj = _carve(cams, masks, X)
    out = {}
    for n, m in masks.items():
        px, py, ok, z = proj[n]
        H, W = m.shape
        img = np.zeros((H, W), np.uint8)
        sel = hull & ok
        if not sel.any():
            out[n] = 0.0
            continue
        i = cams.index(n)
        # voxels are larger than pixels: close the splatted centres into a solid silhouette
        r = max(1, int(np.ceil(0.5 * float(cams.K[i, 0, 0]) * step / float(np.median(z[sel])))))
        img[py[sel], px[sel]] = 1
        img = cv2.dilate(img, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
        out[n] = mask_iou(img > 0, m)
    return out
