"""GL contexts: an EGL headless context (Mesa surfaceless/llvmpipe on CPU, a GPU's EGL otherwise).

PyOpenGL picks its platform once, when ``OpenGL`` is first imported, from ``PYOPENGL_PLATFORM``.
:func:`headless_context` therefore sets ``PYOPENGL_PLATFORM=egl`` before importing it and refuses
clearly if some other code already imported OpenGL for another platform (e.g. a glfw window).
"""

from __future__ import annotations

import os
import sys
import threading

from fourd.errors import FourdError

_lock = threading.Lock()
_shared: "HeadlessContext | None" = None


class GLUnavailable(FourdError):
    """No OpenGL context could be created."""


def _import_gl_for_egl():
    if "OpenGL" in sys.modules:
        plat = os.environ.get("PYOPENGL_PLATFORM", "")
        if plat != "egl":
            raise GLUnavailable(
                f"OpenGL was already imported for platform '{plat or 'default'}', so an EGL context cannot be made "
                "in this process",
                fix="set PYOPENGL_PLATFORM=egl before anything imports OpenGL, or use one process per GL platform",
            )
    os.environ["PYOPENGL_PLATFORM"] = "egl"
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        # Mesa's default EGL display needs an X/Wayland server; surfaceless needs nothing.
        os.environ.setdefault("EGL_PLATFORM", "surfaceless")
    import OpenGL.GL  # noqa: F401
    from OpenGL import EGL  # noqa: F401

    return EGL


class HeadlessContext:
    """An OpenGL core-profile context with no window (render into FBOs, read back pixels)."""

    def __init__(self, versions=((4, 5), (4, 3), (3, 3))):
        EGL = _import_gl_for_egl()
        import ctypes

        self._EGL = EGL
        try:
            self.display = EGL.eglGetDisplay(EGL.EGL_DEFAULT_DISPLAY)
            major, minor = EGL.EGLint(), EGL.EGLint()
            if not EGL.eglInitialize(self.display, ctypes.pointer(major), ctypes.pointer(minor)):
                raise GLUnavailable("eglInitialize failed", None, "install Mesa EGL (scripts/install.sh) or set FOURD_GL=osmesa / PYOPENGL_PLATFORM=osmesa")
        except GLUnavailable:
            raise
        except Exception as e:  # PyOpenGL raises EGLError instead of returning EGL_FALSE
            raise GLUnavailable(
                f"cannot open an EGL display ({type(e).__name__}: {e})",
                fix="install Mesa's EGL (bash scripts/install.sh does: libegl1 libegl-mesa0 libgl1-mesa-dri)",
            ) from None
        attribs = [EGL.EGL_SURFACE_TYPE, EGL.EGL_PBUFFER_BIT, EGL.EGL_RENDERABLE_TYPE, EGL.EGL_OPENGL_BIT, EGL.EGL_NONE]
        cfg = EGL.EGLConfig()
        n = EGL.EGLint()
        if not EGL.eglChooseConfig(self.display, (EGL.EGLint * len(attribs))(*attribs), ctypes.pointer(cfg), 1,
                                   ctypes.pointer(n)) or n.value < 1:
            raise GLUnavailable("no EGL config supports desktop OpenGL", fix="install libgl1-mesa-dri")
        if not EGL.eglBindAPI(EGL.EGL_OPENGL_API):
            raise GLUnavailable("eglBindAPI(EGL_OPENGL_API) failed", None, "install Mesa EGL (scripts/install.sh) or set FOURD_GL=osmesa / PYOPENGL_PLATFORM=osmesa")
        self.context = None
        for vmaj, vmin in versions:
            ca = [EGL.EGL_CONTEXT_MAJOR_VERSION, vmaj, EGL.EGL_CONTEXT_MINOR_VERSION, vmin,
                  EGL.EGL_CONTEXT_OPENGL_PROFILE_MASK, EGL.EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT, EGL.EGL_NONE]
            try:
                ctx = EGL.eglCreateContext(self.display, cfg, EGL.EGL_NO_CONTEXT, (EGL.EGLint * len(ca))(*ca))
            except Exception:
                continue
            if ctx:
                self.context, self.version = ctx, (vmaj, vmin)
                break
        if self.context is None:
            raise GLUnavailable("no OpenGL 3.3+ core context is available through EGL", None, "install Mesa EGL (scripts/install.sh) or set FOURD_GL=osmesa / PYOPENGL_PLATFORM=osmesa")
        self.make_current()
        from OpenGL import GL

        self.renderer = GL.glGetString(GL.GL_RENDERER).decode(errors="replace")
        self.gl_version = GL.glGetString(GL.GL_VERSION).decode(errors="replace")

    def make_current(self) -> None:
        EGL = self._EGL
        if not EGL.eglMakeCurrent(self.display, EGL.EGL_NO_SURFACE, EGL.EGL_NO_SURFACE, self.context):
            raise GLUnavailable("eglMakeCurrent failed (surfaceless contexts need EGL_KHR_surfaceless_context)", None, "install Mesa EGL (scripts/install.sh) or set FOURD_GL=osmesa / PYOPENGL_PLATFORM=osmesa")

    @property
    def is_software(self) -> bool:
        r = self.renderer.lower()
        return "llvmpipe" in r or "softpipe" in r or "swrast" in r

    def release(self) -> None:
        EGL = self._EGL
        if self.context is not None:
            EGL.eglMakeCurrent(self.display, EGL.EGL_NO_SURFACE, EGL.EGL_NO_SURFACE, EGL.EGL_NO_CONTEXT)
            EGL.eglDestroyContext(self.display, self.context)
            self.context = None

    def __repr__(self) -> str:
        return f"HeadlessContext({self.gl_version!r}, {self.renderer!r})"


def headless_context() -> HeadlessContext:
    """The process-wide headless context, created on first use and made current."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = HeadlessContext()
        else:
            _shared.make_current()
        return _shared
