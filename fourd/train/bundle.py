"""Refine the training cameras' poses from the images alone, before carving (bundle adjustment).

A real rig's calibration is off by a fraction of a pixel to a few pixels. Carving then cuts the
hull where one camera's silhouette misses, and the image blend copies misregistered pixels into
every render. Aligning cameras to the model's renders during training (:mod:`fourd.train.align`)
is circular — the model was fitted to the same misregistered views — and recovers little.
This module measures the misregistration directly: SIFT features on the subject in each training
camera, matched between each camera and its nearest neighbours on a couple of dozen frames, kept only where
they agree with the given calibration's epipolar geometry within a few pixels, and joined into
tracks; each track's keypoints are then moved onto the one surface point its largest keypoint marks
(an affine patch alignment: SIFT's blob centres differ between views 30° apart by a few tenths of a
pixel, a bias no number of tracks averages out); every track seen by three cameras or more is triangulated (a point seen by two constrains
only their epipolar geometry, which leaves a ring of cameras free to turn about its axis), and the
cameras' pose changes (a rotation about the centre and a shift of the centre, the parameters of
:class:`~fourd.model.corrections.CameraCorrections`) are solved together with the points by robust
least squares (``scipy.optimize.least_squares``, Cauchy loss, sparse Jacobian). The rig's mean
rotation and mean shift are held at zero, so the world frame (and the held-out cameras, which are
never touched) stay where the calibration put them; a weak prior on each shift and turn settles the
scale, the turn-versus-shift ambiguity of a distant subject and the cameras few tracks reach. The
result is used only when it explains the tracks clearly better than the given calibration with the
points solved for it (:attr:`BundleResult.improves`).

The classic recipe (features → matches → epipolar filter → triangulation → bundle adjustment)
follows Hartley & Zisserman, *Multiple View Geometry*, ch. 11–12 and 18 (Sampson distance,
sparse Levenberg–Marquardt); scipy documents the sparse bundle-adjustment use of least_squares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fourd.console import log


@dataclass
class BundleResult:
    names: list[str]
    rotation: np.ndarray  # [C, 3] rotation vectors (radians), zero-mean
    shift: np.ndarray  # [C, 3] centre shifts (world units), zero-mean
    tracks: int = 0  # features followed through three cameras or more
    px_before: float = float("nan")  # median reprojection error of the tracks' observations before / after
    px_after: float = float("nan")
    per_camera: dict = field(default_factory=dict)  # name → {"observations", "rotation_deg", "shift", "px_*"}
    applied: bool = False

    @property
    def improves(self) -> bool:
        """Whether the refined poses explain the matches clearly better than the given ones (the
        median reprojection error down by a fifth or more). On an exact rig the features' own noise
        (0.6–0.9 px on the 512² test captures) is all that is left, the ratio stays near 1, and the
        poses are not touched: refining them there moved exact cameras by 0.1–0.3 px."""
        return bool(self.px_after < ACCEPT_RATIO * self.px_before)

    def to_json(self) -> dict:
        return {"names": self.names, "rotation": self.rotation.tolist(), "shift": self.shift.tolist(),
                "tracks": self.tracks, "px_before": self.px_before, "px_after": self.px_after,
                "applied": self.applied, "cameras": self.per_camera}

    @classmethod
    def from_json(cls, d: dict) -> BundleResult:
        return cls(list(d["names"]), np.asarray(d["rotation"], np.float64).reshape(-1, 3),
                   np.asarray(d["shift"], np.float64).reshape(-1, 3), int(d.get("tracks", 0)),
                   float(d.get("px_before", "nan")), float(d.get("px_after", "nan")), dict(d.get("cameras", {})),
                   bool(d.get("applied", False)))


ACCEPT_RATIO = 0.8


def _rotvec_to_matrix(w: np.ndarray) -> np.ndarray:
    """[N, 3] rotation vectors → [N, 3, 3]: the map the model's pose corrections apply."""
    import torch

    from fourd.model.corrections import rotation_from_vector

    return rotation_from_vector(torch.from_numpy(np.ascontiguousarray(w, np.float64))).numpy()


