"""A rig's raw videos made from a synthetic capture, to test and benchmark ``fourd data ingest``.

World timeline (frames at the capture rate): a ChArUco board turning in front of the cameras
(``calib_frames``), one flash frame with a clap on every sound track, then the subject's animation
(the synthetic capture's frames). Behind everything a textured studio (a cylinder wall and a floor,
ray-cast per camera). Camera c starts recording ``starts[c]`` frames late, so its video frame i
shows world frame i + starts[c]. A second set of short videos films the empty studio (the plate).
Everything the ingest must recover is written to ``truth.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fourd.datasets.degrade import noise_texture
from fourd.ingest.calibrate import BoardSpec
from fourd.ingest.video import write_video
from fourd.structures.cameras import K_to_opencv


@dataclass
class RigRecipe:
    asset: str = "Fox.glb"
    animation: str | None = "Walk"
    rings: tuple = ((8, 10.0), (4, 40.0))
    size: int = 512
    subject_frames: int = 6
    calib_frames: int = 30
    max_start: int = 5
    """cameras start up to this many frames late."""
    plate_frames: int = 8
    fps: float = 30.0
    noise: float = 1.5
    """sensor noise, grey levels."""
    audio: bool = True
    flash: bool = True
    seed: int = 0
    held_out: int = 2
    sharp: bool = False
    """studio texture with fine detail (for structure from motion)."""


def studio_background(cams, index: int, center: np.ndarray, wall_radius: float, wall_tex, floor_tex,
                      floor_extent: float) -> np.ndarray:
    """Ray-cast one camera's view of the studio: a textured cylinder wall around ``center`` and a
    textured floor at y = 0."""
    import cv2

    o, d = cams.rays(index)
    H, W = int(cams.H[index]), int(cams.W[index])
    o = o.double().numpy().reshape(-1, 3) - np.array([center[0], 0, center[2]])
    d = d.double().numpy().reshape(-1, 3)
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = 2 * (o[:, 0] * d[:, 0] + o[:, 2] * d[:, 2])
    c = o[:, 0] ** 2 + o[:, 2] ** 2 - wall_radius ** 2
    s_wall = (-b + np.sqrt(np.maximum(b * b - 4 * a * c, 0))) / (2 * np.maximum(a, 1e-12))
    s_floor = np.where(d[:, 1] < -1e-6, -o[:, 1] / np.where(d[:, 1] < -1e-6, d[:, 1], -1), np.inf)
    on_floor = s_floor < s_wall
    p = o + np.where(on_floor, s_floor, s_wall)[:, None] * d
    th = (np.arctan2(p[:, 2], p[:, 0]) / (2 * np.pi) + 0.5) * wall_tex.shape[1]
    hy = np.clip(1 - p[:, 1] / (2 * wall_radius), 0, 1) * (wall_tex.shape[0] - 1)
    fx = (p[:, 0] / floor_extent * 0.5 + 0.5) * (floor_tex.shape[1] - 1)
    fz = (p[:, 2] / floor_extent * 0.5 + 0.5) * (floor_tex.shape[0] - 1)
    mx = np.where(on_floor, fx, th).astype(np.float32).reshape(H, W)
    my = np.where(on_floor, fz, hy).astype(np.float32).reshape(H, W)
    wall = cv2.remap(wall_tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    floor = cv2.remap(floor_tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return np.where(on_floor.reshape(H, W, 1), (floor * 0.8).astype(np.uint8), wall)


def board_pose(k: int, n: int, center: np.ndarray, spec: BoardSpec, turns: float = 2.0,
               wander: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    """Board → world rotation and translation at calibration frame k of n: the board turns
    ``turns`` times around the vertical axis, tilting up and down and rolling, while its centre
    wanders up to ``wander`` around ``center`` (as a person waving it would)."""
    az = 2 * np.pi * turns * (k + 0.5) / n
    center = np.asarray(center, np.float64) + wander * np.array(
        [np.sin(2.3 * k + 1), 0.6 * np.sin(1.7 * k + 2), np.sin(3.1 * k + 0.5)])
    tilt = np.radians((35.0, -20.0, 15.0)[k % 3])
    roll = np.radians(25.0 * np.sin(3 * az + k))
    normal = np.array([np.cos(az) * np.cos(tilt), np.sin(tilt), np.sin(az) * np.cos(tilt)])  # front faces outward
    up = np.array([0.0, 1.0, 0.0])
    x = np.cross(up, normal)
    x /= np.linalg.norm(x)
    y = np.cross(normal, x)          # board y points down the printed image → world -up-ish
    y = -y
    # board z (into the page) = -normal; x right, y down on the print
    Rz = np.stack([x, y, -normal], 1)
    c, s = np.cos(roll), np.sin(roll)
    Rz = Rz @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    w, h = spec.columns * spec.square, spec.rows * spec.square
    t = center - Rz @ np.array([w / 2, h / 2, 0.0])
    return Rz, t


def draw_board(img: np.ndarray, cams, index: int, Rb: np.ndarray, tb: np.ndarray, spec: BoardSpec,
               board_img: np.ndarray, pps: int, supersample: int = 3) -> np.ndarray:
    """Composite the board (printed side, with a white margin) into camera ``index``'s image."""
    import cv2

    R = cams.R[index].double().numpy()
    T = cams.T[index].double().numpy()
    Rcb, tcb = R @ Rb, R @ tb + T
    if Rcb[:, 2] @ tcb <= 0:  # we see the back of the board
        return img
    H, W = img.shape[:2]
    K = K_to_opencv(cams.K[index].double().numpy())
    S = np.diag([supersample, supersample, 1.0])
    S[0, 2] = S[1, 2] = (supersample - 1) / 2  # OpenCV pixel centres at integers
    margin = pps // 2
    px = spec.square / pps
    A = np.array([[px, 0, (0.5 - margin) * px], [0, px, (0.5 - margin) * px], [0, 0, 1]])
    Hm = S @ K @ np.column_stack([Rcb[:, 0], Rcb[:, 1], tcb]) @ A
    src = cv2.copyMakeBorder(board_img, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=255)
    big = (W * supersample, H * supersample)
    col = cv2.warpPerspective(src, Hm, big, flags=cv2.INTER_LINEAR, borderValue=0)
    alpha = cv2.warpPerspective(np.full(src.shape, 255, np.uint8), Hm, big, flags=cv2.INTER_LINEAR, borderValue=0)
    col = cv2.resize(col, (W, H), interpolation=cv2.INTER_AREA).astype(np.float32)
    alpha = cv2.resize(alpha, (W, H), interpolation=cv2.INTER_AREA).astype(np.float32)[..., None] / 255
    return (img * (1 - alpha) + (col[..., None] * 0.9 + 10) * alpha).astype(np.uint8)


