"""OpenGL layer: context creation (EGL headless, glfw window), shader programs from ``shaders/``,
framebuffers, and the renderers built on them.

Nothing outside ``fourd/gl/`` (and the viewer) imports OpenGL; nothing here imports at package
import time. Matrices come from :mod:`fourd.structures.cameras`, the one place conventions change.
"""
