"""The ``fourd`` command. Each subcommand is a typed function; tyro turns it into a CLI.

    fourd demo                      the main job end to end on the built-in demo capture
    fourd data synth|info|convert|preview
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal

import tyro

from fourd.console import log, set_quiet
from fourd.errors import FourdError

Pos = tyro.conf.Positional
Capture = Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="CAPTURE")]


# ----------------------------------------------------------------------------- data
def data_synth(
    out: Pos[Path],
    asset: str = "Fox.glb",
    animation: str | None = "Walk",
    layout: Literal["easyvolcap", "smc"] = "easyvolcap",
    cameras: int = 24,
    rings: int = 2,
    frames: int = 30,
    size: int = 512,
    held_out: int = 4,
    fps: float = 30.0,
    image_format: Literal["jpg", "png"] = "jpg",
) -> None:
    """Render a synthetic multi-view capture of an animated glTF asset, with exact masks and
    the posed ground-truth mesh of every frame (gt/verts_<frame>.npy, gt/faces.npy).

    Args:
        out: output folder.
        asset: .glb path, or a name in data/assets/ (Fox.glb, CesiumMan.glb, RiggedSimple.glb).
        animation: clip name (None: the first clip).
        layout: easyvolcap (images/, masks/, intri.yml, extri.yml) or smc (DNA-Rendering main/ + annotations/).
        cameras: total number of cameras, split evenly over the rings.
        rings: number of camera rings (elevations spread from 5° to 50°).
        frames: number of frames.
        size: image width and height in pixels.
        held_out: cameras kept for evaluation.
        fps: frame rate.
        image_format: jpg or png.
    """
    from fourd.datasets.synth import SynthRecipe, synthesize

    if cameras < rings or rings < 1:
        raise FourdError(f"{cameras} cameras cannot fill {rings} rings", fix="use at least one camera per ring")
    per = [cameras // rings + (1 if i < cameras % rings else 0) for i in range(rings)]
    elev = [5.0] if rings == 1 else [5.0 + 45.0 * i / (rings - 1) for i in range(rings)]
    recipe = SynthRecipe(asset=asset, animation=animation, rings=list(zip(per, elev)), frames=frames, fps=fps,
                         width=size, height=size, held_out=held_out, image_format=image_format)
    synthesize(recipe, out, layout)


def data_info(path: Capture, json_out: Annotated[bool, tyro.conf.arg(name="json")] = False,
              data_root: Path | None = None) -> None:
    """Summarize a capture: layout, cameras, frames, resolution, mask coverage.

    Args:
        path: capture folder, .smc file, or a dataset name (demo, dna_rendering).
        json_out: print {layout, cameras, frames, width, height, ...} as JSON on stdout.
        data_root: where named datasets live.
    """
    from fourd.datasets import open_dataset

    info = open_dataset(path, data_root).info()
    if json_out:
        print(json.dumps(info))
        return
    from rich.table import Table

    t = Table(title=f"capture {info['path']}", show_header=False)
    for k, v in info.items():
        t.add_row(k, f"{v:.1%}" if k == "mask_coverage" and v is not None else str(v))
    log(t)


def data_convert(src: Capture, out: Pos[Path], to: Literal["easyvolcap", "smc"] = "easyvolcap",
                 sequence: str = "fourd_0000", data_root: Path | None = None) -> None:
    """Convert a capture to another layout, copying encoded images and masks byte for byte.

    Args:
        src: capture folder, .smc file, or a dataset name.
        out: output folder.
        to: target layout.
        sequence: sequence name for SMC output (main/<sequence>.smc).
        data_root: where named datasets live.
    """
    from fourd.console import progress
    from fourd.datasets import open_dataset

    video = open_dataset(src, data_root)
    _check_writable(out)
    if to == "easyvolcap":
        from fourd.datasets.easyvolcap import write_easyvolcap

        with progress("converting frames", len(video.frames)) as advance:
            write_easyvolcap(video, out, advance)
    else:
        from fourd.datasets.smc import write_smc

        with progress("converting cameras", len(video.cameras)) as advance:
            write_smc(video, out, sequence, advance)
    log(f"wrote {to} capture → {out}")


def data_preview(path: Capture, out: Path = Path("sheet.png"), cameras: int = 24, frames: int = 4,
                 data_root: Path | None = None) -> None:
    """Write a contact sheet PNG: frames × cameras thumbnails with mask outlines and the camera rig.

    Args:
        path: capture folder, .smc file, or a dataset name.
        out: PNG to write.
        cameras: at most this many cameras (evenly chosen).
        frames: at most this many frames (evenly chosen).
        data_root: where named datasets live.
    """
    from fourd.datasets import open_dataset
    from fourd.datasets.preview import contact_sheet

    contact_sheet(open_dataset(path, data_root), out, cameras, frames)
    log(f"contact sheet → {out}")
    print(out)


def _check_writable(out: Path) -> None:
    import os

    parent = out if out.exists() else out.parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise FourdError("output folder is not writable", out, "choose another --out")


# ----------------------------------------------------------------------------- carve
def carve(
    dataset: str = "demo",
    out: Path = Path("outputs/carve"),
    preset: str | None = None,
    points: int | None = None,
    resolution: int | None = None,
    vote: float | None = None,
    bounds: tuple[float, float, float, float, float, float] | None = None,
    frames: str | None = None,
    device: str = "cpu",
    data_root: Path | None = None,
) -> None:
    """Carve the visual hull of every frame into a fixed number of surface points.

    Writes OUT/<frame:06d>.ply (Open3D/MeshLab), OUT/points.safetensors (for training) and
    OUT/carve.json (volume, per-frame voxel counts and silhouette IoU).

    Args:
        dataset: demo, dna_rendering, or a capture path.
        out: output folder.
        preset: settings preset (demo, dna_rendering); default: demo for the demo capture, else none.
        points: surface points per frame (default 262144; demo preset 32768).
        resolution: voxels along the longest side of the working volume.
        vote: fraction of the cameras seeing a voxel that must put it inside their mask.
        bounds: working volume xmin ymin zmin xmax ymax zmax (default: found from cameras and masks).
        frames: frames to carve, e.g. "0:10" or "0,5,9" (default all).
        device: torch device (cpu, cuda, ...).
        data_root: where named datasets live.
    """
    from fourd.carve.run import carve_sequence
    from fourd.config import PRESETS, CarveConfig, apply_overrides
    from fourd.datasets import open_dataset

    video = open_dataset(dataset, data_root)
    cfg = CarveConfig()
    preset = preset or ("demo" if dataset == "demo" else None)
    if preset:
        if preset not in PRESETS:
            raise FourdError(f"unknown preset '{preset}'", fix=f"use one of {', '.join(PRESETS)}")
        cfg = apply_overrides(cfg, PRESETS[preset].get("carve", {}), f"preset {preset}")
    given = {"points": points, "resolution": resolution, "vote": vote, "bounds": bounds, "device": device}
    cfg = apply_overrides(cfg, {k: v for k, v in given.items() if v is not None})
    _check_writable(out)
    seq, report = carve_sequence(video, cfg, out, parse_frames(frames, video.frames))
    log(f"carved {len(seq)} frames × {cfg.points} points, silhouette IoU {report['iou_mean']:.3f}, "
        f"{report['seconds']:.1f} s → {out}")


def parse_frames(spec: str | None, available: list[int]) -> list[int] | None:
    """'a:b' (half-open), 'a:b:s', or 'i,j,k' → frame ids, checked against the capture."""
    if spec is None:
        return None
    try:
        if ":" in spec:
            parts = [int(x) if x else None for x in spec.split(":")]
            chosen = [f for f in range(*slice(*parts).indices(max(available) + 1)) if f in available]
        else:
            chosen = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise FourdError(f"cannot read frames '{spec}'", fix="use a:b, a:b:step or a comma list") from None
    missing = [f for f in chosen if f not in available]
    if missing or not chosen:
        raise FourdError(f"frames {missing or spec} are not in the capture ({available[0]}..{available[-1]})",
                         fix="pick frames the capture has")
    return chosen


# ----------------------------------------------------------------------------- train
def train_main(argv: list[str]) -> None:
    """Train the 4D model (carving first when no points are given).

    `fourd train --dataset demo --out RUN` uses the demo preset; `--preset NAME` picks another
    (demo, dna_rendering); every setting of TrainConfig is an option (see --help). --resume
    continues RUN exactly where its last checkpoint left it.
    """
    from fourd.config import TrainConfig, preset

    pre = _pop_option(argv, "--preset")
    resume = "--resume" in argv
    if resume:
        argv.remove("--resume")
    ds = _peek_option(argv, "--dataset") or "demo"
    name = pre or ("demo" if ds == "demo" else "dna_rendering" if ds == "dna_rendering" else None)
    default = preset(name) if name else TrainConfig()
    if resume:
        out = _peek_option(argv, "--out") or default.out
        saved = Path(out) / "config.json"
        if saved.is_file():  # resume with the run's own settings; options given now override them
            from fourd.config import from_json

            default = from_json(TrainConfig, saved.read_text(), str(saved))
    cfg = tyro.cli(TrainConfig, args=argv, default=default, prog="fourd train",
                   description=(train_main.__doc__ or "").strip())
    from fourd.train.trainer import Trainer

    result = Trainer(cfg).fit(resume=resume)
    ev = result.get("eval", {}).get("summary")
    if ev:
        log(f"[bold green]trained[/] {result['steps']} steps → {cfg.out}; held-out PSNR {ev['psnr']:.2f} dB, "
            f"SSIM {ev['ssim']:.3f}")


def _peek_option(argv: list[str], name: str) -> str | None:
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def _pop_option(argv: list[str], name: str) -> str | None:
    v = _peek_option(argv, name)
    if v is not None:
        i = next(i for i, a in enumerate(argv) if a == name or a.startswith(name + "="))
        del argv[i:i + (1 if "=" in argv[i] else 2)]
    return v


def eval_run(run: Pos[Path], out: Path | None = None, frames: int | None = None) -> None:
    """Evaluate a trained run on its held-out cameras: OUT/metrics.json ({psnr, ssim, lpips or null,
    per_frame}) and every rendered held-out image as OUT/<cam>/<frame:06d>.png.

    Args:
        run: run folder written by fourd train.
        out: output folder (default RUN/eval/latest).
        frames: evaluate this many evenly spread frames (default all).
    """
    from fourd.config import TrainConfig, from_json
    from fourd.train.evaluate import evaluate
    from fourd.train.trainer import Trainer

    cfg_path = run / "config.json"
    if not cfg_path.is_file():
        raise FourdError("not a training run (no config.json)", run, "pass the --out folder of fourd train")
    cfg = from_json(TrainConfig, cfg_path.read_text(), str(cfg_path))
    tr = Trainer(cfg)
    if not tr.resume():
        raise FourdError("the run has no checkpoint yet", run / "checkpoints", "train it first")
    m = evaluate(tr, out or run / "eval" / "latest", frames=frames)
    log(f"held-out PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.3f}, LPIPS {m['lpips']} → {out or run / 'eval' / 'latest'}")
    print(json.dumps(m["summary"]))


# ------------------------------------------------------------------------------ bake
def bake(run: Pos[Path], out: Path = Path("scene.fourd"), appearance: Literal["compact", "views"] = "compact", views: int = 8,
         sh: bool = True, fit: bool = True, smooth: float = 1.0, frames: str | None = None, ply: Path | None = None,
         gs_ply: Path | None = None) -> None:
    """Bake a trained run (or points/a mesh) into a compact streaming file for fourd view / fourd render.

    Args:
        run: run folder written by fourd train; or a points.safetensors (fourd carve / import / generate),
            a folder of <frame>.ply, or a mesh (fourd fit-mesh), baked as they are.
        out: .fourd file to write.
        appearance: compact — a fitted colour and degree-1 SH residual per point (≈ 17 bytes/point,
            within a few tenths of a dB of the model on held-out views); views — the model's own image
            blend, tabulated per training camera as 4K4D does (the viewer reproduces the model's
            image exactly; 6 bytes/point per training camera + 63).
        views: (compact) training cameras the per-point colour estimate is taken from.
        sh: keep a degree-1 SH residual (view-dependent colour, 4-bit); --no-sh stores colour only.
        fit: refine colours (and residuals) by least squares against every training image through the
            baked geometry (≈ +1 dB held-out on the demo); --no-fit keeps the per-point estimate (faster).
        smooth: weight tying each point's fitted colour to its nearest neighbours' (0: none); it
            removes the mottling of splats that trade colour with each other (+0.1 dB on the demo).
        frames: bake only these frames: a:b (half-open), a:b:step or a comma list (default: all).
        ply: also write each baked frame as a coloured PLY into this folder.
        gs_ply: also write each frame as a 3D Gaussian Splatting PLY (isotropic Gaussians) into this folder.
    """
    from fourd.bake.bake import bake_run, gaussian_splat_attributes
    from fourd.bake.format import BakedSequence
    from fourd.structures.points import write_ply

    if (run / "config.json").is_file() or not run.exists():
        ids = None
        if frames:
            from fourd.config import TrainConfig, from_json
            from fourd.datasets import open_dataset

            cfg = from_json(TrainConfig, (run / "config.json").read_text())
            ids = parse_frames(frames, open_dataset(cfg.dataset, cfg.data_root).frames)
        path = bake_run(run, out, views, sh, fit, ids, appearance, smooth)
    else:
        from fourd.bake.bake import bake_scene

        path = bake_scene(run, out)
    seq = BakedSequence(path)
    for folder, kind in ((ply, "points"), (gs_ply, "gaussians")):
        if folder is None:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        for t, fid in enumerate(seq.frames):
            f = seq.frame(t)
            attrs = {"colors": f.rgb, "radius": f.radius, "density": f.density} if kind == "points" \
                else gaussian_splat_attributes(f)
            write_ply(folder / f"{fid:06d}.ply", f.xyz, attrs)
        log(f"{kind} PLY frames → {folder}")
    print(path)


def view(scene: Pos[Path], headless: bool = False, camera: str | None = None, frame: int | None = None,
         screenshot: Path | None = None, size: str = "1280x720", K: int = 8, mode: str = "rgb",
         script: Path | None = None, max_frames: int | None = None, screenshot_dir: Path = Path("screenshots"),
         state_out: Path | None = None, window_capture: Path | None = None) -> None:
    """Play a baked scene (.fourd), a folder of PLY frames or carved points in a window; or, with
    --headless, render one frame from one camera into a PNG through EGL.

    Args:
        scene: .fourd file (fourd bake), a folder of <frame>.ply, or points.safetensors (fourd carve).
        headless: no window: render --frame from --camera into --screenshot.
        camera: a camera name of the capture the scene was trained on, or a camera JSON file
            ({"K", "R", "T", "H", "W"}, OpenCV convention); default the first held-out camera.
        frame: frame id to show (default the first).
        screenshot: PNG to write (headless).
        size: WxH of the window or image (a named camera's intrinsics are scaled to it).
        K: points composited per pixel.
        mode: rgb, depth, alpha or radius.
        script: JSON list of input events to replay (automation, tests).
        max_frames: close the window after this many frames.
        screenshot_dir: where P / the Screenshot button write PNGs.
        state_out: write the viewer state at exit as JSON.
        window_capture: write the last window image, panels included, to this PNG.
    """
    from fourd.viewer.scene import open_scene

    try:
        w, h = (int(x) for x in size.lower().split("x"))
    except ValueError:
        raise FourdError(f"--size must look like 1280x720, got '{size}'") from None
    sc = open_scene(scene)
    t = 0
    if frame is not None:
        if frame not in sc.frames:
            raise FourdError(f"frame {frame} is not in the scene ({sc.frames[0]}..{sc.frames[-1]})", scene)
        t = sc.frames.index(frame)
    if headless:
        _view_headless(sc, scene, camera, t, screenshot or Path("screenshot.png"), w, h, K, mode, size)
        return
    from fourd.viewer.app import ViewerApp

    app = ViewerApp(sc, w, h, f"fourd — {scene.name}")
    app.screenshot_dir, app.window_capture = screenshot_dir, window_capture
    app.state.time, app.state.K, app.state.mode = float(t), K, mode
    if camera is not None and sc.cameras is not None and camera in sc.cameras.names:
        app.controls.snap(sc.cameras.names.index(camera))
    events = json.loads(script.read_text()) if script else None
    try:
        summary = app.run(max_frames, events)
    finally:
        app.close()
    if state_out:
        state_out.write_text(json.dumps(summary, indent=2))


def _view_headless(sc, scene: Path, camera: str | None, t: int, out: Path, w: int, h: int, K: int, mode: str,
                   size: str) -> None:
    import cv2

    from fourd.gl.baked_renderer import BakedRenderer
    from fourd.io import atomic_write_bytes
    from fourd.structures.cameras import Cameras

    if camera is None and sc.cameras is not None:
        camera = (sc.held_out or sc.cameras.names)[0]
    if sc.cameras is not None and camera in sc.cameras.names:
        cam = sc.cameras[camera]
        if size != "1280x720":  # the default size keeps the capture camera's own
            cam = cam.resize(h, w)
    elif camera is not None:
        p = Path(camera)
        if not p.is_file():
            names = ", ".join(sc.cameras.names[:8]) if sc.cameras is not None else "none"
            raise FourdError(f"'{camera}' is neither a camera of the capture nor a camera JSON file", scene,
                             f"use one of {names}… or a JSON file")
        try:
            cam = Cameras.from_dict(json.loads(p.read_text()))
        except (ValueError, KeyError) as e:
            raise FourdError(f"bad camera JSON ({e})", p, 'give {"K", "R", "T", "H", "W"}') from None
    else:
        from fourd.viewer.state import OrbitCamera

        lo, hi = sc.bounds
        oc = OrbitCamera(target=(lo + hi) / 2, distance=float(((hi - lo) ** 2).sum() ** 0.5) * 1.2)
        cam = oc.cameras(w, h)
    r = BakedRenderer(int(cam.W[0]), int(cam.H[0]))
    r.upload(sc.frame(t))
    r.render(cam, K, sc.background, mode, 1.0, sc.near, sc.far)
    atomic_write_bytes(out, cv2.imencode(".png", r.read()[..., ::-1])[1].tobytes())
    r.release()
    log(f"frame {sc.frames[t]} from camera {cam.names[0]} → {out}")
    print(out)


# ---------------------------------------------------------------------------- render
def _default_orbit(scene_path: Path, frames: int, spiral: bool, fps: float, size: str | None):
    """An orbit (or spiral) around the scene, at the capture cameras' distance and height."""
    import numpy as np

    from fourd.offline.paths import orbit
    from fourd.viewer.scene import open_scene

    if (scene_path / "config.json").is_file():  # a run: use its carved volume and capture cameras
        import json as _json

        from fourd.datasets import open_dataset
        from fourd.viewer.scene import Scene

        cfg = _json.loads((scene_path / "config.json").read_text())
        from fourd.structures.points import PointSequence

        pts = PointSequence.load(cfg.get("points_file") or scene_path / "carve" / "points.safetensors")
        video = open_dataset(cfg["dataset"], cfg.get("data_root"))
        sc = Scene(video.frames, video.fps, video.cameras, 0.01, 100.0, bounds=pts.meta["bounds"])
    else:
        sc = open_scene(scene_path)
    lo, hi = (np.asarray(b, np.float64) for b in sc.bounds)
    target = (lo + hi) / 2
    W, H, radius, height = 640, 480, float(np.linalg.norm(hi - lo)) * 1.2, 0.3 * float(np.linalg.norm(hi - lo))
    fov = 40.0
    if sc.cameras is not None:
        C = sc.cameras.centers.double().numpy() - target
        radius = float(np.hypot(C[:, 0], C[:, 2]).mean())
        height = float(np.median(C[:, 1]))
        W, H = int(sc.cameras.W[0]), int(sc.cameras.H[0])
        import math

        fov = math.degrees(2 * math.atan(H / (2 * float(sc.cameras.K[0, 1, 1]))))
    if size:
        W, H = _parse_size(size)
    seconds = frames / fps
    return orbit(target, radius, height, 8, seconds, fov, W, H, fps=fps,
                 height_to=(height + 0.6 * radius) if spiral else None)


def _parse_size(size: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in size.lower().split("x"))
        return w, h
    except ValueError:
        raise FourdError(f"--size must look like 1280x720, got '{size}'") from None


def render(scene: Pos[Path], out: Path = Path("render.mp4"), path: Path | None = None, orbit: bool = False,
           spiral: bool = False, frames: int = 120, fps: float = 30.0, size: str | None = None, K: int = 8,
           background: tuple[float, float, float] | None = None, workers: int = 0, ray_address: str | None = None,
           chunk: int = 16) -> None:
    """Render a camera path of a baked scene to an H.264 MP4 (or PNG frames when OUT has no video suffix).

    Args:
        scene: .fourd file from fourd bake, a folder of PLY frames, or a training run folder (rendered
            unbaked through the model, to compare with its baked scene).
        out: video.mp4, or a folder for PNG frames.
        path: camera path JSON (the viewer's path editor writes it; `fourd render path` makes them).
        orbit: render a closed orbit around the scene instead of --path.
        spiral: render a rising spiral around the scene instead of --path.
        frames: number of frames of a generated path (a --path file sets its own from its fps).
        fps: frame rate of the video (and of generated paths).
        size: WxH output size (default: the path's camera size).
        K: points composited per pixel.
        background: colour r g b in [0, 1] (default: the scene's).
        workers: render as chunks on this many local Ray workers (0: serially in this process).
        ray_address: an existing Ray cluster to render on.
        chunk: frames per Ray task.
    """
    import json as _json

    from fourd.offline.paths import CameraPath
    from fourd.offline.video import RenderJob, log_render, render_job

    if sum([path is not None, orbit, spiral]) != 1:
        raise FourdError("choose exactly one of --path FILE, --orbit, --spiral")
    if frames < 1 or fps <= 0:
        raise FourdError("--frames must be ≥ 1 and --fps > 0")
    if path is not None:
        cp = CameraPath.load(path)
        n = cp.n_frames()
    else:
        cp = _default_orbit(scene, frames, spiral, fps, size)
        n = frames
    w, h = _parse_size(size) if size else (None, None)
    from fourd.viewer.scene import open_scene

    if not (scene / "config.json").is_file():  # a trained run renders unbaked through the torch path
        open_scene(scene)  # bad scene → clear error before any rendering
    job = RenderJob(str(scene), cp.to_json(), n, w, h, K, background)
    result, imgs = render_job(job, out, fps if path is None else cp.fps, workers, ray_address, chunk)
    log_render(result, len(imgs), fps if path is None else cp.fps, (imgs[0].shape[1], imgs[0].shape[0]))
    print(_json.dumps({"out": str(result), "frames": len(imgs)}))


def render_path_cmd(argv: list[str]) -> None:
    """`fourd render path orbit|spiral SCENE --out path.json [--frames N] [--fps F] [--size WxH]` writes a path;
    `fourd render path show PATH.json [--scene SCENE] [--plot top.png]` prints it and draws it from above."""
    import json as _json

    if not argv or argv[0] not in ("orbit", "spiral", "show"):
        print(render_path_cmd.__doc__)
        return
    kind, rest = argv[0], argv[1:]
    if kind in ("orbit", "spiral"):
        def make(scene: Pos[Path], out: Path = Path("path.json"), frames: int = 120, fps: float = 30.0,
                 size: str | None = None) -> None:
            """Write a generated camera path around a scene."""
            p = _default_orbit(scene, frames, kind == "spiral", fps, size)
            p.save(out)
            log(f"{kind}: {len(p.keyframes)} keyframes, {p.duration:.1f} s → {out}")

        tyro.cli(make, args=rest, prog=f"fourd render path {kind}")
        return

    def show(path: Pos[Path], scene: Path | None = None, plot: Path | None = None) -> None:
        """Summarize a camera path and optionally draw it from above over the capture cameras."""
        import numpy as np

        from fourd.offline.paths import CameraPath

        cp = CameraPath.load(path)
        info = {"keyframes": len(cp.keyframes), "duration_s": cp.duration, "fps": cp.fps, "frames": cp.n_frames(),
                "interpolation": cp.interpolation, "loop": cp.loop, "time_mode": cp.time_mode}
        print(_json.dumps(info))
        if plot:
            import cv2

            from fourd.datasets.preview import camera_frame, top_view
            from fourd.io import atomic_write_bytes

            samples = np.stack([cp.camera_at(t).centers[0].double().numpy() for t in cp.sample(200)])
            cams = None
            if scene is not None:
                from fourd.viewer.scene import open_scene

                cams = open_scene(scene).cameras
            if cams is not None:
                C, fwd, up = camera_frame(cams)
                labels, cols = cams.names, [(90, 200, 120)] * len(cams)
            else:
                k = [kf.camera for kf in cp.keyframes]
                C = np.stack([c.centers[0].double().numpy() for c in k])
                fwd = np.stack([c.R[0, 2].double().numpy() for c in k])
                up, labels, cols = -np.stack([c.R[0, 1].double().numpy() for c in k]).mean(0), [], []
                labels, cols = [f"k{i}" for i in range(len(k))], [(230, 200, 90)] * len(k)
            img = top_view(C, fwd, up, labels, cols, 480, "camera path (top view)", samples,
                           "blue: path (dot = start)  green: capture cameras")
            atomic_write_bytes(plot, cv2.imencode(".png", img[..., ::-1])[1].tobytes())
            log(f"plot → {plot}")

    tyro.cli(show, args=rest, prog="fourd render path show")


# ------------------------------------------------------------------------------ demo
def demo(out: Path = Path("outputs/demo"), data_root: Path | None = None, steps: int | None = None,
         appearance: Literal["compact", "views"] = "compact") -> None:
    """Run the main job end to end on the built-in demo capture (the Fox, 24 cameras, 30 frames).

    Synthesizes the capture (cached in data/generated/demo), prints its summary, writes a contact
    sheet, carves every frame into points (with a picture of one frame's points from a held-out
    camera), trains the 4D model with the demo preset and evaluates it on the held-out cameras.

    Args:
        out: folder for everything the demo writes.
        data_root: where to put the generated demo capture (default data/generated/demo).
        steps: training steps (default: the demo preset's).
        appearance: how the scene is baked (see fourd bake): compact (17 bytes/point) or views (the
            model's exact image, ~180 bytes/point, and a much quicker bake).
    """
    import json as _json

    from fourd.config import apply_overrides, preset
    from fourd.datasets import open_dataset
    from fourd.datasets.preview import contact_sheet
    from fourd.structures.points import PointSequence
    from fourd.train.trainer import Trainer

    out.mkdir(parents=True, exist_ok=True)
    video = open_dataset("demo", data_root)
    data_info("demo", data_root=data_root)
    log(f"contact sheet → {contact_sheet(video, out / 'demo_sheet.png')}")
    over = {"out": str(out / "run"), "data_root": None if data_root is None else str(data_root)}
    if steps is not None:
        over["steps"] = steps
    cfg = apply_overrides(preset("demo"), over)
    trainer = Trainer(cfg)  # carves into RUN/carve first when needed
    carve_dir = out / "run" / "carve"
    report = _json.loads((carve_dir / "carve.json").read_text())
    seq = PointSequence.load(carve_dir / "points.safetensors")
    log(f"carved {len(seq)} frames × {seq.counts[0]} points: silhouette IoU {report['iou_mean']:.3f}")
    log(f"carved points of one frame from a held-out camera → {carve_picture(video, seq, report, out / 'carve_frame.png')}")
    result = trainer.fit(resume=True)
    ev = result["eval"]["summary"]
    log(f"held-out PSNR {ev['psnr']:.2f} dB, SSIM {ev['ssim']:.3f} (images in {out / 'run' / 'eval' / 'final'})")
    from fourd.bake.bake import bake_run

    scene = bake_run(out / "run", out / "demo.fourd", appearance=appearance)
    shot = out / "viewer_frame.png"
    view(scene, headless=True, frame=video.frames[len(video.frames) // 2], screenshot=shot)
    video_path = out / "orbit.mp4"
    render(scene, out=video_path, orbit=True, frames=90, fps=30.0)
    log(f"[bold green]demo done[/]: baked scene {scene}, viewer screenshot {shot}, orbit video {video_path}; "
        f"play it with `fourd view {scene}`")
    print(_json.dumps({"held_out_psnr": ev["psnr"], "held_out_ssim": ev["ssim"], "run": str(out / "run"),
                       "scene": str(scene), "screenshot": str(shot), "video": str(video_path)}))


def carve_picture(video, seq, report, path: Path) -> Path:
    """Real image | carved points rendered through the point renderer, from a held-out camera."""
    import cv2
    import numpy as np

    from fourd.io import atomic_write_bytes
    from fourd.render.preview import render_points

    f = seq.frames[len(seq) // 2]
    cam_name = (video.held_out or video.camera_names)[0]
    view = video.view(f, cam_name)
    spacing = next(s["spacing"] for s in report["frames"] if s["frame"] == f)
    img = render_points(seq.frame(f), seq.attribute("colors", f), 0.8 * spacing, view.camera)
    both = np.concatenate([view.image, img], 1)
    for x, label in ((8, f"camera {cam_name} (held out), frame {f}"), (view.image.shape[1] + 8, "carved points")):
        cv2.putText(both, label, (x, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (230, 230, 230), 1, cv2.LINE_AA)
    ok, buf = cv2.imencode(".png", both[..., ::-1])
    return atomic_write_bytes(path, buf.tobytes())


COMMANDS = {
    "demo": demo,
    "carve": carve,
    "train": train_main,
    "eval": eval_run,
    "bake": bake,
    "view": view,
    "render": render,
    "data": {"synth": data_synth, "info": data_info, "convert": data_convert, "preview": data_preview},
    "fit-mesh": "fourd.gen.cli:fit_mesh_main",
    "generate": "fourd.gen.cli:generate_main",
    "import": "fourd.gen.cli:import_cmd",
}
RAW_ARGV = {"fit-mesh", "generate"}  # commands that parse their own arguments


def _resolve(cmd):
    """Generators' commands live in fourd.gen.cli, imported only when used."""
    if isinstance(cmd, str):
        import importlib

        mod, name = cmd.split(":")
        return getattr(importlib.import_module(mod), name)
    return cmd


def _usage() -> str:
    lines = ["usage: fourd [--quiet] COMMAND ...", "", "commands:"]
    for name, cmd in COMMANDS.items():
        if isinstance(cmd, dict):
            for sub, fn in cmd.items():
                lines.append(f"  {name} {sub:<10} {(fn.__doc__ or '').strip().splitlines()[0]}")
        else:
            lines.append(f"  {name:<15} {(_resolve(cmd).__doc__ or '').strip().splitlines()[0]}")
    lines.append("\n`fourd COMMAND --help` explains a command's options.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--quiet" in argv:
        argv.remove("--quiet")
        set_quiet(True)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    cmd = COMMANDS.get(argv[0])
    prog = f"fourd {argv[0]}"
    rest = argv[1:]
    if isinstance(cmd, dict):
        if not rest or rest[0] not in cmd:
            print(f"usage: fourd {argv[0]} {{{','.join(cmd)}}} ...")
            return 0 if rest[:1] in (["-h"], ["--help"]) or not rest else 2
        prog, cmd, rest = f"{prog} {rest[0]}", cmd[rest[0]], rest[1:]
    if cmd is None:
        print(f"fourd: unknown command '{argv[0]}'\n\n{_usage()}", file=sys.stderr)
        return 2
    try:
        name = argv[0]
        cmd = _resolve(cmd)
        if cmd is train_main or name in RAW_ARGV:
            cmd(rest)
        elif cmd is render and rest[:1] == ["path"]:
            render_path_cmd(rest[1:])
        else:
            tyro.cli(cmd, args=rest, prog=prog)
    except FourdError as e:
        log(f"[bold red]error:[/] {e.one_line()}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        log("[yellow]interrupted[/]")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