def _project(K, R, C, X):
    """K, R [N, 3, 3], C [N, 3], X [N, 3] → pixel coordinates [N, 2] and depth [N]."""
    Xc = np.einsum("nij,nj->ni", R, X - C)
    z = Xc[:, 2]
    uv = np.einsum("nij,nj->ni", K, Xc / np.where(np.abs(z) < 1e-12, 1e-12, z)[:, None])[:, :2]
    return uv, z


def _triangulate_tracks(P, track, cam, uv, T):
    """Linear (DLT) triangulation of T tracks from observations (track [O], camera [O], uv [O, 2])
    with projections P [C, 3, 4]: the null vector of each track's stacked 2O × 4 system."""
    rows_u = uv[:, 0:1] * P[cam, 2] - P[cam, 0]  # [O, 4]
    rows_v = uv[:, 1:2] * P[cam, 2] - P[cam, 1]
    A = np.zeros((T, 4, 4))
    for r in (rows_u, rows_v):
        r = r / np.linalg.norm(r, axis=1, keepdims=True)
        np.add.at(A, track, r[:, :, None] * r[:, None, :])  # AᵀA per track
    _, vecs = np.linalg.eigh(A)
    X = vecs[:, :, 0]
    return X[:, :3] / np.where(np.abs(X[:, 3:]) < 1e-12, 1e-12, X[:, 3:])


