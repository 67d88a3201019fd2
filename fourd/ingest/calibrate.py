"""Rig calibration from a ChArUco board filmed by the cameras.

1. Detect the board's inner corners in every calibration frame of every camera (OpenCV's aruco
   module; ChArUco corners are identified, so partial views count).
2. Intrinsics per camera (focal lengths, principal point, k1 and k2) from that camera's board views
   (Zhang's method, ``cv2.calibrateCamera``).
3. Extrinsics: cameras that see the board in the same (synchronized) frame are related through it;
   starting from the camera with the most views, a breadth-first walk over shared frames gives a
   first pose for every camera and a pose for the board in every frame.
4. A joint bundle adjustment refines every camera's intrinsics, distortion and pose and every
   board pose to minimize the corners' reprojection error (robust Huber loss, sparse Jacobian).
5. The world is aligned: +y up (the cameras' mean up vector), origin at the point the cameras look
   at (least-squares closest point to their optical axes), metric units from the board's square.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fourd.console import log
from fourd.errors import DataError

DICTIONARIES = ("DICT_4X4_50", "DICT_4X4_100", "DICT_5X5_100", "DICT_6X6_250", "DICT_APRILTAG_36h11")


@dataclass
class BoardSpec:
    columns: int = 7
    """squares along the board's width."""
    rows: int = 5
    """squares along the board's height."""
    square: float = 0.1
    """side of one square in world units (metres): sets the scale of the calibrated rig."""
    marker: float = 0.075
    """side of one ArUco marker, same units."""
    dictionary: str = "DICT_5X5_100"

    def board(self):
        import cv2

        if self.dictionary not in DICTIONARIES:
            raise DataError(f"unknown ArUco dictionary '{self.dictionary}'", "--board-dictionary",
                            f"use one of {', '.join(DICTIONARIES)}")
        if not 0 < self.marker < self.square:
            raise DataError(f"marker {self.marker} must be smaller than the square {self.square}", "--board-marker",
                            "give the printed sizes of a square and a marker")
        d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard((self.columns, self.rows), self.square, self.marker, d)

    def image(self, pixels_per_square: int = 100, margin: int = 0) -> np.ndarray:
        """The board as a grayscale image to print (or to render into a test scene)."""
        size = (self.columns * pixels_per_square + 2 * margin, self.rows * pixels_per_square + 2 * margin)
        return self.board().generateImage(size, marginSize=margin)

    def corners(self) -> np.ndarray:
        """[N, 3] inner corners on the board plane (z = 0), board units."""
        return np.asarray(self.board().getChessboardCorners(), np.float64).reshape(-1, 3)


@dataclass
class Detection:
    ids: np.ndarray  # [n] ChArUco corner ids
    uv: np.ndarray   # [n, 2] pixel positions (OpenCV convention: pixel centres at integers)


def detect(gray: np.ndarray, spec: BoardSpec, detector=None, min_corners: int = 6) -> Detection | None:
    import cv2

    det = detector or cv2.aruco.CharucoDetector(spec.board())
    corners, ids, _, _ = det.detectBoard(gray)
    if ids is None or len(ids) < min_corners:
        return None
    return Detection(ids.reshape(-1).astype(np.int64), corners.reshape(-1, 2).astype(np.float64))


