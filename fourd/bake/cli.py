"""`fourd bake`: a trained run (loaded without side effects) or points/a mesh into a .fourd file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import tyro

from fourd.console import log
from fourd.errors import FourdError

Pos = tyro.conf.Positional


def bake(run: Pos[Path], out: Path = Path("scene.fourd"), appearance: Literal["compact", "views"] = "compact",
         views: int = 8, sh: bool = True, fit: bool = True, smooth: float = 1.0, frames: str | None = None,
         ply: Path | None = None, gs_ply: Path | None = None, dataset: Path | None = None) -> None:
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
        dataset: (a run) its capture, when it has moved since training.
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

        loaded = load_run(run, dataset=dataset)
        path = bake_run(loaded, out, views, sh, fit, parse_frames(frames, loaded.video.frames), appearance, smooth)
    else:
        path = bake_scene(run, out)
    for folder, gaussians in ((ply, False), (gs_ply, True)):
        if folder is not None:
            log(f"{'gaussians' if gaussians else 'points'} PLY frames → {export_ply_frames(path, folder, gaussians)}")
    print(path)
