"""Camera paths: keyframes (pose, intrinsics, scene time) and their interpolation, plus generated
orbits and spirals. The JSON is the one the viewer's path editor writes:

    {"version": 1, "interpolation": "catmull_rom" | "linear", "fps": 30, "loop": false,
     "time_mode": "follow" | "frozen" | "realtime", "frozen_frame": 0,
     "keyframes": [{"time": 0.0, "K": [[...]], "R": [[...]], "T": [...], "H": 720, "W": 1280}, ...]}

Positions follow a Catmull-Rom spline in time (cubic Hermite whose tangent at a keyframe is the
chord between its neighbours divided by their time gap — C1 in time however keyframes are
spaced), rotations slerp, intrinsics interpolate linearly. ``time`` is the keyframe's time along the path in seconds; the scene frame shown is
the path time × fps ("realtime"), the keyframes' own ``frame`` entries interpolated ("follow"),
or one fixed frame ("frozen", bullet time).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fourd.errors import FourdError
from fourd.structures.cameras import Cameras
from fourd.structures.curves import hermite
from fourd.structures.rotations import matrix_to_quat, quat_to_matrix, slerp


@dataclass
class Keyframe:
    time: float
    camera: Cameras  # one camera
    frame: float | None = None


@dataclass
class CameraPath:
    keyframes: list[Keyframe]
    interpolation: str = "catmull_rom"
    fps: float = 30.0
    loop: bool = False
    time_mode: str = "realtime"
    frozen_frame: int = 0
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if len(self.keyframes) < 2 or (self.loop and len(self.keyframes) < 3):
            raise FourdError("a camera path needs at least two keyframes", fix="add keyframes (K in the viewer)")
        if self.interpolation not in ("catmull_rom", "linear"):
            raise FourdError(f"unknown interpolation '{self.interpolation}'", fix="use catmull_rom or linear")
        if self.time_mode not in ("follow", "frozen", "realtime"):
            raise FourdError(f"unknown time mode '{self.time_mode}'", fix="use follow, frozen or realtime")
        if not 0 < self.fps <= 1000:
            raise FourdError(f"the path's fps {self.fps} is out of range (0, 1000]", fix="set fps to e.g. 30")
        times = [k.time for k in self.keyframes]
        if not all(math.isfinite(t) for t in times):
            raise FourdError("a keyframe time is not a finite number", fix="give every keyframe a time in seconds")
        if any(b <= a for a, b in zip(times, times[1:])):
            raise FourdError("keyframe times must strictly increase (a keyframe has zero or negative duration)",
                             fix="space the keyframes out in time")
        self._C = np.stack([k.camera.centers[0].double().numpy() for k in self.keyframes])
        self._q = [matrix_to_quat(k.camera.R[0].double().numpy()) for k in self.keyframes]
        for i in range(1, len(self._q)):  # keep neighbouring quaternions in one hemisphere
            if np.dot(self._q[i], self._q[i - 1]) < 0:
                self._q[i] = -self._q[i]

    def _tangent(self, j: int) -> np.ndarray:
        """Velocity at keyframe j: neighbouring chord over neighbouring time gap (one-sided at open ends;
        a loop's last keyframe repeats its first, so neighbours wrap around it)."""
        n, C = len(self.keyframes), self._C
        t = [k.time for k in self.keyframes]
        if self.loop:
            jj = j % (n - 1)
            prev, nxt = (jj - 1) % (n - 1), jj + 1
            t_prev = t[prev] - (self.duration if jj == 0 else 0.0)
            return (C[nxt] - C[prev]) / (t[nxt] - t_prev)
        if j == 0:
            return (C[1] - C[0]) / (t[1] - t[0])
        if j == n - 1:
            return (C[-1] - C[-2]) / (t[-1] - t[-2])
        return (C[j + 1] - C[j - 1]) / (t[j + 1] - t[j - 1])

    @property
    def duration(self) -> float:
        return self.keyframes[-1].time - self.keyframes[0].time

    def n_frames(self) -> int:
        return int(round(self.duration * self.fps)) + (0 if self.loop else 1)

    def _segment(self, t: float) -> tuple[int, float]:
        times = [k.time for k in self.keyframes]
        t = min(max(t, times[0]), times[-1])
        i = min(int(np.searchsorted(times, t, side="right")) - 1, len(times) - 2)
        return i, (t - times[i]) / (times[i + 1] - times[i])

    def camera_at(self, t: float) -> Cameras:
        """The interpolated camera at path time t (seconds)."""
        i, s = self._segment(t)
        times = [k.time for k in self.keyframes]
        if self.interpolation == "linear":
            C = (1 - s) * self._C[i] + s * self._C[i + 1]
        else:
            C = hermite(self._C[i], self._C[i + 1], self._tangent(i), self._tangent(i + 1), times[i + 1] - times[i], s)
        R = quat_to_matrix(slerp(self._q[i], self._q[i + 1], s))
        a, b = self.keyframes[i].camera, self.keyframes[i + 1].camera
        K = (1 - s) * a.K[0].double() + s * b.K[0].double()
        H = int(round((1 - s) * int(a.H[0]) + s * int(b.H[0])))
        W = int(round((1 - s) * int(a.W[0]) + s * int(b.W[0])))
        T = -R @ C
        return Cameras(K.float(), torch.from_numpy(R).float(), torch.from_numpy(T).float(), [H], [W], names=["path"])

    def scene_frame(self, t: float, n_scene_frames: int) -> int:
        if self.time_mode == "frozen":
            return int(self.frozen_frame)
        if self.time_mode == "follow":
            i, s = self._segment(t)
            a, b = self.keyframes[i].frame, self.keyframes[i + 1].frame
            if a is None or b is None:
                raise FourdError("time mode 'follow' needs a 'frame' on every keyframe", fix="use realtime or frozen")
            f = (1 - s) * a + s * b
        else:
            f = (t - self.keyframes[0].time) * self.fps
        return int(round(f)) % max(n_scene_frames, 1)

    def sample(self, n: int | None = None) -> list[float]:
        """Path times of the n output frames (n from fps and duration by default)."""
        n = n or self.n_frames()
        t0 = self.keyframes[0].time
        step = self.duration / (n if self.loop else max(n - 1, 1))
        return [t0 + i * step for i in range(n)]

    def summary(self) -> dict:
        return {"keyframes": len(self.keyframes), "duration_s": self.duration, "fps": self.fps,
                "frames": self.n_frames(), "interpolation": self.interpolation, "loop": self.loop,
                "time_mode": self.time_mode}

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict:
        kf = []
        for k in self.keyframes:
            d = k.camera.to_dict()
            kf.append({"time": k.time, "frame": k.frame, **{key: d[key][0] for key in ("K", "R", "T", "D", "H", "W")}})
        return {"version": 1, "interpolation": self.interpolation, "fps": self.fps, "loop": self.loop,
                "time_mode": self.time_mode, "frozen_frame": self.frozen_frame, "keyframes": kf, **self.meta}

    def save(self, path: str | Path) -> Path:
        """The one writer of camera-path JSON (the viewer's path editor and `fourd path orbit|spiral`)."""
        from fourd.io import write_json

        return write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "CameraPath":
        path = Path(path)
        if not path.is_file():
            raise FourdError("camera path not found", path, "save one from the viewer or `fourd path orbit`")
        try:
            return cls.from_json(json.loads(path.read_text()))
        except json.JSONDecodeError as e:
            raise FourdError(f"malformed camera path (not JSON: {e})", path, "fix or re-save the file") from None
        except FourdError as e:
            raise FourdError(e.message, path, e.fix) from None

    @classmethod
    def from_json(cls, d: dict) -> "CameraPath":
        try:
            kfs = []
            for i, k in enumerate(d["keyframes"]):
                cam = Cameras(k["K"], k["R"], k["T"], [k["H"]], [k["W"]], k.get("D"))
                kfs.append(Keyframe(float(k["time"]), cam, k.get("frame")))
            return cls(kfs, d.get("interpolation", "catmull_rom"), float(d.get("fps", 30.0)), bool(d.get("loop", False)),
                       d.get("time_mode", "realtime"), int(d.get("frozen_frame", 0)))
        except FourdError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise FourdError(f"malformed camera path ({type(e).__name__}: {e})", None,
                             "each keyframe needs time, K, R, T, H, W (OpenCV convention)") from None


def orbit(target, radius: float, height: float, n_keys: int = 8, seconds: float = 4.0, fov_y: float = 40.0,
          W: int = 640, H: int = 480, up=(0.0, 1.0, 0.0), turns: float = 1.0, height_to: float | None = None,
          fps: float = 30.0) -> CameraPath:
    """A closed orbit (or, with ``height_to``, a spiral) around ``target``."""
    target = np.asarray(target, np.float64)
    keys = []
    loop = height_to is None and abs(turns - 1.0) < 1e-9
    for i in range(n_keys + 1):  # with a loop, the last keyframe closes it onto the first
        f = i / n_keys
        hgt = height if height_to is None else height + (height_to - height) * f
        cam = Cameras.ring(1, radius, hgt, target, up, fov_y, H, W, phase_deg=360.0 * turns * f)
        keys.append(Keyframe(seconds * f, cam))
    if loop:
        keys[-1] = Keyframe(seconds, keys[0].camera)
    return CameraPath(keys, "catmull_rom", fps, loop=loop)


def check_path_timing(frames: int, fps: float) -> None:
    """A generated path needs at least one frame and a positive frame rate."""
    if frames < 1:
        raise FourdError(f"--frames must be at least 1, got {frames}", "--frames", "give a positive number of frames")
    if not fps > 0 or fps > 1000:
        raise FourdError(f"--fps must be in (0, 1000], got {fps}", "--fps", "give a frame rate such as 30")


def default_orbit(scene_path: str | Path, frames: int, spiral: bool, fps: float,
                  size: tuple[int, int] | None = None, dataset: str | Path | None = None) -> CameraPath:
    """An orbit (or a rising spiral) around a scene (anything ``fourd view`` opens, or a training
    run), at the capture cameras' distance and height, lasting ``frames`` frames at ``fps``.
    ``dataset``: a run's capture, when it has moved since training."""
    scene_path = Path(scene_path)
    if (scene_path / "config.json").is_file():  # a run: its carved volume and its capture's cameras
        from fourd.structures.points import PointSequence
        from fourd.train.checkpoint import moved
        from fourd.train.run import capture_moved, open_capture, points_path, read_config

        cfg = read_config(scene_path)
        bounds = PointSequence.load(points_path(cfg, scene_path)).meta["bounds"]
        if dataset is None and moved(cfg.dataset):
            raise capture_moved(cfg, scene_path)
        cams = open_capture(cfg, dataset).cameras
    else:
        from fourd.viewer.scene import open_scene

        sc = open_scene(scene_path)
        bounds, cams = sc.bounds, sc.cameras
    return rig_orbit(bounds, cams, frames, spiral, fps, size)


def rig_orbit(bounds, cams: Cameras | None, frames: int, spiral: bool, fps: float,
              size: tuple[int, int] | None = None) -> CameraPath:
    """An orbit (or a rising spiral) round the middle of ``bounds`` ((lo, hi)) about the rig's up, at
    its cameras' mean distance and median height, with the first camera's size and field of view
    (without cameras: y up, 1.2 × the bounds' diagonal away)."""
    lo, hi = (np.asarray(b, np.float64) for b in bounds)
    target = (lo + hi) / 2
    W, H, radius, height = 640, 480, float(np.linalg.norm(hi - lo)) * 1.2, 0.3 * float(np.linalg.norm(hi - lo))
    fov, up = 40.0, np.array([0.0, 1.0, 0.0])
    if cams is not None:  # about the rig's own up (a z-up capture orbits about z)
        up = cams.up_direction()
        C = cams.centers.double().numpy() - target
        along = C @ up
        radius = float(np.linalg.norm(C - along[:, None] * up, axis=1).mean())
        height = float(np.median(along))
        W, H = int(cams.W[0]), int(cams.H[0])
        fov = math.degrees(2 * math.atan(H / (2 * float(cams.K[0, 1, 1]))))
    if size:
        W, H = size
    return orbit(target, radius, height, 8, frames / fps, fov, W, H, up=tuple(up), fps=fps,
                 height_to=(height + 0.6 * radius) if spiral else None)
