"""GL contexts without a visible window, three ways behind one API (:func:`headless_context`):

* ``egl`` — EGL surfaceless (Linux: Mesa llvmpipe on a CPU, or a GPU driver's EGL);
* ``glfw`` — a hidden glfw window (Windows, macOS, any desktop with a display; the viewer's visible
  window is made by the same :func:`glfw_window`);
* ``osmesa`` — Mesa's off-screen renderer (Linux without EGL).

``FOURD_GL=egl|glfw|osmesa`` chooses one; otherwise they are tried in that order of fitness and the
first that works is used (and said, when it was not the first). PyOpenGL binds its platform when
``OpenGL`` is first imported (``PYOPENGL_PLATFORM``): a failed try un-imports PyOpenGL before the
next one, which is safe because fourd imports ``OpenGL`` only inside functions, after this.
"""

from __future__ import annotations

import os
import sys
import threading

from fourd.errors import FourdError

_lock = threading.Lock()
_shared = None  # HeadlessContext | GlfwContext | OSMesaContext


class GLUnavailable(FourdError):
    """No OpenGL context could be created."""


BACKENDS = ("egl", "glfw", "osmesa")
_PLATFORM = {"egl": "egl", "osmesa": "osmesa", "glfw": None}  # glfw: PyOpenGL's default for the OS


def _use_platform(backend: str) -> None:
    """Make PyOpenGL bind to ``backend``'s platform, un-importing it if it was bound to another."""
    want = _PLATFORM[backend]
    have = os.environ.get("PYOPENGL_PLATFORM") or None
    if "OpenGL" in sys.modules and have != want:
        for name in [m for m in sys.modules if m == "OpenGL" or m.startswith("OpenGL.")]:
            del sys.modules[name]
    if want is None:
        os.environ.pop("PYOPENGL_PLATFORM", None)
    else:
        os.environ["PYOPENGL_PLATFORM"] = want


def _import_gl_for_egl():
    _use_platform("egl")
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        # Mesa's default EGL display needs an X/Wayland server; surfaceless needs nothing.
        os.environ.setdefault("EGL_PLATFORM", "surfaceless")
    import OpenGL.GL  # noqa: F401
    from OpenGL import EGL  # noqa: F401

    return EGL


class HeadlessContext:
    """An EGL OpenGL core-profile context with no window (render into FBOs, read back pixels)."""

    backend = "egl"

    def __init__(self):
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
        def create(vmaj: int, vmin: int):
            ca = [EGL.EGL_CONTEXT_MAJOR_VERSION, vmaj, EGL.EGL_CONTEXT_MINOR_VERSION, vmin,
                  EGL.EGL_CONTEXT_OPENGL_PROFILE_MASK, EGL.EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT, EGL.EGL_NONE]
            return EGL.eglCreateContext(self.display, cfg, EGL.EGL_NO_CONTEXT, (EGL.EGLint * len(ca))(*ca))

        self.context, self.version = _newest_core(create)
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


def _core_versions():
    return ((4, 5), (4, 3), (4, 1), (3, 3))  # 4.1: the newest macOS offers


def _newest_core(create) -> tuple:
    """(context, (major, minor)) from ``create(major, minor)`` for the newest core version that
    works, or (None, None); a create that raises (PyOpenGL's EGLError) counts as a refusal."""
    for vmaj, vmin in _core_versions():
        try:
            ctx = create(vmaj, vmin)
        except Exception:  # noqa: BLE001 - drivers refuse versions in many ways
            continue
        if ctx:
            return ctx, (vmaj, vmin)
    return None, None


class OSMesaContext:
    """Mesa's off-screen renderer: a core-profile context drawing into a tiny client buffer (fourd
    renders into its own framebuffers)."""

    backend = "osmesa"

    def __init__(self):
        import ctypes

        _use_platform("osmesa")
        try:
            from OpenGL import GL, arrays, osmesa
        except Exception as e:  # libOSMesa missing
            raise GLUnavailable(f"OSMesa is not available ({type(e).__name__}: {e})", None,
                                "install it: apt-get install libosmesa6 (bash scripts/install.sh does)") from None
        self._osmesa = osmesa

        def create(vmaj: int, vmin: int):
            attrs = arrays.GLintArray.asArray([osmesa.OSMESA_FORMAT, osmesa.OSMESA_RGBA, osmesa.OSMESA_DEPTH_BITS, 24,
                                               osmesa.OSMESA_PROFILE, osmesa.OSMESA_CORE_PROFILE,
                                               osmesa.OSMESA_CONTEXT_MAJOR_VERSION, vmaj,
                                               osmesa.OSMESA_CONTEXT_MINOR_VERSION, vmin, 0])
            return osmesa.OSMesaCreateContextAttribs(attrs, None)

        self.context, self.version = _newest_core(create)
        if self.context is None:
            raise GLUnavailable("OSMesa offers no OpenGL 3.3+ core context", None, "install a newer Mesa (libosmesa6)")
        self._buf = (ctypes.c_ubyte * 4)()
        self.make_current()
        self.renderer = GL.glGetString(GL.GL_RENDERER).decode(errors="replace")
        self.gl_version = GL.glGetString(GL.GL_VERSION).decode(errors="replace")

    def make_current(self) -> None:
        from OpenGL import GL

        if not self._osmesa.OSMesaMakeCurrent(self.context, self._buf, GL.GL_UNSIGNED_BYTE, 1, 1):
            raise GLUnavailable("OSMesaMakeCurrent failed", None, "try FOURD_GL=egl or glfw")

    is_software = HeadlessContext.is_software

    def release(self) -> None:
        if self.context is not None:
            self._osmesa.OSMesaDestroyContext(self.context)
            self.context = None

    def __repr__(self) -> str:
        return f"OSMesaContext({self.gl_version!r}, {self.renderer!r})"