def _neighbours(centers: np.ndarray, k: int) -> list[tuple[int, int]]:
    """Unordered pairs of each camera with its k nearest (by centre distance)."""
    d = np.linalg.norm(centers[:, None] - centers[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    pairs = set()
    for i in range(len(centers)):
        for j in np.argsort(d[i])[:k]:
            pairs.add((min(i, int(j)), max(i, int(j))))
    return sorted(pairs)


def _search_image(view, erode: int = 3, max_side: int = 1600):
    """The view in grey at the size features are searched at (``max_side`` at most: a 12-MP frame
    costs seconds otherwise), its subject mask there (eroded by ``erode`` px: a corner on the
    outline is the silhouette's, not the surface's; None without a mask) and that size's scale."""
    import cv2

    gray = cv2.cvtColor(view.image, cv2.COLOR_RGB2GRAY)
    mask = None
    if view.mask is not None:
        mask = view.mask.astype(np.uint8) * 255
        if erode:
            mask = cv2.erode(mask, np.ones((2 * erode + 1, 2 * erode + 1), np.uint8))
    s = min(1.0, max_side / max(gray.shape))
    if s < 1.0:
        size = (round(gray.shape[1] * s), round(gray.shape[0] * s))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        mask = None if mask is None else cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
    return gray, mask, s


def _features(view, sift, searched=None, blur: float = 0.5):
    """SIFT keypoints (our pixel coordinates, centres at +½) on the subject, their descriptors, the
    colour of the patch there (RGB in [0, 1], blurred by ``blur`` × the keypoint's size), and the
    keypoints' sizes (px of ``view``) and orientations (degrees). ``searched``: what
    :func:`_search_image` gives for ``view`` (made here when not given)."""
    import cv2

    gray, mask, s = searched if searched is not None else _search_image(view)
    kp, desc = sift.detectAndCompute(gray, mask)
    if desc is None or len(kp) < 8:
        return np.zeros((0, 2)), None, np.zeros((0, 3)), np.zeros(0), np.zeros(0)
    # cv2's pixel centres sit at integers, ours at +½ (and a searched-small image's pixels are 1/s wide)
    uv = (np.array([p.pt for p in kp], np.float64) + 0.5) / s
    img = view.image.astype(np.float32) / 255.0 if view.image.dtype == np.uint8 else view.image.astype(np.float32)
    # the colour of the patch the keypoint describes, not of its centre pixel: SIFT's size follows the
    # surface's scale in each view, so a blur proportional to it averages the same patch of surface
    # in every camera (a blob's centre pixel differs between a near and a far view by the far one's
    # blur — a loss of contrast that would read as a gain)
    size = np.array([p.size for p in kp], np.float64) / s
    sigma = np.maximum(blur * size, 1.0)
    level = np.clip(np.round(np.log2(sigma)).astype(int), 0, 5)
    at = (uv - 0.5).astype(np.float32)[:, None]  # cv2.remap samples at integer pixel centres
    colour = np.zeros((len(kp), 3))
    for lv in np.unique(level):
        sel = level == lv
        b = cv2.GaussianBlur(img, (0, 0), float(2 ** lv))
        colour[sel] = cv2.remap(b, at[sel, :, 0], at[sel, :, 1], cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE).reshape(-1, 3)
    return uv, desc, colour, size, np.array([p.angle for p in kp], np.float64)


def refine_positions(searched: dict, uv: np.ndarray, size: np.ndarray, angle: np.ndarray, track: np.ndarray,
                     cam: np.ndarray, iterations: int = 12, min_ncc: float = 0.8, max_move: float = 3.0):
    """Move each track's keypoints onto the very surface point its reference keypoint (the one of
    largest scale) marks, by matching the reference's patch in each other camera under an affine
    warp with a gain and offset (Lucas–Kanade, Gauss–Newton; Baker & Matthews, *Lucas-Kanade 20
    Years On*, 2004). SIFT puts a keypoint at the centre of a blob as each view sees it; between
    cameras 30° apart the blob is foreshortened differently and the centres differ by a few tenths
    of a pixel, a bias no number of tracks averages out (the features of one frame).

    ``searched``: camera index → :func:`_search_image` of this frame; ``uv`` [O, 2] (our pixel
    coordinates), ``size`` [O], ``angle`` [O] (SIFT's), ``track`` [O], ``cam`` [O]. Returns the
    refined ``uv`` and a bool [O]: observations kept (the reference always; others whose warped
    patch correlates with it by ``min_ncc`` and that moved at most ``max_move`` px)."""
    import cv2

    O = len(uv)
    out, keep = uv.copy(), np.ones(O, bool)
    if O == 0:
        return out, keep
    scale = {a: searched[a][2] for a in searched}
    s_o = np.array([scale[a] for a in cam])
    p = uv * s_o[:, None] - 0.5  # cv2 coordinates of the searched image
    sz = size * s_o
    order = np.lexsort((-sz, track))  # per track, the largest keypoint first
    first = np.r_[True, track[order][1:] != track[order][:-1]]
    ref_of = np.empty(O, np.int64)
    ref_of[order] = order[np.maximum.accumulate(np.where(first, np.arange(O), 0))]
    moving = np.nonzero(ref_of != np.arange(O))[0]
    if len(moving) == 0:
        return out, keep
    ref = ref_of[moving]
    # the reference patch: a 13 × 13 grid over about the keypoint's extent
    n = 13
    radius = np.clip(0.75 * sz[ref], 4.0, 16.0)
    g = np.linspace(-1, 1, n)
    d = np.stack(np.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2)  # [G, 2] unit offsets
    D = d[None] * radius[:, None, None]  # [M, G, 2] offsets in the reference image
    window = np.exp(-2.0 * (d ** 2).sum(1))[None]  # [1, G]

    def sample(which, at, with_grad):
        """The grey level (and its gradient) of the searched images ``which`` [M] at ``at`` [M, G, 2]."""
        vals = np.zeros(at.shape[:2] + ((3,) if with_grad else (1,)), np.float32)
        for a in np.unique(which):
            sel = which == a
            img = grads[a] if with_grad else searched[a][0][..., None]
            m = at[sel].astype(np.float32)
            got = cv2.remap(img, m[..., 0], m[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            vals[sel] = got.reshape(m.shape[0], m.shape[1], -1)
        return vals

    grads = {}
    for a, (gray, _, _) in searched.items():
        f = cv2.GaussianBlur(gray.astype(np.float32) / 255.0, (0, 0), 0.7)
        grads[a] = np.dstack([f, cv2.Sobel(f, cv2.CV_32F, 1, 0, ksize=3) / 8, cv2.Sobel(f, cv2.CV_32F, 0, 1, ksize=3) / 8])
    R = sample(cam[ref], p[ref][:, None] + D, True)[..., 0]  # [M, G]
    w = window * np.ones_like(R)
    for a in np.unique(cam[ref]):  # only the subject: background behind a rim moves with parallax
        m = searched[a][1]
        if m is not None:
            sel = cam[ref] == a
            at = (p[ref][sel][:, None] + D[sel]).astype(np.float32)
            w[sel] *= cv2.remap(m.astype(np.float32) / 255, at[..., 0], at[..., 1], cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    def ncc(I):
        """Weighted normalised cross-correlation of patches I [M, G] with the references."""
        def centred(x):
            return x - (x * w).sum(1, keepdims=True) / np.maximum(w.sum(1, keepdims=True), 1e-9)

        a_, b_ = centred(I), centred(R)
        return (w * a_ * b_).sum(1) / np.sqrt((w * a_ ** 2).sum(1) * (w * b_ ** 2).sum(1) + 1e-12)

    # start: the reference patch scaled by the keypoints' size ratio and turned by their orientation difference
    # (cv2's angle turns from +x toward +y in image coordinates; the turn's sign is checked anyway:
    # of no turn, that turn and its opposite, the start whose patch correlates best is taken)
    t = p[moving].copy()
    k = sz[moving] / sz[ref]
    best, A = np.full(len(moving), -np.inf), np.zeros((len(moving), 2, 2))
    for sign in (0.0, 1.0, -1.0):
        turn = sign * np.radians(angle[moving] - angle[ref])
        c, s_ = np.cos(turn), np.sin(turn)
        Ai = np.stack([np.stack([c, -s_], -1), np.stack([s_, c], -1)], -2) * k[:, None, None]
        score = ncc(sample(cam[moving], t[:, None] + np.einsum("mij,mgj->mgi", Ai, D), False)[..., 0])
        better = score > best
        best[better], A[better] = score[better], Ai[better]
    # the gain and offset act on the camera's patch (gain · I + offset ≈ reference): on the
    # reference's side they would let the warp shrink to a point and fit a flat patch perfectly.
    # Levenberg–Marquardt: a step is taken only where it lowers that patch's cost
    M = len(moving)
    x = np.concatenate([A.reshape(M, 4), t, np.ones((M, 1)), np.zeros((M, 1))], 1)  # A, t, gain, offset

    def evaluate(x):
        at = x[:, None, 4:6] + np.einsum("mij,mgj->mgi", x[:, :4].reshape(M, 2, 2), D)
        S = sample(cam[moving], at, True)
        r = x[:, 6:7] * S[..., 0] + x[:, 7:8] - R
        return S, r, (w * r ** 2).sum(1)

    S, r, cost = evaluate(x)
    lam = np.full(M, 1e-3)
    for _ in range(iterations):
        I, gx, gy = S[..., 0] , x[:, 6:7] * S[..., 1], x[:, 6:7] * S[..., 2]
        J = np.stack([gx * D[..., 0], gx * D[..., 1], gy * D[..., 0], gy * D[..., 1], gx, gy, I, np.ones_like(I)], -1)
        Jw = J * w[..., None]
        H = np.einsum("mgi,mgj->mij", Jw, J)
        H = H + (lam[:, None, None] * np.eye(8)) * (np.diagonal(H, axis1=1, axis2=2)[:, :, None] + 1e-9)
        step = np.linalg.solve(H, -np.einsum("mgi,mg->mi", Jw, r)[..., None])[..., 0]
        S2, r2, cost2 = evaluate(x + step)
        better = cost2 < cost
        x[better], S[better], r[better], cost[better] = x[better] + step[better], S2[better], r2[better], cost2[better]
        lam = np.where(better, lam / 3, lam * 4)
    A, t = x[:, :4].reshape(M, 2, 2), x[:, 4:6]
    final = ncc(sample(cam[moving], t[:, None] + np.einsum("mij,mgj->mgi", A, D), False)[..., 0])
    moved = np.linalg.norm(t - p[moving], axis=1)
    ok = np.isfinite(t).all(1) & (final >= min_ncc) & (moved <= max_move * s_o[moving]) & (w.sum(1) > 0.3 * window.sum())
    out[moving] = (t + 0.5) / s_o[moving][:, None]
    keep[moving] = ok
    return out, keep


@dataclass
class Tracks:
    """Features followed through the training cameras: observation ``o`` of track ``track[o]`` by
    camera ``cam[o]`` at pixel ``uv[o]`` with colour ``colour[o]``; ``K, R, C``: the given calibration."""
    names: list[str]
    K: np.ndarray  # [C, 3, 3]
    R: np.ndarray  # [C, 3, 3]
    C: np.ndarray  # [C, 3] centres
    track: np.ndarray  # [O]
    cam: np.ndarray  # [O]
    uv: np.ndarray  # [O, 2]
    colour: np.ndarray  # [O, 3]

    @property
    def count(self) -> int:
        return int(self.track.max()) + 1 if len(self.track) else 0

    def subset(self, keep: np.ndarray) -> Tracks:
        """The observations ``keep`` (bool [O]) with the tracks renumbered."""
        _, t = np.unique(self.track[keep], return_inverse=True)
        return Tracks(self.names, self.K, self.R, self.C, t.reshape(-1), self.cam[keep], self.uv[keep], self.colour[keep])

    def seen_by(self, n: int) -> Tracks:
        """The tracks seen by ``n`` cameras or more."""
        cams = np.bincount(self.track, minlength=self.count)
        return self.subset(cams[self.track] >= n)


def collect_tracks(video, names: list[str], frames: list[int], neighbours: int = 8,
                   epipolar_px: float = 6.0, refine: bool = True, features: int = 4000,
                   contrast: float = 0.01) -> Tracks:
    """SIFT features of cameras ``names`` on ``frames``, each camera matched with its ``neighbours``
    nearest, matches kept where the given calibration's epipolar geometry explains them within
    ``epipolar_px`` (Sampson distance), joined into tracks (union-find, within a frame); tracks
    with two keypoints in one camera are dropped (a mismatch joined them). ``refine``: each
    track's keypoints moved onto the point its largest one marks (:func:`refine_positions`); those
    that do not align are dropped. Tracks seen by two cameras or more. ``features``, ``contrast``:
    SIFT's keypoint budget per image and contrast threshold."""
    import cv2

    cams = video.cameras
    idx = [cams.index(n) for n in names]
    C = len(idx)
    # a low contrast threshold: a synthetic or evenly lit subject has few strong corners
    sift = cv2.SIFT_create(nfeatures=features, contrastThreshold=contrast)
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    K = np.zeros((C, 3, 3))
    R0 = np.zeros((C, 3, 3))
    c0 = np.zeros((C, 3))
    pairs = None
    parts = []  # per frame: track, cam, uv, colour
    base = 0
    for f in frames:
        feats, searched = {}, {}
        for a, i in enumerate(idx):
            v = video.view(f, i)  # undistorted, as training sees it
            K[a], R0[a] = v.camera.K[0].double().numpy(), v.camera.R[0].double().numpy()
            c0[a] = v.camera.centers[0].double().numpy()
            searched[a] = _search_image(v)
            feats[a] = _features(v, sift, searched[a])
        if pairs is None:
            pairs = _neighbours(c0, min(neighbours, C - 1))
        # this frame's keypoints numbered in camera order; matches join them into tracks (union-find)
        first = np.cumsum([0] + [len(feats[a][0]) for a in range(C)])
        parent = np.arange(first[-1])

        def find(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for a, b in pairs:
            (pa, da, *_), (pb, db, *_) = feats[a], feats[b]
            if da is None or db is None:
                continue
            good = [m[0] for m in matcher.knnMatch(da, db, k=2) if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
            if len(good) < 8:
                continue
            qa = np.array([m.queryIdx for m in good])
            qb = np.array([m.trainIdx for m in good])
            # keep matches the given calibration's epipolar geometry explains within epipolar_px
            cams_ab = (np.repeat(v[None], len(qa), 0) for v in (K[a], R0[a], c0[a], K[b], R0[b], c0[b]))
            keep = _sampson(None, pa[qa], pb[qb], *cams_ab) < epipolar_px
            for i, j in zip(qa[keep] + first[a], qb[keep] + first[b]):
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[ri] = rj
        if first[-1] == 0:
            continue
        cam = np.concatenate([np.full(len(feats[a][0]), a) for a in range(C)])
        uv, colour, size, angle = (np.concatenate([feats[a][k] for a in range(C)]) for k in (0, 2, 3, 4))
        roots = np.array([find(i) for i in range(first[-1])], dtype=np.int64)
        uniq, track, sizes = np.unique(roots, return_inverse=True, return_counts=True)
        track = track.reshape(-1)
        n_cams = np.zeros(len(uniq), int)
        np.add.at(n_cams, np.unique(track * C + cam) // C, 1)
        sel = ((sizes == n_cams) & (n_cams >= 2))[track]  # one keypoint per camera, two cameras or more
        track, cam, uv, colour, size, angle = track[sel], cam[sel], uv[sel], colour[sel], size[sel], angle[sel]
        if refine and len(track):
            uv, ok = refine_positions(searched, uv, size, angle, track, cam)
            track, cam, uv, colour = track[ok], cam[ok], uv[ok], colour[ok]
        _, track = np.unique(track, return_inverse=True)
        parts.append((base + track.reshape(-1), cam, uv, colour))
        base += int(track.max()) + 1 if len(track) else 0
    if not parts:
        return Tracks(list(names), K, R0, c0, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 2)), np.zeros((0, 3)))
    track, cam, uv, colour = (np.concatenate([q[k] for q in parts]) for k in range(4))
    return Tracks(list(names), K, R0, c0, track, cam, uv, colour).seen_by(2)


def refine_rig(video, names: list[str], frames: list[int], neighbours: int = 8, epipolar_px: float = 6.0,
               shift_prior: float = 1.0, turn_prior: float = 10.0, robust_px: float = 0.25, max_tracks: int = 20_000, min_tracks: int = 5,
               seed: int = 0, tracks: Tracks | None = None) -> BundleResult | None:
    """Pose changes of cameras ``names`` that make their images of ``frames`` agree (see the module
    docstring). ``epipolar_px``: how far (Sampson distance, px) a match may sit off the given
    calibration's epipolar line; ``shift_prior``: weight of the prior on each centre shift, in
    pixels of residual per pixel of image motion the shift causes, ``turn_prior`` the same for each
    turn (a camera few tracks reach stays near its calibration); ``robust_px``: the residual (px)
    beyond which an observation's weight falls (Cauchy loss); ``tracks``: those
    :func:`collect_tracks` found (collected here when not given). None when too little matches."""
    from scipy.optimize import least_squares

    if tracks is None:
        tracks = collect_tracks(video, names, frames, neighbours, epipolar_px)
    # a point seen by two cameras only constrains their epipolar geometry, which leaves a ring's
    # turns about its axis free: tracks through three cameras or more
    tr = tracks.seen_by(3)
    K, R0, c0, C = tr.K, tr.R, tr.C, len(names)
    dist = float(np.median(np.linalg.norm(c0 - c0.mean(0), axis=1))) or 1.0
    focal = float(np.median(K[:, 1, 1]))
    track, cam_o, uv_o, T = tr.track, tr.cam, tr.uv, tr.count
    if T > max_tracks:
        pick = np.random.default_rng(seed).choice(T, max_tracks, replace=False)
        keepT = np.zeros(T, bool)
        keepT[pick] = True
        sel = keepT[track]
        _, track = np.unique(track[sel], return_inverse=True)
        track = track.reshape(-1)
        cam_o, uv_o = cam_o[sel], uv_o[sel]
        T = max_tracks
    if T < min_tracks * C:
        return None
    P = np.concatenate([K @ R0, (K @ R0 @ -c0[:, :, None])], 2)  # [C, 3, 4]
    X0 = _triangulate_tracks(P, track, cam_o, uv_o, T)
    uv0, z0 = _project(K[cam_o], R0[cam_o], c0[cam_o], X0[track])
    err0 = np.linalg.norm(uv0 - uv_o, axis=1)
    bad = np.zeros(T, bool)
    np.logical_or.at(bad, track, (err0 > epipolar_px) | (z0 <= 0))
    sel = ~bad[track]
    remap = np.cumsum(~bad) - 1
    track, cam_o, uv_o, X0 = remap[track[sel]], cam_o[sel], uv_o[sel], X0[~bad]
    T, O = len(X0), len(track)
    if T < min_tracks * C:
        return None
    # parameters, each scaled so that one unit moves an image by about one pixel: per camera the
    # rotation vector × focal and the centre shift × focal / dist, then each point's offset from
    # its triangulation × focal / dist. Residuals in pixels (Cauchy beyond robust_px); the gauge (the
    # rig's mean rotation and mean shift) is pinned by heavy rows, and each shift's prior weighs
    # shift_prior pixels of residual per pixel of image motion the shift causes (turn_prior: each turn's)
    gw = 100.0

    def unpack(x):
        w = x[:3 * C].reshape(C, 3) / focal
        s = x[3 * C:6 * C].reshape(C, 3) * dist / focal
        return w, s, X0 + x[6 * C:].reshape(T, 3) * dist / focal

    def reproj(x):
        w, s, X = unpack(x)
        Rs = _rotvec_to_matrix(w) @ R0
        uv, _ = _project(K[cam_o], Rs[cam_o], (c0 + s)[cam_o], X[track])
        return uv - uv_o

    def residuals(x):
        q = x[3 * C:6 * C].reshape(C, 3)
        return np.concatenate([reproj(x).ravel(), shift_prior * q.ravel(), turn_prior * x[:3 * C],
                               gw * x[:3 * C].reshape(C, 3).mean(0), gw * q.mean(0)])

    from scipy.sparse import coo_matrix

    r_idx, c_idx = [], []
    for k in range(2):
        rows = 2 * np.arange(O) + k
        for p in range(3):
            r_idx += [rows, rows, rows]
            c_idx += [3 * cam_o + p, 3 * C + 3 * cam_o + p, 6 * C + 3 * track + p]
    for a in range(C):
        for p in range(3):
            r_idx.append(np.array([2 * O + 3 * a + p]))
            c_idx.append(np.array([3 * C + 3 * a + p]))
    r_idx.append(2 * O + 3 * C + np.arange(3 * C))
    c_idx.append(np.arange(3 * C))
    gr = 2 * O + 6 * C + np.arange(6)
    r_idx.append(np.repeat(gr, 6 * C))
    c_idx.append(np.tile(np.arange(6 * C), 6))
    r_idx, c_idx = np.concatenate(r_idx), np.concatenate(c_idx)
    S = coo_matrix((np.ones(len(r_idx), np.int8), (r_idx, c_idx)), shape=(2 * O + 6 * C + 6, 6 * C + 3 * T)).tocsr()
    S.data[:] = 1
    # each linear step solved to convergence: lsmr's default tolerances stopped the outer iterations far
    # from the optimum (median residual 0.58 px where the true cameras reach 0.36 on a test capture)
    solver = dict(loss="cauchy", f_scale=robust_px, x_scale=1.0, method="trf", tr_solver="lsmr", max_nfev=100,
                  tr_options={"atol": 1e-12, "btol": 1e-12, "maxiter": 2000})
    x0 = np.zeros(6 * C + 3 * T)
    sol = least_squares(residuals, x0, jac_sparsity=S, **solver)
    w, s, _ = unpack(sol.x)
    # "before": the given cameras with the points solved for them alone — the same fit with the cameras
    # held, so the comparison measures what moving the cameras explains (the triangulated points alone
    # fit worse, and against them an exact rig seemed to improve by a fifth)
    fixed = least_squares(lambda xp: reproj(np.concatenate([np.zeros(6 * C), xp])).ravel(), x0[6 * C:],
                          jac_sparsity=S[:2 * O, 6 * C:], **solver)
    before = np.linalg.norm(reproj(np.concatenate([np.zeros(6 * C), fixed.x])), axis=1)
    after = np.linalg.norm(reproj(sol.x), axis=1)
    w, s = w - w.mean(0), s - s.mean(0)
    per = {}
    for a, n in enumerate(names):
        sel = cam_o == a
        per[n] = {"observations": int(sel.sum()), "rotation_deg": float(np.linalg.norm(w[a])) * 180 / math.pi,
                  "shift": s[a].tolist(),
                  "px_before": float(np.median(before[sel])) if sel.any() else float("nan"),
                  "px_after": float(np.median(after[sel])) if sel.any() else float("nan")}
    return BundleResult(list(names), w, s, T, float(np.median(before)), float(np.median(after)), per)


def _fundamental(Ka, Ra, ca, Kb, Rb, cb) -> np.ndarray:
    """[N, 3, 3] F with x_bᵀ F x_a = 0 for camera pairs a, b ([N, 3, 3] world→camera R, [N, 3] centres)."""
    R = Rb @ np.swapaxes(Ra, 1, 2)
    t = np.einsum("nij,nj->ni", Rb, ca - cb)
    tx = np.zeros_like(R)
    tx[:, 0, 1], tx[:, 0, 2], tx[:, 1, 2] = -t[:, 2], t[:, 1], -t[:, 0]
    tx[:, 1, 0], tx[:, 2, 0], tx[:, 2, 1] = t[:, 2], -t[:, 1], t[:, 0]
    return np.swapaxes(np.linalg.inv(Kb), 1, 2) @ tx @ R @ np.linalg.inv(Ka)


def _sampson(F, xa, xb, *cams, signed: bool = False) -> np.ndarray:
    """Sampson distance (px) of matches xa [N, 2] → xb [N, 2] under F [N, 3, 3] (or the F of the
    cameras ``Ka, Ra, ca, Kb, Rb, cb``)."""
    if F is None:
        F = _fundamental(*cams)
    ha = np.concatenate([xa, np.ones((len(xa), 1))], 1)
    hb = np.concatenate([xb, np.ones((len(xb), 1))], 1)
    Fa = np.einsum("nij,nj->ni", F, ha)
    Fb = np.einsum("nji,nj->ni", F, hb)
    num = np.einsum("ni,ni->n", hb, Fa)
    den = np.sqrt(np.maximum(Fa[:, 0] ** 2 + Fa[:, 1] ** 2 + Fb[:, 0] ** 2 + Fb[:, 1] ** 2, 1e-24))
    return num / den if signed else np.abs(num) / den


def log_result(res: BundleResult) -> None:
    worst = max(res.per_camera.items(), key=lambda kv: kv[1]["rotation_deg"])
    what = (f"applied; largest turn {worst[1]['rotation_deg']:.3f}° (camera {worst[0]})" if res.applied else
            "not applied (the given calibration explains the matches as well)")
    log(f"rig check from {res.tracks:,} feature tracks: median reprojection error "
        f"{res.px_before:.2f} → {res.px_after:.2f} px — {what}")
