"""Viewer state: everything the viewer shows or edits, with no GL and no imgui.

The camera is an orbit camera (target, yaw, pitch, distance) that can also fly (WASD moves the
target with the eye); it converts to an OpenCV :class:`Cameras` for the renderer. Playback time,
render settings, the camera-path keyframes and requests (screenshot) live here too, so input
handling, panels and the render loop only read and edit one object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fourd.structures.cameras import Cameras

MODES = ("rgb", "depth", "alpha", "radius")


@dataclass
class OrbitCamera:
    target: np.ndarray = field(default_factory=lambda: np.zeros(3))
    yaw: float = 0.0  # radians about the up axis
    pitch: float = 0.2  # radians above the horizon
    distance: float = 3.0
    fov_y: float = 40.0  # degrees
    up: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0, 0.0]))

    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(forward, right, up) unit vectors in world space."""
        up = self.up / np.linalg.norm(self.up)
        a = np.cross(up, [1.0, 0, 0] if abs(up[0]) < 0.9 else [0, 0, 1.0])
        a /= np.linalg.norm(a)
        b = np.cross(up, a)
        horiz = math.cos(self.yaw) * a + math.sin(self.yaw) * b
        offset = math.cos(self.pitch) * horiz + math.sin(self.pitch) * up  # from target to eye
        fwd = -offset
        right = np.cross(fwd, up)
        right /= max(np.linalg.norm(right), 1e-9)
        return fwd, right, np.cross(right, fwd)

    @property
    def eye(self) -> np.ndarray:
        fwd, _, _ = self.basis()
        return self.target - fwd * self.distance

    def cameras(self, width: int, height: int) -> Cameras:
        return Cameras.look_at(self.eye[None], self.target, tuple(self.up), self.fov_y, height, width, ["viewer"])

    def set_from(self, cam: Cameras, target: np.ndarray | None = None) -> None:
        """Put the orbit camera where ``cam`` is, looking the same way (distance to ``target`` or 3)."""
        c = cam.centers[0].double().numpy()
        fwd = cam.R[0, 2].double().numpy()
        if target is not None:
            self.distance = float(max(np.dot(target - c, fwd), 1e-3))
        self.target = c + fwd * self.distance
        up = self.up / np.linalg.norm(self.up)
        self.pitch = math.asin(float(np.clip(-np.dot(fwd, up), -1, 1)))
        a = np.cross(up, [1.0, 0, 0] if abs(up[0]) < 0.9 else [0, 0, 1.0])
        a /= np.linalg.norm(a)
        b = np.cross(up, a)
        horiz = -fwd - np.dot(-fwd, up) * up
        self.yaw = math.atan2(float(np.dot(horiz, b)), float(np.dot(horiz, a)))
        fy = float(cam.K[0, 1, 1])
        self.fov_y = math.degrees(2 * math.atan(float(cam.H[0]) / (2 * fy)))


@dataclass
class ViewerState:
    n_frames: int = 1
    fps: float = 30.0
    camera: OrbitCamera = field(default_factory=OrbitCamera)
    home: OrbitCamera = field(default_factory=OrbitCamera)
    time: float = 0.0  # playback position in frames (fractional)
    playing: bool = False
    loop: bool = True
    speed: float = 1.0
    mode: str = "rgb"
    K: int = 8
    radius_scale: float = 1.0
    adaptive: bool = True
    target_fps: float = 15.0  # while moving (#20: ≥ 15 FPS at 720p with all points on 2 CPU cores)
    moving: bool = False  # the camera moved this frame (adaptive quality drops detail)
    show_help: bool = False
    screenshot_requested: bool = False
    keyframes: list[dict] = field(default_factory=list)
    message: str = ""
    info: str = ""  # what is playing (the scene's one-line description)
    points: int = 0  # points of the loaded frame
    errors: list[str] = field(default_factory=list)  # frames that failed to load, shown in the UI
    frame_ms: float = 0.0
    motion_scale: float = 1.0  # internal resolution while moving, adapted toward target_fps
    motion_fraction: float = 1.0  # share of the points drawn while moving, adapted likewise
    min_motion_scale: float = 0.5  # resolution goes down to this before points are dropped
    recent_ms: list[float] = field(default_factory=list)  # the last moving frames' times
    one_pass: bool = False  # the renderer draws the points once whatever K (sorted, K-buffer): K costs little

    @property
    def frame(self) -> int:
        return int(self.time) % max(self.n_frames, 1)

    def advance(self, dt: float) -> None:
        """Move playback by dt seconds of wall time."""
        if not self.playing or self.n_frames <= 1:
            return
        self.time += dt * self.fps * self.speed
        if self.time >= self.n_frames:
            if self.loop:
                self.time %= self.n_frames
            else:
                self.time, self.playing = self.n_frames - 1, False

    def step(self, n: int = 1) -> None:
        self.playing = False
        t = int(self.time) + n
        self.time = float(t % self.n_frames if self.loop else min(max(t, 0), self.n_frames - 1))

    def reset_camera(self) -> None:
        self.camera = OrbitCamera(self.home.target.copy(), self.home.yaw, self.home.pitch, self.home.distance,
                                  self.home.fov_y, self.home.up.copy())

    def effective_quality(self) -> tuple[int, float, float]:
        """(K, resolution scale, point fraction) to render with now: while the camera moves, fewer
        pixels, then fewer points (adapted toward target_fps), and with a K-pass renderer fewer
        peels; full quality when it is still."""
        if self.adaptive and self.moving:
            K = self.K if self.one_pass else max(1, min(self.K, 2))
            return K, self.motion_scale, self.motion_fraction
        return self.K, 1.0, 1.0

    def adapt(self, frame_ms: float) -> None:
        """After a moving frame: shrink or grow resolution and point count toward the target frame rate.
        Decided on the median of the last three frames (one slow frame — a new sequence frame
        uploaded, the OS — does not cost points), and quality comes back only below 85 % of the
        budget, so it settles instead of trading points back and forth at the limit."""
        if not (self.adaptive and self.moving):
            return
        self.recent_ms = (self.recent_ms + [float(frame_ms)])[-3:]
        ms = sorted(self.recent_ms)[len(self.recent_ms) // 2]
        budget = 1000.0 / max(self.target_fps, 1e-3)
        if ms > budget:  # resolution first (down to min_motion_scale), then points, then resolution again
            if self.motion_scale > self.min_motion_scale:
                self.motion_scale = max(self.min_motion_scale, self.motion_scale * 0.85)
            elif self.motion_fraction > 0.05:
                self.motion_fraction = max(0.05, self.motion_fraction * 0.85)
            else:
                self.motion_scale = max(0.25, self.motion_scale * 0.85)
        elif ms < 0.85 * budget:  # give back in the reverse order
            if self.motion_scale < self.min_motion_scale:
                self.motion_scale = min(self.min_motion_scale, self.motion_scale * 1.05)
            elif self.motion_fraction < 1.0:
                self.motion_fraction = min(1.0, self.motion_fraction * 1.05)
            else:
                self.motion_scale = min(1.0, self.motion_scale * 1.05)

    def add_keyframe(self, width: int, height: int) -> None:
        cam = self.camera.cameras(width, height)
        self.keyframes.append({"time": self.frame / self.fps, "frame": self.frame, **cam.to_dict()})
        self.message = f"keyframe {len(self.keyframes)} added"

    def delete_keyframe(self) -> None:
        if self.keyframes:
            self.keyframes.pop()
            self.message = f"{len(self.keyframes)} keyframes left"

