"""The ``fourd`` command: typed subcommand functions handed to tyro (``SubcommandApp``); each body
calls the library function of its domain. ``fourd [--quiet] [--debug] COMMAND --help`` explains.

Exit status: 0 done, 2 bad input or options (one line naming the file or option and a fix),
1 an internal error (one line; ``--debug`` shows the traceback), 130 interrupted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal

import tyro
from tyro.extras import SubcommandApp

from fourd.config import CarveConfig, TrainConfig
from fourd.console import log, log_error, set_quiet
from fourd.errors import FourdError

Pos = tyro.conf.Positional
Flat = tyro.conf.arg(name="")  # a config's fields as top-level options (--steps, not --cfg.steps)


# ----------------------------------------------------------------------------- carve
def carve(dataset: str = "demo", out: Path = Path("outputs/carve"), preset: str | None = None,
          points: int | None = None, resolution: int | None = None, vote: float | None = None,
          bounds: tuple[float, float, float, float, float, float] | None = None, frames: str | None = None,
          device: str = "cpu", data_root: Path | None = None) -> None:
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
    from fourd.config import apply_overrides, check_ranges
    from fourd.config import preset as get_preset
    from fourd.datasets import open_dataset, parse_frames
    from fourd.io import check_output

    name = preset or ("demo" if dataset == "demo" else None)
    cfg = get_preset(name, "carve") if name else CarveConfig()
    given = {"points": points, "resolution": resolution, "vote": vote, "bounds": bounds, "device": device}
    cfg = apply_overrides(cfg, {k: v for k, v in given.items() if v is not None}, "options")
    check_ranges(cfg)
    video = open_dataset(dataset, data_root)
    check_output(out, "folder", (video.path,))
    seq, report = carve_sequence(video, cfg, out, parse_frames(frames, video.frames))
    log(f"carved {len(seq)} frames × {cfg.points} points, silhouette IoU {report['iou_mean']:.3f}, "
        f"{report['seconds']:.1f} s → {out}")


# ----------------------------------------------------------------------------- train
def make_train(default: TrainConfig):
    def train(cfg: Annotated[TrainConfig, Flat] = default, preset: str | None = None, resume: bool = False) -> None:
        """Train the 4D model (carving first when no points are given).

        `fourd train --dataset demo --out RUN` uses the demo preset, `--dataset dna_rendering` the
        dna_rendering one; `--preset NAME` picks another. Every setting below is an option and
        overrides the preset. --resume continues RUN exactly where its last checkpoint left it,
        with the run's own settings.

        Args:
            cfg: the training settings.
            preset: settings preset (demo, dna_rendering); default: the dataset's own, if it has one.
            resume: continue the run in --out from its last checkpoint.
        """
        from fourd.train.trainer import Trainer

        result = Trainer(cfg).fit(resume=resume)
        ev = result.get("eval", {}).get("summary")
        if ev:
            log(f"[bold green]trained[/] {result['steps']} steps → {cfg.out}; held-out PSNR {ev['psnr']:.2f} dB, "
                f"SSIM {ev['ssim']:.3f}")

    return train


def train_default(args: list[str]) -> TrainConfig:
    """The config the train options apply to: the run's own with --resume, else the preset named by
    --preset or by --dataset (tyro's pattern for a default chosen on the command line)."""
    from fourd.config import preset
    from fourd.train.run import read_config

    pre, ds, out = (_option(args, o) for o in ("--preset", "--dataset", "--out"))
    name = pre or (ds if ds in ("demo", "dna_rendering") else None if ds else "demo")
    default = preset(name) if name else TrainConfig()
    run = Path(out or default.out)
    if "--resume" in args and (run / "config.json").is_file():
        default = read_config(run)
    return default


def _option(args: list[str], name: str) -> str | None:
    """The value given to option ``name`` (read only; tyro parses the command line)."""
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def eval_run(run: Pos[Path], out: Path | None = None, frames: int | None = None) -> None:
    """Evaluate a trained run on its held-out cameras: OUT/metrics.json ({psnr, ssim, lpips or null,
    per_frame}) and every rendered held-out image as OUT/<cam>/<frame:06d>.png.

    Args:
        run: run folder written by fourd train.
        out: output folder (default RUN/eval/latest).
        frames: evaluate this many evenly spread frames (default all).
    """
    from fourd.io import check_output
    from fourd.train.evaluate import evaluate
    from fourd.train.run import load_run

    out = out or run / "eval" / "latest"
    if frames is not None and frames < 1:
        raise FourdError(f"{frames} is out of range [1, ...)", "--frames", "evaluate at least one frame")
    check_output(out, "folder")
    m = evaluate(load_run(run), out, frames=frames)
    log(f"held-out PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.3f}, LPIPS {m['lpips']} → {out}")
    print(json.dumps(m["summary"]))


# ------------------------------------------------------------------------------ bake
def bake(run: Pos[Path], out: Path = Path("scene.fourd"), appearance: Literal["compact", "views"] = "compact",
         views: int = 8, sh: bool = True, fit: bool = True, smooth: float = 1.0, frames: str | None = None,
         ply: Path | None = None, gs_ply: Path | None = None) -> None:
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
    from fourd.bake.bake import bake_run, bake_scene, export_ply_frames
    from fourd.io import check_output

    check_output(out, "file", (run,))
    if views < 1 or not smooth >= 0:
        raise FourdError(f"--views {views} / --smooth {smooth}: views must be ≥ 1 and smooth ≥ 0", "--views",
                         "use e.g. --views 8 --smooth 1")
    if (run / "config.json").is_file() or not run.exists():
        from fourd.datasets import parse_frames
        from fourd.train.run import load_run

        loaded = load_run(run)
        path = bake_run(loaded, out, views, sh, fit, parse_frames(frames, loaded.video.frames), appearance, smooth)
    else:
        path = bake_scene(run, out)
    for folder, gaussians in ((ply, False), (gs_ply, True)):
        if folder is not None:
            log(f"{'gaussians' if gaussians else 'points'} PLY frames → {export_ply_frames(path, folder, gaussians)}")
    print(path)


# ------------------------------------------------------------------------------ view
def view(scene: Pos[Path], headless: bool = False, camera: str | None = None, frame: int | None = None,
         screenshot: Path | None = None, size: str | None = None, K: int = 8,
         mode: Literal["rgb", "depth", "alpha", "radius"] = "rgb", script: Path | None = None,
         max_frames: int | None = None, screenshot_dir: Path = Path("screenshots"), state_out: Path | None = None,
         window_capture: Path | None = None) -> None:
    """Play a baked scene (.fourd), a folder of PLY frames or carved points in a window; or, with
    --headless, render one frame from one camera into a PNG through EGL.

    Args:
        scene: .fourd file (fourd bake), a folder of <frame>.ply, or points.safetensors (fourd carve).
        headless: no window: render --frame from --camera into --screenshot.
        camera: a camera name of the capture the scene was trained on, or a camera JSON file
            ({"K", "R", "T", "H", "W"}, OpenCV convention); default the first held-out camera.
        frame: frame id to show (default the first).
        screenshot: PNG to write (headless; default screenshot.png).
        size: WxH of the window (default 1280x720) or of the image (default: the camera's own size).
        K: points composited per pixel.
        mode: rgb, depth, alpha or radius.
        script: JSON list of input events to replay (automation, tests).
        max_frames: close the window after this many frames.
        screenshot_dir: where P / the Screenshot button write PNGs.
        state_out: write the viewer state at exit as JSON.
        window_capture: write the last window image, panels included, to this PNG.
    """
    from fourd.config import parse_size
    from fourd.io import check_output
    from fourd.viewer.scene import open_scene

    wh = parse_size(size) if size else None
    if K < 1:
        raise FourdError(f"--K must be at least 1, got {K}", "--K", "composite 1 to 16 points per pixel")
    sc = open_scene(scene)
    t = 0
    if frame is not None:
        if frame not in sc.frames:
            raise FourdError(f"frame {frame} is not in the scene ({sc.frames[0]}..{sc.frames[-1]})", scene,
                             "pass --frame with one of the scene's frames")
        t = sc.frames.index(frame)
    if headless:
        from fourd.viewer.headless import resolve_camera
        from fourd.viewer.headless import screenshot as shoot

        cam = resolve_camera(sc, camera, wh, scene)
        out = check_output(screenshot or Path("screenshot.png"), "file")
        out = shoot(sc, cam, t, out, K, mode)
        log(f"frame {sc.frames[t]} from camera {cam.names[0] if cam.names else 'orbit'} → {out}")
        print(out)
        return
    from fourd.viewer.app import run_viewer

    run_viewer(sc, scene, wh or (1280, 720), t, K, mode, camera, script, max_frames, screenshot_dir, state_out,
               window_capture)


# ---------------------------------------------------------------------------- render
def render(scene: Pos[Path], out: Path = Path("render.mp4"), path: Path | None = None, orbit: bool = False,
           spiral: bool = False, frames: int = 120, fps: float = 30.0, size: str | None = None, K: int = 8,
           background: tuple[float, float, float] | None = None, workers: int = 0, ray_address: str | None = None,
           chunk: int = 16) -> None:
    """Render a camera path of a baked scene to an H.264 MP4 (or PNG frames when OUT has no video suffix).

    Args:
        scene: .fourd file from fourd bake, a folder of PLY frames, or a training run folder (rendered
            unbaked through the model, to compare with its baked scene).
        out: video.mp4, or a folder for PNG frames.
        path: camera path JSON (the viewer's path editor writes it; `fourd path orbit` makes them).
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
    from fourd.offline.video import render_request

    result, n, fps_out, wh = render_request(scene, out, path, orbit, spiral, frames, fps, size, K, background,
                                            workers, ray_address, chunk)
    print(json.dumps({"out": str(result), "frames": n}))


# ------------------------------------------------------------------------------ demo
def demo(out: Path = Path("outputs/demo"), data_root: Path | None = None, steps: int | None = None,
         appearance: Literal["compact", "views"] = "compact") -> None:
    """Run the main job end to end on the built-in demo capture (the Fox, 24 cameras, 30 frames).

    Synthesizes the capture (cached), prints its summary, writes a contact sheet, carves every
    frame into points (with a picture of one frame's points from a held-out camera), trains the
    4D model with the demo preset, evaluates it on the held-out cameras, bakes it and writes a
    viewer screenshot and an orbit video.

    Args:
        out: folder for everything the demo writes.
        data_root: where to put the generated demo capture (default data/generated/demo).
        steps: training steps (default: the demo preset's).
        appearance: how the scene is baked (see fourd bake): compact (17 bytes/point) or views (the
            model's exact image, ~180 bytes/point, and a much quicker bake).
    """
    from fourd.demo import run_demo

    print(json.dumps(run_demo(out, data_root, steps, appearance)))


# ------------------------------------------------------------------------------ main
def add(app: SubcommandApp, commands: dict, group: str | None = None, help: str | None = None) -> None:
    """Register ``commands`` (name → function) on ``app``, or on a new group ``group`` of it; the
    command list shows each docstring's first line (``fourd COMMAND --help`` the whole)."""
    target = SubcommandApp() if group else app
    for name, fn in commands.items():
        target.command(_announced(fn), name=name, help=(fn.__doc__ or "").strip().split("\n")[0])
    if group:
        app.command(target, name=group, help=help)


def build_app(args: list[str]) -> SubcommandApp:
    """The command tree; ``args`` choose the defaults of commands with presets (train, fit-mesh)."""
    from fourd.datasets import cli as data
    from fourd.gen import cli as gen
    from fourd.offline import cli as paths

    app = SubcommandApp()
    train = make_train(train_default(args) if args[:1] == ["train"] else TrainConfig())
    add(app, {"demo": demo, "carve": carve, "train": train, "eval": eval_run, "bake": bake, "view": view,
              "render": render})
    add(app, {"orbit": paths.path_orbit, "spiral": paths.path_spiral, "show": paths.path_show}, "path",
        "Camera paths: generate (orbit, spiral) or inspect (show).")
    add(app, {"synth": data.data_synth, "info": data.data_info, "convert": data.data_convert,
              "preview": data.data_preview}, "data", "Captures: synthesize, summarize, convert, preview.")
    if args[:1] == ["fit-mesh"]:
        from fourd.config import preset

        gen.add_commands(app, preset(_option(args, "--preset") or "fourd", "fit-mesh"))
    else:
        gen.add_commands(app)
    return app


def _announced(fn):
    """``fn`` that first marks the command line as parsed (stderr text after that is the command's,
    not tyro's). Built in ``fn``'s own module namespace, so tyro resolves its annotations there."""
    import functools
    import types

    parsed = _PARSED  # a closure cell: the wrapper's globals are fn's module, not this one

    def call(*args, **kwargs):
        parsed.append(True)
        return fn(*args, **kwargs)

    wrapper = types.FunctionType(call.__code__, fn.__globals__, fn.__name__, None, call.__closure__)
    return functools.update_wrapper(wrapper, fn)


_PARSED: list[bool] = []  # non-empty once tyro has called a command in this process's current main()


class _HoldTyroBox:
    """sys.stderr during :func:`main`: while tyro is still parsing, whatever is written is tyro's
    refusal of the command line, held so :func:`main` prints it as one line; once a command runs,
    text passes straight through."""

    def __init__(self, real):
        self.real, self.held = real, []

    def write(self, text: str) -> int:
        if not _PARSED:  # still parsing: only tyro writes here, and only to refuse the command line
            self.held.append(text)
            return len(text)
        return self.real.write(text)

    def flush(self) -> None:
        self.real.flush()

    def isatty(self) -> bool:
        return False  # plain text: the box is condensed, not shown

    def one_line(self) -> str:
        lines = (ln.strip(" │╭╮╰╯─━┃") for ln in _plain("".join(self.held)).splitlines())
        text = " ".join(ln for ln in lines if ln and not ln.startswith("For full helptext"))
        return " ".join(text.split()) or "the command line was not understood"


def _plain(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    flags = set()
    while args and args[0] in ("--quiet", "--debug"):  # global flags, before the command
        flags.add(args[0])
        args = args[1:]
    set_quiet("--quiet" in flags)
    args = args or ["--help"]
    command = args[0] if args else ""
    import contextlib

    from fourd.console import console

    real = sys.stderr
    _PARSED.clear()
    guard = _HoldTyroBox(real)
    console.file = real  # fourd's own output is never held
    try:
        app = build_app(args)
        try:
            with contextlib.redirect_stderr(guard):
                app.cli(args=args, prog="fourd", description=__doc__.splitlines()[0],
                        config=(tyro.conf.PositionalMetavarFromFieldName,))
        except SystemExit as e:
            if e.code not in (0, None) and guard.held:
                guard.held, text = [], guard.one_line()
                raise FourdError(text, "command line", "see `fourd COMMAND --help`") from None
            raise
        finally:
            if guard.held:  # not an error after all: show it
                real.write("".join(guard.held))
    except FourdError as e:
        log_error(f"error: {e.one_line()}")
        return 2
    except SystemExit as e:  # tyro: --help (0) or a bad command line (2)
        return e.code if isinstance(e.code, int) else 2
    except BrokenPipeError:  # `fourd ... | head`: the reader left; say nothing more
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        log("[yellow]interrupted[/]")
        return 130
    except Exception as e:  # a bug, not bad input: one line, the traceback on request
        if "--debug" in flags:
            raise
        detail = " ".join(str(e).split())[:300]
        log_error(f"internal error in `fourd {command}`: {type(e).__name__}: {detail} "
                  "(run `fourd --debug ...` for the traceback and report it)")
        return 1
    finally:
        console.file = None  # back to whatever sys.stderr is
    return 0


if __name__ == "__main__":
    sys.exit(main())