def click(n: int, rate: int, at: float, gain: float, rng) -> np.ndarray:
    a = rng.normal(0, 0.003, n).astype(np.float32)
    k = round(at * rate)
    if 0 <= k < n:
        m = min(n - k, int(0.02 * rate))
        t = np.arange(m) / rate
        a[k:k + m] += gain * np.sin(2 * np.pi * 1800 * t) * np.exp(-t / 0.004)
    return a


def make_rig(out: str | Path, recipe: RigRecipe | None = None, spec: BoardSpec | None = None) -> dict:
    """Write ``out/videos/<cam>.mp4``, ``out/plate/<cam>.mp4``, ``out/synth`` (the exact capture)
    and ``out/truth.json``; returns the truth."""
    from fourd.datasets import open_dataset
    from fourd.datasets.synth import SynthRecipe, synthesize

    recipe = recipe or RigRecipe()
    out = Path(out)
    rng = np.random.default_rng(recipe.seed)
    synth = synthesize(SynthRecipe(asset=recipe.asset, animation=recipe.animation, rings=list(recipe.rings),
                                   frames=recipe.subject_frames, width=recipe.size, height=recipe.size,
                                   held_out=recipe.held_out, fps=recipe.fps, image_format="png"), out / "synth")
    cap = open_dataset(synth)
    cams = cap.cameras
    meta = json.loads((synth / "synth.json").read_text())
    centers = cams.centers.double().numpy()
    subject_center = np.array([0.0, 0.5 * 1.0, 0.0])
    dist = np.linalg.norm(centers - subject_center, axis=1)
    spec = spec or BoardSpec(columns=7, rows=5, square=0.2, marker=0.15)
    k = 2 if recipe.sharp else 1
    wall_tex = noise_texture(rng, 512 * k, 2048 * k, recipe.sharp)
    floor_tex = noise_texture(rng, 1024 * k, 1024 * k, recipe.sharp)
    pps = 60
    board_img = spec.image(pps)
    names = cams.names
    world_frames = recipe.calib_frames + 1 + recipe.subject_frames
    max_start = max(0, min(recipe.max_start, recipe.calib_frames))  # every camera records the clap/flash
    starts = {n: int(rng.integers(0, max_start + 1)) for n in names}
    starts[names[0]] = 0
    flash_world = recipe.calib_frames
    rate = 16000
    backgrounds = {}
    for i, n in enumerate(names):
        backgrounds[n] = studio_background(cams, i, subject_center, 2.5 * dist.max(), wall_tex, floor_tex,
                                           2.5 * dist.max())

    def noisy(img):
        return np.clip(img.astype(np.float32) + rng.normal(0, recipe.noise, img.shape), 0, 255).astype(np.uint8)

    for i, n in enumerate(names):
        bg = backgrounds[n]
        frames = []
        for w in range(starts[n], world_frames):
            if w < recipe.calib_frames:
                Rb, tb = board_pose(w, recipe.calib_frames, subject_center, spec)
                img = draw_board(bg, cams, i, Rb, tb, spec, board_img, pps)
            elif w == flash_world:
                img = np.clip(bg.astype(np.int16) + (90 if recipe.flash else 0), 0, 255).astype(np.uint8)
            else:
                f = w - flash_world - 1
                rgb, m = cap.image(f, n), cap.mask(f, n)
                img = np.where(np.asarray(m, bool)[..., None], rgb, bg)
            frames.append(noisy(img))
        audio = None
        if recipe.audio:
            n_s = int(len(frames) / recipe.fps * rate)
            audio = click(n_s, rate, (flash_world - starts[n]) / recipe.fps, float(rng.uniform(0.3, 0.9)), rng)
        write_video(out / "videos" / f"{n}.mp4", frames, recipe.fps, audio, rate)
        write_video(out / "plate" / f"{n}.mp4", [noisy(bg) for _ in range(recipe.plate_frames)], recipe.fps)
    truth = {
        "recipe": asdict(recipe), "board": asdict(spec), "starts": starts,
        "event_frame": {n: flash_world - starts[n] for n in names},
        "first_common_world_frame": max(starts.values()),
        "subject_first_synced_frame": flash_world + 1 - max(starts.values()),
        "calib_synced_frames": [0, recipe.calib_frames - max(starts.values())],
        "synth": str(synth), "normalization": meta["normalization"],
        "cameras": {n: {"K": cams.K[i].double().tolist(), "R": cams.R[i].double().tolist(),
                        "T": cams.T[i].double().tolist()} for i, n in enumerate(names)},
        "held_out": cap.held_out,
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=2))
    return truth