def glfw_window(width: int, height: int, title: str = "fourd", visible: bool = True):
    """A glfw window with an OpenGL 3.3+ core context (the newest the driver gives, 4.1 on macOS),
    made current. The viewer's window and the hidden headless context both come from here."""
    _use_platform("glfw")
    try:
        import imgui_bundle  # noqa: F401, I001  (before glfw: it decides which GLFW library pyglfw loads)
    except ImportError:
        pass
    import glfw  # noqa: I001

    if not glfw.init():
        raise GLUnavailable("glfw cannot start (no display?)", None,
                            "run under a desktop or `xvfb-run -a`, or use FOURD_GL=egl / osmesa for headless work")
    window = None
    for vmaj, vmin in _core_versions():
        glfw.default_window_hints()
        glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, vmaj)
        glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, vmin)
        glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
        glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
        glfw.window_hint(glfw.VISIBLE, visible)
        window = glfw.create_window(width, height, title, None, None)
        if window:
            break
    if not window:
        raise GLUnavailable("glfw could not create an OpenGL 3.3+ core window", None,
                            "update the graphics driver, or use FOURD_GL=egl / osmesa")
    glfw.make_context_current(window)
    return window, (vmaj, vmin)


class GlfwContext:
    """A hidden glfw window's context: headless work on Windows, macOS and desktops."""

    backend = "glfw"

    def __init__(self):
        import glfw as _glfw_probe  # noqa: F401  (an ImportError here means the package is missing)

        self.window, self.version = glfw_window(16, 16, "fourd (hidden)", visible=False)
        from OpenGL import GL

        self.renderer = GL.glGetString(GL.GL_RENDERER).decode(errors="replace")
        self.gl_version = GL.glGetString(GL.GL_VERSION).decode(errors="replace")

    def make_current(self) -> None:
        import glfw

        glfw.make_context_current(self.window)

    is_software = HeadlessContext.is_software

    def release(self) -> None:
        import glfw

        if self.window is not None:
            glfw.destroy_window(self.window)
            self.window = None

    def __repr__(self) -> str:
        return f"GlfwContext({self.gl_version!r}, {self.renderer!r})"


_MAKERS = {"egl": HeadlessContext, "glfw": GlfwContext, "osmesa": OSMesaContext}


def backend_order() -> list[str]:
    """``FOURD_GL`` alone when set, else every backend in order of fitness."""
    choice = os.environ.get("FOURD_GL", "").strip().lower()
    if choice:
        if choice not in BACKENDS:
            raise GLUnavailable(f"FOURD_GL={choice} is not a GL backend", "FOURD_GL",
                                f"use one of {', '.join(BACKENDS)} (or unset it to choose automatically)")
        return [choice]
    return list(BACKENDS)


def create_context():
    """A new context from the first backend of :func:`backend_order` that works."""
    from fourd.console import log
    from fourd.locations import cache_dir

    # Mesa keeps compiled shaders on disk: in fourd's cache folder, not wherever HOME points
    if "MESA_SHADER_CACHE_DIR" not in os.environ:
        mesa = cache_dir() / "mesa_shader_cache"
        try:
            mesa.mkdir(parents=True, exist_ok=True)
            os.environ["MESA_SHADER_CACHE_DIR"] = str(mesa)
        except OSError:  # an unwritable cache folder: Mesa keeps its own default
            pass

    failures = []
    for name in backend_order():
        try:
            ctx = _MAKERS[name]()
        except Exception as e:  # any failure means "not this backend here"; keep the reason
            failures.append(f"{name}: {e.message if isinstance(e, GLUnavailable) else f'{type(e).__name__}: {e}'}")
            continue
        if failures:
            log(f"[yellow]GL: using {name} ({ctx.renderer}); not available: {'; '.join(failures)}[/]")
        return ctx
    raise GLUnavailable("no OpenGL context could be made (" + "; ".join(failures) + ")", "FOURD_GL",
                        "run `fourd doctor`; on Linux: bash scripts/install.sh (Mesa EGL/OSMesa), elsewhere a "
                        "desktop session with an OpenGL 3.3+ driver")


def headless_context():
    """The process-wide context (EGL, hidden glfw window or OSMesa), created on first use and made current."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = create_context()
        else:
            _shared.make_current()
        return _shared
