"""imgui panels. They only read and edit :class:`ViewerState`; they never render or load."""

from __future__ import annotations

from fourd.viewer.controls import SHORTCUTS
from fourd.viewer.state import MODES, ViewerState


def draw_panels(state: ViewerState, camera_names: list[str], actions: dict) -> None:
    """``actions`` holds callbacks the app owns: 'snap'(i), 'save_path'(), 'screenshot'()."""
    from imgui_bundle import imgui

    imgui.set_next_window_pos((10, 10), imgui.Cond_.first_use_ever)
    imgui.set_next_window_size((300, 0), imgui.Cond_.first_use_ever)
    imgui.begin("fourd")
    imgui.text(f"{1000.0 / max(state.frame_ms, 1e-3):5.1f} FPS  {state.frame_ms:6.1f} ms/frame")
    if state.info:
        imgui.text_wrapped(f"{state.info}; {state.points:,} points")
    if imgui.collapsing_header("Playback", imgui.TreeNodeFlags_.default_open):
        if imgui.button("Pause" if state.playing else "Play"):
            state.playing = not state.playing
        imgui.same_line()
        if imgui.button("<"):
            state.step(-1)
        imgui.same_line()
        if imgui.button(">"):
            state.step(1)
        imgui.same_line()
        _, state.loop = imgui.checkbox("loop", state.loop)
        changed, f = imgui.slider_int("frame", state.frame, 0, max(state.n_frames - 1, 0))
        if changed:
            state.time, state.playing = float(f), False
        _, state.speed = imgui.slider_float("speed", state.speed, 0.1, 4.0)
    if imgui.collapsing_header("Render", imgui.TreeNodeFlags_.default_open):
        changed, i = imgui.combo("mode", MODES.index(state.mode), list(MODES))
        if changed:
            state.mode = MODES[i]
        _, state.K = imgui.slider_int("K peels", state.K, 1, 16)
        _, state.radius_scale = imgui.slider_float("radius scale", state.radius_scale, 0.25, 3.0)
        _, state.adaptive = imgui.checkbox("adaptive quality while moving", state.adaptive)
        _, state.target_fps = imgui.slider_float("target FPS", state.target_fps, 2.0, 60.0)
        if imgui.button("Screenshot (P)"):
            actions["screenshot"]()
    if camera_names and imgui.collapsing_header("Cameras"):
        for i, n in enumerate(camera_names):
            if imgui.button(n):
                actions["snap"](i)
            if (i + 1) % 6:
                imgui.same_line()
        imgui.new_line()
        if imgui.button("Reset view (R)"):
            state.reset_camera()
    if imgui.collapsing_header("Camera path"):
        imgui.text(f"{len(state.keyframes)} keyframes")
        if imgui.button("Add keyframe (K)"):
            actions["add_keyframe"]()
        imgui.same_line()
        if imgui.button("Delete last"):
            state.delete_keyframe()
        if imgui.button("Save path JSON"):
            actions["save_path"]()
    if state.message:
        imgui.text_wrapped(state.message)
    if state.errors:
        imgui.text_colored((1.0, 0.4, 0.3, 1.0), f"{len(state.errors)} frame(s) failed to load (see above)")
    imgui.end()
    if state.show_help:
        imgui.set_next_window_pos((330, 10), imgui.Cond_.first_use_ever)
        imgui.begin("Shortcuts")
        for keys, what in SHORTCUTS:
            imgui.text(f"{keys:<22} {what}")
        imgui.end()
