"""The interactive viewer. ``state.py`` (what is shown; no GL, no imgui), ``controls.py`` (input →
state), ``panels.py`` (imgui, edits state only), ``scene.py`` (what is played, one frame at a time),
``app.py`` (the glfw loop; takes a renderer — the same BakedRenderer `fourd view --headless` uses)."""
