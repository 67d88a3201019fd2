"""``fourd doctor``: what fourd will use on this machine and why, and for each missing piece the one
command that fixes it. Every probe is read-only; GL backends are probed in child processes
(PyOpenGL binds one platform per process), so the report lists all three."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys

_GL_PROBE = ("import json; from fourd.gl.context import headless_context as h; "
             "from fourd.gl.kbuffer import kbuffer_support as k; "
             "from fourd.gl.baked_renderer import choose_method as m; c = h(); "
             "print(json.dumps({'backend': c.backend, 'renderer': c.renderer, 'version': c.gl_version, "
             "'one_pass': k(c), 'viewer': m(c, 'auto')[0]}))")


def _probe_gl(backend: str | None, timeout: float = 60.0) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYOPENGL_PLATFORM"}
    if backend:
        env["FOURD_GL"] = backend
    try:
        r = subprocess.run([sys.executable, "-c", _GL_PROBE], capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"ok": False, "why": f"timed out after {timeout:.0f} s"}
    if r.returncode == 0 and r.stdout.strip():
        return {"ok": True, **json.loads(r.stdout.strip().splitlines()[-1])}
    last = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    why = last[-1] if last else f"exit {r.returncode}"
    why = why.split(": ", 1)[-1] if why.startswith("fourd.") else why  # drop the exception's class path
    if "could be made (" in why:  # keep the backend's own reason, not the summary around it
        why = why.split("could be made (", 1)[1].rsplit(") —", 1)[0]
    return {"ok": False, "why": why[:200]}


def _module(name: str) -> str | None:
    """The installed version of a module, or None."""
    if importlib.util.find_spec(name) is None:
        return None
    try:
        from importlib.metadata import PackageNotFoundError, version

        dist = {"cv2": "opencv-python-headless", "cuda": "cuda-python", "open3d": "open3d-cpu"}.get(name, name)
        try:
            return version(dist)
        except PackageNotFoundError:
            return version(name) if dist != name else "installed"
    except Exception:  # noqa: BLE001 - metadata quirks never stop the report
        return "installed"


def diagnose() -> dict:
    """The report as a dict (``fourd doctor --json`` prints it)."""
    import torch

    import fourd
    from fourd.locations import asset_dir, cache_dir, shader_dir

    checks: list[dict] = []

    def check(name: str, ok: bool, detail: str, fix: str | None = None, required: bool = True) -> None:
        checks.append({"name": name, "ok": ok, "detail": detail, "fix": None if ok else fix, "required": required})

    check("python", sys.version_info >= (3, 10), f"{platform.python_version()} on {platform.platform()}",
          "install Python 3.10 or newer")
    shaders = sorted(p.name for p in shader_dir().glob("*.*"))
    check("package data", bool(shaders) and (asset_dir() / "Fox.glb").is_file(),
          f"fourd {fourd.__version__} at {os.path.dirname(fourd.__file__)}; {len(shaders)} shaders in {shader_dir()}",
          "reinstall fourd from a wheel or the checkout: pip install --force-reinstall fourd (or pip install -e .)")
    cuda = torch.cuda.is_available()
    devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []
    check("torch", True, f"{torch.__version__}; devices: cpu" + (f", {', '.join(devices)}" if devices else
                                                                ", no CUDA device"))
    chosen = _probe_gl(None)
    check("gl", chosen["ok"], (f"{chosen['backend']}: {chosen['renderer']} ({chosen['version']})" if chosen["ok"]
                               else chosen["why"]),
          "Linux: bash scripts/install.sh (or apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6); "
          "elsewhere: a desktop session with an OpenGL 3.3+ driver")
    if chosen["ok"]:
        why = chosen.get("one_pass")
        viewer = {"sorted": "one sorted pass", "kbuffer": "one-pass K-buffer"}.get(chosen.get("viewer"), "?")
        check("rasterizer", True, ("training: one-pass K-buffer" if why is None else f"training: K-pass depth "
                                   f"peeling ({why})") + f"; viewer and render: {viewer}", required=False)
    backends = {}
    for b in ("egl", "glfw", "osmesa"):
        backends[b] = _probe_gl(b)
    interop = "no CUDA device" if not cuda else "cuda-python missing"
    if cuda and _module("cuda"):
        interop = "available (CUDA device + cuda-python)"
    check("cuda-gl interop", True, interop, required=False)
    ffmpeg = shutil.which("ffmpeg")
    try:
        import imageio_ffmpeg

        bundled = imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # noqa: BLE001
        bundled = None
    check("ffmpeg (MP4 output)", bool(ffmpeg or bundled), ffmpeg or bundled or "not found",
          "pip install imageio-ffmpeg (or apt-get install ffmpeg)")
    for name, extra, purpose in (("ray", "dist", "rendering on several workers"),
                                 ("diffusers", "gen", "text-to-3D and Shap-E"),
                                 ("open3d", None, "point-cloud utilities in carving"),
                                 ("pytorch3d", None, "the optional pytorch3d rasterizer"),
                                 ("lpips", None, "the LPIPS metric and loss")):
        v = _module(name)
        fix = f"pip install 'fourd[{extra}]'" if extra else f"pip install {name}"
        check(name, v is not None, f"{v} ({purpose})" if v else f"not installed ({purpose})", fix, required=False)
    cache = cache_dir()
    probe = cache if cache.exists() else next((p for p in cache.parents if p.exists()), cache)
    check("cache folder", os.access(probe, os.W_OK), f"{cache} (FOURD_CACHE)",
          "set FOURD_CACHE to a writable folder")
    return {"ok": all(c["ok"] for c in checks if c["required"]), "checks": checks, "gl_backends": backends,
            "gl_choice": os.environ.get("FOURD_GL") or "auto (egl, glfw, osmesa)"}


def print_report(report: dict) -> None:
    from rich.table import Table

    from fourd.console import log

    t = Table(title="fourd doctor", show_header=True)
    for c in ("", "what", "found", "fix"):
        t.add_column(c)
    for c in report["checks"]:
        mark = "[green]ok[/]" if c["ok"] else ("[red]missing[/]" if c["required"] else "[yellow]optional[/]")
        t.add_row(mark, c["name"], c["detail"], c["fix"] or "")
    for name, b in report["gl_backends"].items():
        t.add_row("[green]ok[/]" if b["ok"] else "[yellow]no[/]", f"  gl backend {name}",
                  f"{b['renderer']} ({b['version']})" if b["ok"] else b["why"], "")
    log(t)
    log(f"GL backend choice: {report['gl_choice']} — set FOURD_GL=egl|glfw|osmesa to force one")
    log("[bold green]ready[/]" if report["ok"] else "[bold red]something fourd needs is missing: see the fix column[/]")