# ------------------------------------------------------------------------- geometry helpers
def rodrigues(r: np.ndarray) -> np.ndarray:
    """[..., 3] axis-angle → [..., 3, 3] rotation (vectorized)."""
    r = np.asarray(r, np.float64)
    th = np.linalg.norm(r, axis=-1, keepdims=True)
    k = r / np.maximum(th, 1e-12)
    K = np.zeros(r.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    K[..., 1, 0], K[..., 2, 0], K[..., 2, 1] = k[..., 2], -k[..., 1], k[..., 0]
    s, c = np.sin(th)[..., None], np.cos(th)[..., None]
    return np.eye(3) + s * K + (1 - c) * (K @ K)


def rvec(R: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.Rodrigues(np.asarray(R, np.float64))[0].reshape(3)


def _project(X, R, t, intr):
    """X [n, 3] board points per observation row, R [n, 3, 3], t [n, 3], intr [n, 6] (fx, fy, cx, cy, k1, k2)."""
    Xc = np.einsum("nij,nj->ni", R, X) + t
    z = Xc[:, 2:3]
    xy = Xc[:, :2] / np.where(np.abs(z) < 1e-9, 1e-9, z)
    r2 = (xy ** 2).sum(1, keepdims=True)
    xy = xy * (1 + intr[:, 4:5] * r2 + intr[:, 5:6] * r2 ** 2)
    return xy * intr[:, 0:2] + intr[:, 2:4]


@dataclass
class Calibration:
    names: list[str]
    K: np.ndarray          # [C, 3, 3] OpenCV convention
    D: np.ndarray          # [C, 5]
    R: np.ndarray          # [C, 3, 3] world → camera
    T: np.ndarray          # [C, 3]
    sizes: list[tuple[int, int]]  # (H, W)
    rms_px: dict[str, float] = field(default_factory=dict)
    views: dict[str, int] = field(default_factory=dict)
    observations: list = field(default_factory=list)  # (cam index, frame, ids, uv) kept for the report
    board_poses: dict = field(default_factory=dict)     # frame → (R, t) board → world
    board_spec: BoardSpec | None = None
    distortion_fitted: dict[str, bool] = field(default_factory=dict)
    outliers: dict[str, int] = field(default_factory=dict)

    def cameras(self):
        """As fourd Cameras (fourd's pixel-centre convention)."""
        from fourd.structures.cameras import Cameras, K_from_opencv

        return Cameras(np.stack([K_from_opencv(k) for k in self.K]), self.R, self.T,
                       [s[0] for s in self.sizes], [s[1] for s in self.sizes], self.D, list(self.names))

    def centers(self) -> np.ndarray:
        return -np.einsum("cji,cj->ci", self.R, self.T)

    def summary(self) -> dict:
        return {"cameras": len(self.names), "rms_px": self.rms_px, "views": self.views,
                "distortion_fitted": self.distortion_fitted, "outliers": self.outliers,
                "max_rms_px": max((v for v in self.rms_px.values() if v == v), default=None)}


def corner_coverage(dets: dict[int, Detection], H: int, W: int) -> float:
    """How far from the image centre the board was seen: the largest corner radius over the
    half-diagonal (radial distortion is only observable where corners reach)."""
    if not dets:
        return 0.0
    uv = np.concatenate([d.uv for d in dets.values()])
    r = np.linalg.norm(uv - np.array([(W - 1) / 2, (H - 1) / 2]), axis=1)
    return float(np.quantile(r, 0.98) / (0.5 * np.hypot(W, H)))


def calibrate(detections: dict[str, dict[int, Detection]], sizes: dict[str, tuple[int, int]], spec: BoardSpec,
              distortion: str = "auto", min_views: int = 1, min_coverage: float = 0.6) -> Calibration:
    """Calibrate the rig from board detections ``{camera: {frame: Detection}}`` (synchronized
    frames) and image sizes ``{camera: (H, W)}``. ``distortion``: on (estimate k1, k2 for every
    camera), off (zero), auto (estimate it for cameras whose board corners reached at least
    ``min_coverage`` of the half-diagonal and that saw the board at least 3 times; others keep zero,
    as distortion fitted to the image centre alone extrapolates wildly)."""
    import cv2
    from scipy.optimize import least_squares
    from scipy.sparse import lil_matrix

    names = list(sizes)
    obj = spec.corners()
    blind = [n for n in names if len(detections.get(n, {})) < min_views]
    if len(blind) == len(names):
        raise DataError("no camera sees the board", None,
                        "film the ChArUco board (fourd data board prints one) in the calibration frames "
                        "(--calib-frames), check --board-columns/--board-rows/--board-dictionary match it, "
                        "or give --calibration DIR with intri.yml/extri.yml")
    if blind:
        raise DataError(f"camera(s) {', '.join(blind)} never see the board", None,
                        "move the board so every camera sees it in some calibration frames, "
                        "or give --calibration DIR with intri.yml/extri.yml")

    # 2. intrinsics per camera
    if distortion not in ("auto", "on", "off"):
        raise DataError(f"unknown distortion mode '{distortion}'", "--distortion", "use auto, on or off")
    intr, pose, fit_d = {}, {}, {}
    for n in names:
        H, W = sizes[n]
        dets = detections[n]
        fr = sorted(dets, key=lambda f: -len(dets[f].ids))
        objp = [obj[dets[f].ids].astype(np.float32) for f in fr]
        imgp = [dets[f].uv.astype(np.float32).reshape(-1, 1, 2) for f in fr]
        flags = cv2.CALIB_ZERO_TANGENT_DIST | cv2.CALIB_FIX_K3
        fit_d[n] = distortion == "on" or (distortion == "auto" and len(fr) >= 3
                                          and corner_coverage(dets, H, W) >= min_coverage)
        if not fit_d[n]:
            flags |= cv2.CALIB_FIX_K1 | cv2.CALIB_FIX_K2
        if len(fr) < 3:  # too few views for a principal point: keep it at the centre, one focal
            flags |= cv2.CALIB_FIX_PRINCIPAL_POINT | cv2.CALIB_FIX_ASPECT_RATIO | cv2.CALIB_FIX_K1 | cv2.CALIB_FIX_K2
        f0 = max(H, W)
        K0 = np.array([[f0, 0, (W - 1) / 2], [0, f0, (H - 1) / 2], [0, 0, 1]], np.float64)
        _rms, K, D, rv, tv = cv2.calibrateCamera(objp, imgp, (W, H), K0, np.zeros(5),
                                                flags=flags | cv2.CALIB_USE_INTRINSIC_GUESS)
        intr[n] = np.array([K[0, 0], K[1, 1], K[0, 2], K[1, 2], D.reshape(-1)[0], D.reshape(-1)[1]])
        for f, r, t in zip(fr, rv, tv):
            pose[(n, f)] = (rodrigues(r.reshape(3)), t.reshape(3))

    # 3. initial poses: breadth-first over shared frames
    ref = max(names, key=lambda n: (len(detections[n]), -names.index(n)))
    cam_T = {ref: (np.eye(3), np.zeros(3))}  # world → camera
    board_T = {}                              # frame → board → world
    changed = True
    while changed:
        changed = False
        for (n, f), (Rp, tp) in sorted(pose.items(), key=lambda kv: -len(detections[kv[0][0]][kv[0][1]].ids)):
            if n in cam_T and f not in board_T:
                Rc, tc = cam_T[n]
                board_T[f] = (Rc.T @ Rp, Rc.T @ (tp - tc))
                changed = True
        for (n, f), (Rp, tp) in sorted(pose.items(), key=lambda kv: -len(detections[kv[0][0]][kv[0][1]].ids)):
            if n not in cam_T and f in board_T:
                Rb, tb = board_T[f]
                Rc = Rp @ Rb.T
                cam_T[n] = (Rc, tp - Rc @ tb)
                changed = True
    lonely = [n for n in names if n not in cam_T]
    if lonely:
        raise DataError(f"camera(s) {', '.join(lonely)} never see the board in the same frame as the others", None,
                        "show the board where neighbouring cameras see it at the same time")

    # 4. bundle adjustment
    frames = sorted(board_T)
    ci = {n: i for i, n in enumerate(names)}
    fi = {f: i for i, f in enumerate(frames)}
    rows_c, rows_f, rows_X, rows_uv = [], [], [], []
    for (n, f) in pose:
        d = detections[n][f]
        rows_c += [ci[n]] * len(d.ids)
        rows_f += [fi[f]] * len(d.ids)
        rows_X.append(obj[d.ids])
        rows_uv.append(d.uv)
    rc, rf = np.array(rows_c), np.array(rows_f)
    X, uv = np.concatenate(rows_X), np.concatenate(rows_uv)
    C, F, M = len(names), len(frames), len(rc)
    ncam = 12
    x0 = np.concatenate([np.concatenate([rvec(cam_T[n][0]), cam_T[n][1], intr[n]]) for n in names]
                        + [np.concatenate([rvec(board_T[f][0]), board_T[f][1]]) for f in frames])
    gauge = ci[ref]
    free = np.ones(len(x0), bool)
    free[gauge * ncam: gauge * ncam + 6] = False  # the reference camera fixes the world frame
    for n in names:
        if not fit_d[n]:
            free[ci[n] * ncam + 10: ci[n] * ncam + 12] = False

    def unpack(x):
        cams = x[: C * ncam].reshape(C, ncam)
        brd = x[C * ncam:].reshape(F, 6)
        return cams, brd

    def residual(xf):
        x = x0.copy()
        x[free] = xf
        cams, brd = unpack(x)
        Rb, tb = rodrigues(brd[:, :3]), brd[:, 3:]
        Xw = np.einsum("nij,nj->ni", Rb[rf], X) + tb[rf]
        Rc = rodrigues(cams[:, :3])
        return (_project(Xw, Rc[rc], cams[rc, 3:6], cams[rc, 6:12]) - uv).reshape(-1)

    sp = lil_matrix((2 * M, len(x0)), dtype=np.int8)
    m = np.arange(M)
    for k in range(ncam):
        sp[2 * m, rc * ncam + k] = 1
        sp[2 * m + 1, rc * ncam + k] = 1
    for k in range(6):
        sp[2 * m, C * ncam + rf * 6 + k] = 1
        sp[2 * m + 1, C * ncam + rf * 6 + k] = 1
    sp = sp.tocsc()[:, free]
    # a small problem (a rig of tens of cameras) is solved with the exact trust-region step on a
    # dense Jacobian: the iterative sparse solver stalls on the focal/distance near-ambiguity
    dense = int(free.sum()) <= 3000
    keep = np.ones(M, bool)

    def solve(x_start):
        def res(xf):
            return residual(xf).reshape(-1, 2)[keep].reshape(-1)

        sp_k = sp[np.repeat(keep, 2)]
        return least_squares(res, x_start, jac_sparsity=None if dense else sp_k, loss="huber", f_scale=1.0,
                             x_scale="jac", method="trf", max_nfev=200 if dense else 2000)

    sol = solve(x0[free])
    # drop corners the solution cannot explain (a misdetected or blurred corner, a grazing view),
    # then solve again: more than 3 robust sigmas and 1 px off
    err = np.sqrt((residual(sol.x).reshape(-1, 2) ** 2).sum(1))
    thresh = max(1.0, 3 * 1.4826 * float(np.median(err)))
    if (err > thresh).any():
        keep = err <= thresh
        sol = solve(sol.x)
    x = x0.copy()
    x[free] = sol.x
    cams, brd = unpack(x)
    r = residual(sol.x).reshape(-1, 2)
    err = np.sqrt((r ** 2).sum(1))

    Rc = rodrigues(cams[:, :3])
    tc = cams[:, 3:6]
    K = np.zeros((C, 3, 3))
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = cams[:, 6], cams[:, 7], cams[:, 8], cams[:, 9], 1
    D = np.zeros((C, 5))
    D[:, 0], D[:, 1] = cams[:, 10], cams[:, 11]
    cal = Calibration(names, K, D, Rc, tc, [tuple(sizes[n]) for n in names], board_spec=spec)
    for n in names:
        e = err[(rc == ci[n]) & keep]
        cal.rms_px[n] = float(np.sqrt((e ** 2).mean()))
        cal.outliers[n] = int(((rc == ci[n]) & ~keep).sum())
        cal.views[n] = len(detections[n])
        cal.distortion_fitted[n] = bool(fit_d[n])
    cal.observations = [(ci[n], f, detections[n][f].ids, detections[n][f].uv) for (n, f) in pose]
    cal.board_poses = {f: (rodrigues(brd[i, :3]), brd[i, 3:]) for f, i in fi.items()}
    log(f"calibration: {C} cameras, {F} board poses, {int(keep.sum())} corners ({M - int(keep.sum())} outliers "
        f"dropped); reprojection RMS {float(np.sqrt((err[keep] ** 2).mean())):.3f} px "
        f"(worst camera {max(cal.rms_px.values()):.3f} px)")
    return cal


def align_world(cal: Calibration) -> np.ndarray:
    """Move ``cal`` into a world with +y up (the rig's up: the normal of the plane its camera
    centres lie near, signed by the cameras' mean image-up — that mean alone tilts toward the
    subject when the cameras stand on an arc in front of it and look down) and the origin at the
    point the cameras look at; returns the 4×4 old-world → new-world rigid transform."""
    from fourd.structures.cameras import closest_point_to_rays, rig_up

    up = rig_up(cal.R, cal.centers())
    if up is None:
        raise DataError("cannot find the rig's up direction (the cameras' image-up vectors cancel)", None,
                        "mount the cameras upright (image top toward the ceiling), or give your own "
                        "calibration with --calibration")

    Cc = cal.centers()
    origin = closest_point_to_rays(Cc, cal.R[:, 2, :])
    # x axis: toward the first camera, orthogonal to up
    x = Cc[0] - origin
    x -= up * (x @ up)
    if np.linalg.norm(x) < 1e-9:
        x = np.cross(up, [0.0, 0.0, 1.0]) if abs(up[2]) < 0.9 else np.cross(up, [1.0, 0.0, 0.0])
    x /= np.linalg.norm(x)
    z = np.cross(x, up)
    Rw = np.stack([x, up, z])       # rows: new axes in old coordinates → old→new rotation
    tw = -Rw @ origin
    # camera: X_c = R X_old + T = R Rw^T (X_new - tw) + T
    cal.R = np.einsum("cij,kj->cik", cal.R, Rw)
    cal.T = cal.T - np.einsum("cij,j->ci", cal.R, tw)
    cal.board_poses = {f: (Rw @ Rb, Rw @ tb + tw) for f, (Rb, tb) in cal.board_poses.items()}
    M = np.eye(4)
    M[:3, :3], M[:3, 3] = Rw, tw
    return M


def similarity_align(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale s, rotation R, translation t minimizing ‖s R src + t − dst‖ (Umeyama)."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    U, S, Vt = np.linalg.svd(b.T @ a / len(src))
    E = np.eye(3)
    E[2, 2] = np.sign(np.linalg.det(U @ Vt))
    R = U @ E @ Vt
    s = float((S * np.diag(E)).sum() / ((a ** 2).sum() / len(src)))
    return s, R, md - s * R @ ms


def mean_rotation(Rs: np.ndarray) -> np.ndarray:
    """Chordal L2 mean of rotations [N, 3, 3]."""
    U, _, Vt = np.linalg.svd(np.asarray(Rs).sum(0))
    E = np.eye(3)
    E[2, 2] = np.sign(np.linalg.det(U @ Vt))
    return U @ E @ Vt


def compare_rigs(R_est, C_est, R_true, C_true) -> dict:
    """Camera orientation error (degrees, after the one global rotation that best aligns the
    estimated orientations with the true ones: the world frame is a free choice) and centre error
    (fraction of the rig radius, after the similarity alignment of the centres)."""
    s, Ra, ta = similarity_align(C_est, C_true)
    C_al = s * C_est @ Ra.T + ta
    radius = float(np.linalg.norm(C_true - C_true.mean(0), axis=1).mean())
    # world → world rotation G with R_est ≈ R_true G: G = mean(R_true^T R_est)
    G = mean_rotation(np.einsum("nji,njk->nik", R_true, R_est))
    rot = []
    for Re, Rt in zip(R_est, R_true):
        Rd = (Re @ G.T) @ Rt.T
        rot.append(float(np.degrees(np.arccos(np.clip((np.trace(Rd) - 1) / 2, -1, 1)))))
    cerr = np.linalg.norm(C_al - C_true, axis=1) / radius
    return {"rotation_deg_max": max(rot), "rotation_deg_mean": float(np.mean(rot)),
            "center_err_max": float(cerr.max()), "center_err_mean": float(cerr.mean()), "scale": s}
