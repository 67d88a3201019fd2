"""`fourd train` and `fourd eval`: typed commands over the trainer and :func:`~fourd.train.run.load_run`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import tyro

from fourd.config import TrainConfig
from fourd.console import log
from fourd.errors import FourdError

Pos = tyro.conf.Positional
Flat = tyro.conf.arg(name="")  # a config's fields as top-level options (--steps, not --cfg.steps)


def make_train(default: TrainConfig):
    def train(cfg: Annotated[TrainConfig, Flat] = default, preset: str | None = None, resume: bool = False,
              restart: bool = False) -> None:
        """Train the 4D model (carving first when no points are given).

        `fourd train --dataset demo --out RUN` uses the demo preset, `--dataset dna_rendering` the
        dna_rendering one; `--preset NAME` picks another. Every setting below is an option and
        overrides the preset. --resume continues RUN exactly where its last checkpoint left it,
        with the run's own settings.

        Args:
            cfg: the training settings.
            preset: settings preset (demo, dna_rendering); default: the dataset's own, if it has one.
            resume: continue the run in --out from its last checkpoint.
            restart: train the run in --out again from the start, with any settings: its checkpoints,
                carve, evaluations, refined cameras and logs are removed first (without --resume or
                --restart, an --out that holds a trained run is refused).
        """
        from fourd.train.checkpoint import moved
        from fourd.train.run import latest_checkpoint
        from fourd.train.trainer import Trainer

        if resume and restart:
            raise FourdError("--resume and --restart ask for opposite things", cfg.out,
                             "give --resume to continue the run, or --restart to train it again")
        last = latest_checkpoint(cfg.out)
        if resume and last is not None and moved(cfg.dataset):
            raise FourdError(f"the run's capture is not at {cfg.dataset} any more", Path(cfg.out) / "config.json",
                             "give its new place with --dataset PATH")
        if last is not None and last.is_file() and not (resume or restart):
            raise FourdError(f"holds a trained run (last checkpoint {last.name})", cfg.out,
                             "add --resume to continue it, --restart to train it again from the start "
                             "(its checkpoints are replaced), or give another --out")

        result = Trainer(cfg, restart=restart and not resume).fit(resume=resume)
        ev = result.get("eval", {}).get("summary")
        if ev:
            log(f"[bold green]trained[/] {result['steps']} steps → {cfg.out}; held-out PSNR {ev['psnr']:.2f} dB, "
                f"SSIM {ev['ssim']:.3f}")
        log(f"next: `fourd view {cfg.out}` (plays it), `fourd render {cfg.out} --orbit --out orbit.mp4`, "
            f"`fourd bake {cfg.out} --out scene.fourd` (a file to share)")

    return train


def train_default(args: list[str]) -> TrainConfig:
    """The config the train options apply to: the run's own with --resume, else the preset named by
    --preset or by --dataset (tyro's pattern for a default chosen on the command line)."""
    from fourd.config import preset
    from fourd.train.run import read_config

    pre, ds, out = (option(args, o) for o in ("--preset", "--dataset", "--out"))
    name = pre or (ds if ds in ("demo", "dna_rendering") else None if ds else "demo")
    default = preset(name) if name else TrainConfig()
    run = Path(out or default.out)
    if "--resume" in args and (run / "config.json").is_file():
        default = read_config(run)
    return default


def option(args: list[str], name: str) -> str | None:
    """The value given to option ``name`` (read only; tyro parses the command line)."""
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def eval_run(run: Pos[Path], out: Path | None = None, frames: int | None = None, dataset: Path | None = None) -> None:
    """Evaluate a trained run on its held-out cameras: OUT/metrics.json ({psnr, ssim, lpips or null,
    per_frame}) and every rendered held-out image as OUT/<cam>/<frame:06d>.png. The summary splits
    the error by region — the silhouette band (±2 px around the mask's edge), the interior and the
    outside — with each one's PSNR, SSIM and share of the squared error and of 1 − SSIM.

    Args:
        run: run folder written by fourd train.
        out: output folder (default RUN/eval/latest).
        frames: evaluate this many evenly spread frames (default all).
        dataset: the run's capture, when it has moved since training (or another copy of it: same
            cameras and frames, e.g. with re-cut masks).
    """
    from fourd.io import check_output
    from fourd.train.evaluate import evaluate
    from fourd.train.run import load_run

    out = out or run / "eval" / "latest"
    if frames is not None and frames < 1:
        raise FourdError(f"{frames} is out of range [1, ...)", "--frames", "evaluate at least one frame")
    check_output(out, "folder")
    from fourd.train.evaluate import BAND

    m = evaluate(load_run(run, dataset=dataset), out, frames=frames)
    log(f"held-out PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.3f}, LPIPS {m['lpips']} → {out}")
    reg = m["summary"].get("regions")
    if reg:  # where the error lives
        log("  " + "; ".join(f"{name}: PSNR {r['psnr']:.2f} dB, {100 * r['mse_share']:.0f} % of the squared error, "
                             f"{100 * r['dssim_share']:.0f} % of 1 − SSIM" for name, r in reg.items() if r["psnr"] is not None)
            + f" (silhouette band ±{BAND} px)")
    print(json.dumps(m["summary"]))
