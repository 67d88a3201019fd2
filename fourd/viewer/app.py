"""The interactive viewer: a glfw window, imgui panels, and the baked-point GL renderer.

The loop reads input into :class:`Controls`, streams the current frame from the scene, renders
it with :class:`~fourd.gl.baked_renderer.BakedRenderer` at the quality the state asks for
(fewer peels and pixels while the camera moves), scales it into the window and draws the
panels. A JSON script of input events can drive it (tests, demos); a failing frame is reported
in the UI and the previous one stays on screen.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from fourd.console import log
from fourd.errors import FourdError
from fourd.io import write_png
from fourd.viewer.controls import Controls
from fourd.viewer.scene import Scene
from fourd.viewer.state import OrbitCamera, ViewerState


def _key_names():
    import glfw

    names = {getattr(glfw, f"KEY_{c.upper()}"): c for c in "abcdefghijklmnopqrstuvwxyz0123456789"}
    names.update({glfw.KEY_SPACE: "space", glfw.KEY_LEFT: "left", glfw.KEY_RIGHT: "right", glfw.KEY_F1: "f1",
                  glfw.KEY_DELETE: "delete", glfw.KEY_ESCAPE: "escape"})
    return names


class WindowContext:
    def __init__(self, window):
        self.window = window

    def make_current(self) -> None:
        import glfw

        glfw.make_context_current(self.window)


class ViewerApp:
    def __init__(self, scene: Scene, width: int = 1280, height: int = 720, title: str = "fourd"):
        from fourd.gl.context import GLUnavailable, glfw_window

        try:  # the same window code as the hidden headless context (FOURD_GL=glfw)
            self.window, _ = glfw_window(width, height, title, visible=True)
        except GLUnavailable as e:
            raise FourdError(f"cannot open a window: {e.message}", fix="run under a desktop or `xvfb-run -a`, "
                             "or use `fourd view SCENE --headless --screenshot out.png`") from None
        import glfw
        from imgui_bundle import imgui
        from imgui_bundle.python_backends.glfw_backend import GlfwRenderer

        glfw.swap_interval(0)
        imgui.create_context()
        imgui.get_io().set_ini_filename("")
        self.imgui_impl = GlfwRenderer(self.window, attach_callbacks=False)
        self.scene = scene
        self.state = ViewerState(n_frames=len(scene), fps=scene.fps, info=scene.describe())
        self._home_camera()
        snaps = [scene.cameras[i] for i in range(len(scene.cameras))] if scene.cameras is not None else []
        self.controls = Controls(self.state, snaps)
        from fourd.gl.baked_renderer import BakedRenderer

        self.renderer = BakedRenderer(width, height, WindowContext(self.window))
        self.state.one_pass = self.renderer.method != "peel"
        self.loaded = None
        self._key_names = _key_names()
        self._install_callbacks()
        self.screenshot_dir = Path(".")
        self.screenshots: list[str] = []
        self.path_file = Path("camera_path.json")
        self.window_capture: Path | None = None  # when set, every frame's window (panels too) goes here

    # -------------------------------------------------------------- set-up
    def _home_camera(self) -> None:
        cam = OrbitCamera()
        if self.scene.bounds is not None:
            lo, hi = (np.asarray(b, np.float64) for b in self.scene.bounds)
            cam.target = (lo + hi) / 2
            cam.distance = float(np.linalg.norm(hi - lo)) * 1.2
        if self.scene.cameras is not None:
            cam.up = self.scene.cameras.up_direction()  # orbit about the rig's up, whatever the world's axes
            cam.set_from(self.scene.cameras[0], cam.target)
        self.state.home = cam
        self.state.reset_camera()

    def _install_callbacks(self) -> None:
        import glfw
        from imgui_bundle import imgui

        impl, io = self.imgui_impl, imgui.get_io()

        def on_key(win, key, scancode, action, mods):
            impl.keyboard_callback(win, key, scancode, action, mods)
            if not io.want_capture_keyboard and key in self._key_names and action != glfw.REPEAT:
                self.controls.key(self._key_names[key], action == glfw.PRESS)

        def on_cursor(win, x, y):
            impl.mouse_callback(win, x, y)
            self.controls.mouse_move(x, y)

        def on_button(win, button, action, mods):
            impl.mouse_button_callback(win, button, action, mods)
            name = {glfw.MOUSE_BUTTON_LEFT: "left", glfw.MOUSE_BUTTON_RIGHT: "right",
                    glfw.MOUSE_BUTTON_MIDDLE: "middle"}.get(button)
            if name and (not io.want_capture_mouse or action == glfw.RELEASE):
                self.controls.mouse_button(name, action == glfw.PRESS)

        def on_scroll(win, dx, dy):
            impl.scroll_callback(win, dx, dy)
            if not io.want_capture_mouse:
                self.controls.scroll(dy)

        glfw.set_key_callback(self.window, on_key)
        glfw.set_cursor_pos_callback(self.window, on_cursor)
        glfw.set_mouse_button_callback(self.window, on_button)
        glfw.set_scroll_callback(self.window, on_scroll)
        glfw.set_char_callback(self.window, impl.char_callback)
        glfw.set_window_size_callback(self.window, impl.resize_callback)

    # ------------------------------------------------------------- actions
    def screenshot(self) -> Path:
        """Full-quality render of the current view to a PNG."""
        w, h = self._fb_size()
        self._render(w, h, self.state.K)
        path = self.screenshot_dir / f"fourd_{len(self.screenshots):03d}_frame{self.scene.frames[self.state.frame]:06d}.png"
        write_png(path, self.renderer.read())
        self.screenshots.append(str(path))
        self.state.message = f"saved {path}"
        return path

    def save_path(self) -> Path:
        from fourd.offline.paths import CameraPath, Keyframe
        from fourd.structures.cameras import Cameras

        keys = [Keyframe(k["time"], Cameras.from_dict(k), k["frame"]) for k in self.state.keyframes]
        CameraPath(keys, "catmull_rom", self.state.fps).save(self.path_file)
        self.state.message = f"camera path → {self.path_file}"
        return self.path_file

    def add_keyframe(self) -> None:
        self.state.add_keyframe(*self._fb_size())

    # ---------------------------------------------------------------- loop
    def _fb_size(self) -> tuple[int, int]:
        import glfw

        return glfw.get_framebuffer_size(self.window)

    def _ensure_frame(self) -> None:
        t = self.state.frame
        if t == self.loaded:
            return
        try:
            self.renderer.upload(self.scene.frame(t))
            self.loaded = t
            self.state.points = self.renderer.n
        except Exception as e:  # keep showing the last good frame; say what failed
            self.state.message = f"frame {self.scene.frames[t]} failed to load: {e}"
            self.state.errors.append(self.state.message)
            self.loaded = t

    def _render(self, w: int, h: int, K: int, fraction: float = 1.0) -> None:
        cam = self.state.camera.cameras(w, h)
        self.renderer.render(cam, K, self.scene.background, self.state.mode, self.state.radius_scale,
                             self.scene.near, self.scene.far, fraction=fraction)

    def frame(self, dt: float) -> None:
        import glfw
        from imgui_bundle import imgui
        from OpenGL import GL

        from fourd.viewer.panels import draw_panels

        t0 = time.perf_counter()
        glfw.poll_events()
        self.controls.update(dt)
        self._ensure_frame()
        W, H = self._fb_size()
        K, scale, fraction = self.state.effective_quality()
        w, h = max(1, int(W * scale)), max(1, int(H * scale))
        self._render(w, h, K, fraction)
        GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, self.renderer.output.fbo)
        GL.glBindFramebuffer(GL.GL_DRAW_FRAMEBUFFER, 0)
        GL.glViewport(0, 0, W, H)
        GL.glBlitFramebuffer(0, 0, w, h, 0, 0, W, H, GL.GL_COLOR_BUFFER_BIT, GL.GL_LINEAR)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
        self.imgui_impl.process_inputs()
        imgui.new_frame()
        names = self.scene.cameras.names if self.scene.cameras is not None else []
        draw_panels(self.state, names, {"snap": self.controls.snap, "save_path": self.save_path,
                                        "screenshot": self.screenshot, "add_keyframe": self.add_keyframe})
        imgui.render()
        self.imgui_impl.render(imgui.get_draw_data())
        if self.window_capture is not None:
            self._capture_window(W, H)
        glfw.swap_buffers(self.window)
        if self.state.screenshot_requested:
            self.state.screenshot_requested = False
            self.screenshot()
        self.state.frame_ms = (time.perf_counter() - t0) * 1000
        self.state.adapt(self.state.frame_ms)
        self.state.moving = False

    def run(self, max_frames: int | None = None, script: list[dict] | None = None) -> dict:
        import glfw

        events = sorted(script or [], key=lambda e: e["frame"])
        n, last = 0, time.perf_counter()
        while not glfw.window_should_close(self.window) and (max_frames is None or n < max_frames):
            while events and events[0]["frame"] <= n:
                self._apply(events.pop(0))
            now = time.perf_counter()
            self.frame(now - last if script is None else 1.0 / 30)  # scripted runs use a fixed time step
            last = now
            n += 1
        return self.summary()

    def _capture_window(self, W: int, H: int) -> None:
        from OpenGL import GL

        GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, 0)
        GL.glReadBuffer(GL.GL_BACK)
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
        buf = np.frombuffer(GL.glReadPixels(0, 0, W, H, GL.GL_RGB, GL.GL_UNSIGNED_BYTE), np.uint8).reshape(H, W, 3)
        write_png(self.window_capture, buf[::-1])

    def _apply(self, e: dict) -> None:
        """Scripted input, fed through the same handlers as real events."""
        c = self.controls
        kind = e["event"]
        if kind == "drag":
            x0, y0, x1, y1 = e["from"] + e["to"]
            c.mouse_move(x0, y0)
            c.mouse_button(e.get("button", "left"), True)
            for s in np.linspace(0, 1, 8)[1:]:
                c.mouse_move(x0 + (x1 - x0) * s, y0 + (y1 - y0) * s)
            c.mouse_button(e.get("button", "left"), False)
        elif kind == "key":
            c.key(e["key"], True)
            c.key(e["key"], False)
        elif kind == "scroll":
            c.scroll(e["dy"])

    def summary(self) -> dict:
        s = self.state
        return {"frame": s.frame, "playing": s.playing, "yaw": s.camera.yaw, "pitch": s.camera.pitch,
                "distance": s.camera.distance, "mode": s.mode, "screenshots": self.screenshots,
                "keyframes": len(s.keyframes), "message": s.message, "errors": s.errors, "frame_ms": s.frame_ms,
                "info": s.info, "points": s.points}

    def close(self) -> None:
        import glfw

        self.renderer.release()
        self.imgui_impl.shutdown()
        glfw.destroy_window(self.window)
        glfw.terminate()
        log("viewer closed")


def run_viewer(scene: Scene, scene_path: Path, size: tuple[int, int], t: int = 0, K: int | None = None, mode: str = "rgb",
               camera: str | None = None, script: Path | None = None, max_frames: int | None = None,
               screenshot_dir: Path = Path("screenshots"), state_out: Path | None = None,
               window_capture: Path | None = None) -> dict:
    """Open the viewer on ``scene`` at frame index ``t`` (from capture camera ``camera`` when
    named), play until closed (or ``max_frames``), optionally replaying a JSON ``script`` of input
    events; returns (and writes to ``state_out``) the final state."""
    app = ViewerApp(scene, size[0], size[1], f"fourd — {Path(scene_path).name}")
    app.screenshot_dir, app.window_capture = screenshot_dir, window_capture
    app.state.time, app.state.K, app.state.mode = float(t), scene.K(K), mode
    if camera is not None and scene.cameras is not None and camera in scene.cameras.names:
        app.controls.snap(scene.cameras.names.index(camera))
    events = None
    if script is not None:
        try:
            events = json.loads(Path(script).read_text())
        except (OSError, ValueError) as e:
            raise FourdError(f"cannot read the event script ({e})", script, "give a JSON list of events") from None
    try:
        summary = app.run(max_frames, events)
    finally:
        app.close()
    if state_out:
        from fourd.io import write_json

        write_json(state_out, summary)
    return summary
