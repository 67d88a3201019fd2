"""Input → state. Mouse: left-drag orbits, right/middle-drag pans, wheel zooms. Keys: WASD/QE fly,
Space play/pause, Left/Right step, L loop, R reset view, 1..9 snap to a capture camera, P screenshot,
K add keyframe, Delete remove it, M next render mode, H or F1 help. No GL or imgui here: the
app forwards glfw events as plain values, so tests can drive it directly."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fourd.viewer.state import MODES, ViewerState

SHORTCUTS = [
    ("left drag", "orbit"), ("right / middle drag", "pan"), ("wheel", "zoom"), ("W A S D / Q E", "fly"),
    ("space", "play / pause"), ("Left / Right", "step a frame"), ("L", "loop on/off"), ("R", "reset view"),
    ("1 .. 9", "snap to capture camera"), ("P", "screenshot (PNG)"), ("K / Delete", "add / remove keyframe"),
    ("M", "next render mode"), ("H, F1", "this help"),
]


@dataclass
class Mouse:
    x: float = 0.0
    y: float = 0.0
    left: bool = False
    right: bool = False
    middle: bool = False


class Controls:
    def __init__(self, state: ViewerState, snap_cameras=None):
        self.state = state
        self.mouse = Mouse()
        self.snap_cameras = snap_cameras or []  # list of Cameras (one each) to snap to with 1–9
        self.held: set[str] = set()

    # --------------------------------------------------------------- mouse
    def mouse_button(self, button: str, pressed: bool) -> None:
        setattr(self.mouse, button, pressed)

    def mouse_move(self, x: float, y: float) -> None:
        dx, dy = x - self.mouse.x, y - self.mouse.y
        self.mouse.x, self.mouse.y = x, y
        cam = self.state.camera
        if self.mouse.left:
            cam.yaw -= dx * 0.01
            cam.pitch = float(np.clip(cam.pitch + dy * 0.01, -1.5, 1.5))
            self.state.moving = True
        elif self.mouse.right or self.mouse.middle:
            _, right, up = cam.basis()
            scale = cam.distance * 0.002
            cam.target = cam.target - right * dx * scale + up * dy * scale
            self.state.moving = True

    def scroll(self, dy: float) -> None:
        self.state.camera.distance = float(max(1e-3, self.state.camera.distance * math.pow(0.9, dy)))
        self.state.moving = True

    # ----------------------------------------------------------------- keys
    def key(self, name: str, pressed: bool) -> None:
        s = self.state
        if not pressed:
            self.held.discard(name)
            return
        if name in ("w", "a", "s", "d", "q", "e"):
            self.held.add(name)
        elif name == "space":
            s.playing = not s.playing
        elif name == "right":
            s.step(1)
        elif name == "left":
            s.step(-1)
        elif name == "l":
            s.loop = not s.loop
        elif name == "r":
            s.reset_camera()
            s.moving = True
        elif name == "p":
            s.screenshot_requested = True
        elif name == "m":
            s.mode = MODES[(MODES.index(s.mode) + 1) % len(MODES)]
        elif name in ("h", "f1"):
            s.show_help = not s.show_help
        elif name == "k":
            s.add_keyframe(640, 480)
        elif name == "delete":
            s.delete_keyframe()
        elif name.isdigit() and name != "0":
            self.snap(int(name) - 1)

    def snap(self, i: int) -> None:
        if 0 <= i < len(self.snap_cameras):
            self.state.camera.set_from(self.snap_cameras[i], self.state.camera.target)
            self.state.message = f"camera {self.snap_cameras[i].names[0]}"
            self.state.moving = True

    def update(self, dt: float) -> None:
        """Per frame: fly with held keys, advance playback."""
        cam = self.state.camera
        if self.held:
            fwd, right, up = cam.basis()
            v = np.zeros(3)
            for k, d in (("w", fwd), ("s", -fwd), ("d", right), ("a", -right), ("e", up), ("q", -up)):
                if k in self.held:
                    v += d
            cam.target = cam.target + v * cam.distance * dt
            self.state.moving = True
        self.state.advance(dt)
