"""Refine the training cameras' poses from the images alone, before carving (bundle adjustment).

A real rig's calibration is off by a fraction of a pixel to a few pixels. Carving then cuts the
hull where one camera's silhouette misses, and the image blend copies misregistered pixels into
every render. Aligning cameras to the model's renders during training (:mod:`fourd.train.align`)
is circular — the model was fitted to the same misregistered views — and recovers little.
This module measures the misregistration directly: SIFT features on the subject in each training
camera, matched between each camera and its nearest neighbours on a couple of dozen frames, kept only where
they agree with the given calibration's epipolar geometry within a few pixels, and joined into
tracks; every track seen by three cameras or more is triangulated (a point seen by two constrains
only their epipolar geometry, which leaves a ring of cameras free to turn about its axis), and the
cameras' pose changes (a rotation about the centre and a shift of the centre, the parameters of
:class:`~fourd.model.corrections.CameraCorrections`) are solved together with the points by robust
least squares (``scipy.optimize.least_squares``, Huber loss, sparse Jacobian). The rig's mean
rotation and mean shift are held at zero, so the world frame (and the held-out cameras, which are
never touched) stay where the calibration put them; a weak prior on each shift settles the scale
and the turn-versus-shift ambiguity of a distant subject. The result is used only when it explains
the tracks clearly better than the given calibration (:attr:`BundleResult.improves`).

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


def _triangulate_tracks(P, track, cam, uv, T, centre=None, scale: float = 1.0):
    """Linear (DLT) triangulation of T tracks from observations (track [O], camera [O], uv [O, 2])
    with projections P [C, 3, 4]: the null vector of each track's stacked 2O × 4 system, solved in
    world coordinates moved to ``centre`` and divided by ``scale`` (the rig's middle and size):
    otherwise a rig in millimetres far from the origin weighs the homogeneous coordinate ~10³× less
    than the rest, and the null vector loses the digits that place the points (tracks lost)."""
    c = np.zeros(3) if centre is None else np.asarray(centre, np.float64)
    N = np.eye(4)
    N[:3, :3] *= scale
    N[:3, 3] = c
    P = P @ N  # x = P·X = (P·N)·X' for X = N·X' = centre + scale·X'
    rows_u = uv[:, 0:1] * P[cam, 2] - P[cam, 0]  # [O, 4]
    rows_v = uv[:, 1:2] * P[cam, 2] - P[cam, 1]
    A = np.zeros((T, 4, 4))
    for r in (rows_u, rows_v):
        r = r / np.linalg.norm(r, axis=1, keepdims=True)
        np.add.at(A, track, r[:, :, None] * r[:, None, :])  # AᵀA per track
    _, vecs = np.linalg.eigh(A)
    X = vecs[:, :, 0]
    return c + scale * X[:, :3] / np.where(np.abs(X[:, 3:]) < 1e-12, 1e-12, X[:, 3:])


def _neighbours(centers: np.ndarray, k: int) -> list[tuple[int, int]]:
    """Unordered pairs of each camera with its k nearest (by centre distance)."""
    d = np.linalg.norm(centers[:, None] - centers[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    pairs = set()
    for i in range(len(centers)):
        for j in np.argsort(d[i])[:k]:
            pairs.add((min(i, int(j)), max(i, int(j))))
    return sorted(pairs)


def _features(view, sift, erode: int = 3, max_side: int = 1600, blur: float = 0.5):
    """SIFT keypoints (our pixel coordinates, centres at +½), descriptors and the colour of the
    patch there (RGB in [0, 1], blurred by ``blur`` × the keypoint's size) on the subject; images
    larger than ``max_side`` are searched at that size (a 12-MP frame costs seconds otherwise)."""
    import cv2

    gray = cv2.cvtColor(view.image, cv2.COLOR_RGB2GRAY)
    mask = None
    if view.mask is not None:
        mask = view.mask.astype(np.uint8) * 255
        if erode:  # not on the outline: a corner there is the silhouette's, not the surface's
            mask = cv2.erode(mask, np.ones((2 * erode + 1, 2 * erode + 1), np.uint8))
    s = min(1.0, max_side / max(gray.shape))
    if s < 1.0:
        size = (round(gray.shape[1] * s), round(gray.shape[0] * s))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        mask = None if mask is None else cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
    kp, desc = sift.detectAndCompute(gray, mask)
    if desc is None or len(kp) < 8:
        return np.zeros((0, 2)), None, np.zeros((0, 3))
    # cv2's pixel centres sit at integers, ours at +½ (and a searched-small image's pixels are 1/s wide)
    uv = (np.array([p.pt for p in kp], np.float64) + 0.5) / s
    img = view.image.astype(np.float32) / 255.0 if view.image.dtype == np.uint8 else view.image.astype(np.float32)
    # the colour of the patch the keypoint describes, not of its centre pixel: SIFT's size follows the
    # surface's scale in each view, so a blur proportional to it averages the same patch of surface
    # in every camera (a blob's centre pixel differs between a near and a far view by the far one's
    # blur — a loss of contrast that would read as a gain)
    sigma = np.maximum(blur * np.array([p.size for p in kp]) / s, 1.0)
    level = np.clip(np.round(np.log2(sigma)).astype(int), 0, 5)
    at = (uv - 0.5).astype(np.float32)[:, None]  # cv2.remap samples at integer pixel centres
    colour = np.zeros((len(kp), 3))
    for lv in np.unique(level):
        sel = level == lv
        b = cv2.GaussianBlur(img, (0, 0), float(2 ** lv))
        colour[sel] = cv2.remap(b, at[sel, :, 0], at[sel, :, 1], cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE).reshape(-1, 3)
    return uv, desc, colour


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
                   epipolar_px: float = 6.0) -> Tracks:
    """SIFT features of cameras ``names`` on ``frames``, each camera matched with its ``neighbours``
    nearest, matches kept where the given calibration's epipolar geometry explains them within
    ``epipolar_px`` (Sampson distance), joined into tracks (union-find); tracks with two keypoints
    in one camera are dropped (a mismatch joined them). Tracks seen by two cameras or more."""
    import cv2

    cams = video.cameras
    idx = [cams.index(n) for n in names]
    C = len(idx)
    # a low contrast threshold: a synthetic or evenly lit subject has few strong corners
    sift = cv2.SIFT_create(nfeatures=4000, contrastThreshold=0.01)
    K = np.zeros((C, 3, 3))
    R0 = np.zeros((C, 3, 3))
    c0 = np.zeros((C, 3))
    for a, i in enumerate(idx):  # undistorted, as training sees them
        cam = cams[i].undistorted() if cams[i].has_distortion else cams[i]
        K[a], R0[a] = cam.K[0].double().numpy(), cam.R[0].double().numpy()
        c0[a] = cam.centers[0].double().numpy()
    feats = {}
    for f in frames:
        for a, i in enumerate(idx):
            # (a camera that dropped the frame has no features in it)
            feats[(f, a)] = _features(video.view(f, i), sift) if video.has(f, i) else (np.zeros((0, 2)), None, np.zeros((0, 3)))
    pairs = _neighbours(c0, min(neighbours, C - 1))
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    # keypoints numbered globally; matches join them into tracks (union-find)
    base, offset = {}, 0
    for key in feats:
        base[key] = offset
        offset += len(feats[key][0])
    parent = np.arange(offset)

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for f in frames:
        for a, b in pairs:
            (pa, da, _), (pb, db, _) = feats[(f, a)], feats[(f, b)]
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
            for i, j in zip(qa[keep] + base[(f, a)], qb[keep] + base[(f, b)]):
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[ri] = rj
    obs_cam = np.concatenate([np.full(len(feats[k][0]), k[1]) for k in feats]) if offset else np.zeros(0, int)
    obs_uv = np.concatenate([feats[k][0] for k in feats]) if offset else np.zeros((0, 2))
    obs_col = np.concatenate([feats[k][2] for k in feats]) if offset else np.zeros((0, 3))
    roots = np.array([find(i) for i in range(offset)], dtype=np.int64)
    uniq, track, sizes = np.unique(roots, return_inverse=True, return_counts=True)
    track = track.reshape(-1)
    n_cams = np.zeros(len(uniq), int)
    pair_seen = np.unique(track * C + obs_cam)
    np.add.at(n_cams, pair_seen // C, 1)
    good_track = (sizes == n_cams) & (n_cams >= 2)  # one keypoint per camera, two cameras or more
    return Tracks(list(names), K, R0, c0, track, obs_cam, obs_uv, obs_col).subset(good_track[track])


def refine_rig(video, names: list[str], frames: list[int], neighbours: int = 8, epipolar_px: float = 6.0,
               shift_prior: float = 1.0, max_tracks: int = 20_000, min_tracks: int = 5,
               seed: int = 0, tracks: Tracks | None = None) -> BundleResult | None:
    """Pose changes of cameras ``names`` that make their images of ``frames`` agree (see the module
    docstring). ``epipolar_px``: how far (Sampson distance, px) a match may sit off the given
    calibration's epipolar line; ``shift_prior``: weight of the prior on each centre shift, in
    pixels of residual per pixel of image motion the shift causes; ``tracks``: those
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
    X0 = _triangulate_tracks(P, track, cam_o, uv_o, T, c0.mean(0), dist)
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
    # its triangulation × focal / dist. Residuals in pixels (Huber beyond 1 px); the gauge (the
    # rig's mean rotation and mean shift) is pinned by heavy rows, and each shift's prior weighs
    # shift_prior pixels of residual per pixel of image motion the shift causes
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
        return np.concatenate([reproj(x).ravel(), shift_prior * q.ravel(),
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
    gr = 2 * O + 3 * C + np.arange(6)
    r_idx.append(np.repeat(gr, 6 * C))
    c_idx.append(np.tile(np.arange(6 * C), 6))
    r_idx, c_idx = np.concatenate(r_idx), np.concatenate(c_idx)
    S = coo_matrix((np.ones(len(r_idx), np.int8), (r_idx, c_idx)), shape=(2 * O + 3 * C + 6, 6 * C + 3 * T)).tocsr()
    S.data[:] = 1
    x0 = np.zeros(6 * C + 3 * T)
    sol = least_squares(residuals, x0, jac_sparsity=S, loss="huber", f_scale=1.0, x_scale=1.0, method="trf",
                        tr_solver="lsmr", max_nfev=100)
    w, s, _ = unpack(sol.x)
    before = np.linalg.norm(reproj(x0), axis=1)
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
