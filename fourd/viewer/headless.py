"""One frame of a scene from one camera into a PNG, without a window (``fourd view --headless``)."""

from __future__ import annotations

import json
from pathlib import Path

from fourd.errors import FourdError
from fourd.io import write_png
from fourd.structures.cameras import Cameras
from fourd.viewer.scene import Scene


def resolve_camera(scene: Scene, camera: str | None, size: tuple[int, int] | None, where: Path) -> Cameras:
    """A capture camera by name (scaled to ``size`` when given), a camera JSON file ({"K", "R",
    "T", "H", "W"}, OpenCV convention), or — with neither, and no capture cameras — an orbit
    camera framing the scene's bounds. Default: the first held-out capture camera."""
    if camera is None and scene.cameras is not None:
        camera = (scene.held_out or scene.cameras.names)[0]
    if scene.cameras is not None and camera in scene.cameras.names:
        cam = scene.cameras[camera]
        return cam.resize(size[1], size[0]) if size else cam
    if camera is not None:
        p = Path(camera)
        if not p.is_file():
            names = ", ".join(scene.cameras.names[:8]) if scene.cameras is not None else "none"
            raise FourdError(f"'{camera}' is neither a camera of the capture nor a camera JSON file", where,
                             f"use one of {names}… or a JSON file")
        try:
            return Cameras.from_dict(json.loads(p.read_text()))
        except (ValueError, KeyError, TypeError) as e:
            raise FourdError(f"bad camera JSON ({e})", p, 'give {"K", "R", "T", "H", "W"}') from None
    from fourd.viewer.state import OrbitCamera

    w, h = size or (1280, 720)
    lo, hi = scene.bounds
    oc = OrbitCamera(target=(lo + hi) / 2, distance=float(((hi - lo) ** 2).sum() ** 0.5) * 1.2)
    return oc.cameras(w, h)


def screenshot(scene: Scene, cam: Cameras, t: int, out: str | Path, K: int | None = None, mode: str = "rgb") -> Path:
    """Render frame index ``t`` of ``scene`` from ``cam`` with the viewer's GL renderer into ``out``."""
    from fourd.gl.baked_renderer import BakedRenderer

    r = BakedRenderer(int(cam.W[0]), int(cam.H[0]))
    try:
        r.upload(scene.frame(t))
        r.render(cam, scene.K(K), scene.background, mode, 1.0, scene.near, scene.far)
        return write_png(out, r.read())
    finally:
        r.release()
