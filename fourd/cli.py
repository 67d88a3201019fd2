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
from fourd.console import HoldParseErrors, log, log_error, set_quiet
from fourd.errors import FourdError


# ----------------------------------------------------------------------------- carve
def carve(dataset: str = "demo", out: Path = Path("outputs/carve"), preset: str | None = None,
          points: int | None = None, resolution: int | None = None, vote: float | None = None,
          bounds: tuple[float, float, float, float, float, float] | None = None, frames: str | None = None,
          try_unanimous: bool | None = None, mask_tolerance: int | None = None,
          drop_outlier_masks: bool | None = None, fix_outlines: bool | None = None, check_sync: bool | None = None,
          device: str = "cpu",
          data_root: Path | None = None) -> None:
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
        try_unanimous: carve each frame again with every camera agreeing (the masks its hull
            contradicts abstaining), and keep that tighter hull if its silhouettes match better
            (default on).
        mask_tolerance: pixels a voxel may project outside a mask before that camera votes it out
            (default 0).
        drop_outlier_masks: carve a frame again without the masks its hull contradicts far more than
            the others' (default off).
        fix_outlines: carve the frames whose masks sit a pixel too tight or too loose against the
            same camera's other frames (carve.json masks_offset) again with them put back (default on).
        check_sync: name the cameras whose masks match the hull best a frame or more away from their
            own numbering — a video out of step with the rest — with the renumbering that fixes
            them (carve.json cameras_out_of_step; default on).
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
    given = {"points": points, "resolution": resolution, "vote": vote, "bounds": bounds, "device": device,
             "try_unanimous": try_unanimous, "mask_tolerance": mask_tolerance, "drop_outlier_masks": drop_outlier_masks,
             "fix_outlines": fix_outlines, "check_sync": check_sync}
    cfg = apply_overrides(cfg, {k: v for k, v in given.items() if v is not None}, "options")
    check_ranges(cfg)
    video = open_dataset(dataset, data_root)
    check_output(out, "folder", (video.path,))
    seq, report = carve_sequence(video, cfg, out, parse_frames(frames, video.frames))
    log(f"carved {len(seq)} frames × {cfg.points} points, silhouette IoU {report['iou_mean']:.3f}, "
        f"{report['frames_unanimous']} frames with every camera agreeing, {report['seconds']:.1f} s → {out}")


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
        data_root: where to put the generated demo capture (default: the cache folder, FOURD_CACHE).
        steps: training steps (default: the demo preset's).
        appearance: how the scene is baked (see fourd bake): compact (17 bytes/point) or views (the
            model's exact image, ~180 bytes/point, and a much quicker bake).
    """
    from fourd.demo import run_demo

    print(json.dumps(run_demo(out, data_root, steps, appearance)))


def doctor(json_out: Annotated[bool, tyro.conf.arg(name="json")] = False) -> None:
    """Say what fourd will use here (Python, torch and devices, the GL backend and renderer, interop,
    ffmpeg, extras, the cache folder) and, for anything missing, the command that fixes it.

    Args:
        json_out: print the report as JSON on stdout.
    """
    from fourd.doctor import diagnose, print_report

    report = diagnose()
    print(json.dumps(report, indent=2)) if json_out else print_report(report)
    if not report["ok"]:
        raise FourdError("fourd is missing something it needs (see the report)", "fourd doctor",
                         "run the command in its fix column")


# ------------------------------------------------------------------------------ main
def describe(fn, whole: bool) -> str:
    """The text a command's docstring gives its help: everything before ``Args:``, each paragraph
    on one line (``whole``: what ``fourd COMMAND --help`` shows), or its first sentence (the
    command list's)."""
    import inspect
    import re

    doc = inspect.cleandoc(fn.__doc__ or "")
    paras = [" ".join(p.split()) for p in doc.split("\nArgs:")[0].strip().split("\n\n") if p.strip()]
    if whole:
        return "\n\n".join(paras)
    first = paras[0] if paras else ""
    return re.split(r"(?<=[.!?])\s+(?=[A-Z`])", first, maxsplit=1)[0]


DESCRIPTION = ("fourd: synchronized multi-view video of a moving subject → a 4D point model (carve, train), "
               "a compact streaming file (bake), real-time playback from any viewpoint (view) and "
               "camera-path videos (render). Start with `fourd demo`; `fourd COMMAND --help` explains each "
               "command. Global flags, before COMMAND: --quiet (no progress), --debug (tracebacks). "
               "Exit status: 0 done, 2 bad input or options, 1 internal error, 130 interrupted.")

_ASKED: list[str] = []  # the command words of the command line being parsed (build_app sets them)


def add(app: SubcommandApp, commands: dict, group: str | None = None, help: str | None = None) -> None:
    """Register ``commands`` (name → function) on ``app``, or on a new group ``group`` of it. tyro
    shows one text for a command both in the command list and atop its own ``--help``: the command
    being asked for gets its docstring's whole description, every other its first paragraph."""
    target = SubcommandApp() if group else app
    for name, fn in commands.items():
        path = [group, name] if group else [name]
        target.command(_announced(fn), name=name, help=describe(fn, _ASKED[:len(path)] == path))
    if group:
        app.command(target, name=group, help=help)


def build_app(args: list[str]) -> SubcommandApp:
    """The command tree; ``args`` choose the defaults of commands with presets (train, fit-mesh)."""
    from fourd.bake.cli import bake
    from fourd.datasets import cli as data
    from fourd.gen import cli as gen
    from fourd.ingest import cli as ingest
    from fourd.offline import cli as paths
    from fourd.offline.cli import render
    from fourd.train.cli import eval_run, make_train, option, train_default
    from fourd.viewer.cli import view

    _ASKED[:] = [a for a in args[:2] if not a.startswith("-")]
    app = SubcommandApp()
    train = make_train(train_default(args) if args[:1] == ["train"] else TrainConfig())
    add(app, {"demo": demo, "doctor": doctor, "carve": carve, "train": train, "eval": eval_run, "bake": bake, "view": view,
              "render": render})
    add(app, {"orbit": paths.path_orbit, "spiral": paths.path_spiral, "show": paths.path_show}, "path",
        "Camera paths: generate (orbit, spiral) or inspect (show).")
    add(app, {"synth": data.data_synth, "info": data.data_info, "convert": data.data_convert,
              "preview": data.data_preview, "degrade": data.data_degrade, "ingest": ingest.data_ingest, "sync": ingest.data_sync,
              "calibrate": ingest.data_calibrate, "masks": ingest.data_masks, "board": ingest.data_board}, "data",
        "Captures: synthesize, summarize, convert, preview, degrade; ingest your own rig's videos.")
    if args[:1] == ["fit-mesh"]:
        from fourd.config import preset

        gen.add_commands(app, preset(option(args, "--preset") or "fourd", "fit-mesh"))
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
    guard = HoldParseErrors(real, _PARSED)
    console.file = real  # fourd's own output is never held
    try:
        app = build_app(args)
        try:
            with contextlib.redirect_stderr(guard):
                app.cli(args=args, prog="fourd", description=DESCRIPTION,
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
