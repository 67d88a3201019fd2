"""`fourd data synth|info|convert|preview`: typed commands over the capture library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import tyro

from fourd.console import log
from fourd.errors import FourdError

Pos = tyro.conf.Positional
Capture = Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="CAPTURE")]


def data_synth(out: Pos[Path], asset: str = "Fox.glb", animation: str | None = "Walk",
               layout: Literal["easyvolcap", "smc"] = "easyvolcap", cameras: int = 24, rings: int = 2,
               frames: int = 30, size: int = 512, held_out: int = 4, fps: float = 30.0,
               image_format: Literal["jpg", "png"] = "jpg", rig: Literal["ring", "dna_rendering"] = "ring",
               scale: float = 1.0, supersample: int = 1) -> None:
    """Render a synthetic multi-view capture of an animated glTF asset, with exact masks and the
    posed ground-truth mesh of every frame (gt/verts_<frame>.npy, gt/faces.npy).

    Args:
        out: output folder.
        asset: .glb path, or a shipped asset (Fox.glb, CesiumMan.glb, RiggedSimple.glb).
        animation: clip name (None: the first clip; the default falls back to the first clip on an
            asset without a 'Walk' clip).
        layout: easyvolcap (images/, masks/, intri.yml, extri.yml) or smc (DNA-Rendering main/ + annotations/).
        cameras: total number of cameras, split evenly over the rings.
        rings: number of camera rings (elevations spread from 5° to 50°).
        frames: number of frames.
        size: image width and height in pixels.
        held_out: cameras kept for evaluation.
        fps: frame rate.
        image_format: jpg or png.
        rig: ring (--cameras on --rings at --size), or dna_rendering: DNA-Rendering's rig — 48 cameras at
            2448×2048 and 12 at 4096×3000, each with lens distortion and a Color_Calibration (use
            --layout smc; --cameras, --rings and --size are ignored). Rendered and written frame by
            frame, so memory does not grow with --frames.
        scale: image size factor of the dna_rendering rig (1 = native sizes).
        supersample: render N×N samples per pixel and average them: anti-aliased edges as a real
            camera or a production renderer gives, and masks holding each pixel's coverage (0–255);
            1 = one sample per pixel (hard edges, 0/255 masks).
    """
    from fourd.datasets.synth import dna_rendering_recipe, ring_recipe, synthesize
    from fourd.io import check_output

    check_output(out, "folder")
    if rig == "dna_rendering":
        recipe = dna_rendering_recipe(asset, animation, frames, scale, held_out, fps)
        recipe.image_format = image_format
        recipe.supersample = supersample  # checked by synthesize, as for any recipe
    else:
        recipe = ring_recipe(asset, animation, cameras, rings, frames, size, held_out, fps, image_format, supersample)
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
    from fourd.datasets.preview import log_info

    info = open_dataset(path, data_root).info()
    print(json.dumps(info)) if json_out else log_info(info)


def data_convert(src: Capture, out: Pos[Path], to: Literal["easyvolcap", "smc"] = "easyvolcap",
                 sequence: str = "fourd_0000", data_root: Path | None = None) -> None:
    """Convert a capture to another layout, copying encoded images and masks byte for byte.

    Args:
        src: capture folder, .smc file, or a dataset name.
        out: output folder (never the input).
        to: target layout.
        sequence: sequence name for SMC output (main/<sequence>.smc).
        data_root: where named datasets live.
    """
    from fourd.datasets.convert import convert

    convert(src, out, to, sequence, data_root)


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
    from fourd.io import check_output

    for opt, v in (("--cameras", cameras), ("--frames", frames)):
        if v < 1:
            raise FourdError(f"{v} is out of range [1, ...)", opt, f"give {opt} at least 1")
    check_output(out, "file")
    contact_sheet(open_dataset(path, data_root), out, cameras, frames)
    log(f"contact sheet → {out}")
    print(out)


def data_degrade(src: Capture, out: Pos[Path],
                 faults: str = "colour,distortion,calibration,masks,background,noise", seed: int = 0,
                 layout: Literal["easyvolcap", "smc"] = "easyvolcap", data_root: Path | None = None,
                 absolute_calibration: bool = False, backdrops: bool = False) -> None:
    """Write a copy of a capture with a real rig's faults on its training cameras (held-out ones stay clean).

    Faults: colour (per-camera gain and offset), distortion (radial k1/k2 on images and masks, written
    into D), calibration (pose off by 0.05–0.1° and a small shift, relative to the rig: the part that
    moves the whole rig alike is taken out), masks (erosion/dilation, holes,
    stray blobs), background (a textured plate composited with a soft edge), noise (sensor noise and
    JPEG). What was applied goes to OUT/faults.json.

    Args:
        src: capture folder, .smc file, or a dataset name.
        out: output folder.
        faults: comma-separated subset of colour, distortion, calibration, masks, background, noise,
            and, not in the default set, sync (a training camera 1–3 frames out of step with the rest)
            and drops (each training camera lacks a frame, drawn at random: a rig's dropped frames).
        seed: random seed (the same seed gives the same faults).
        layout: easyvolcap or smc.
        data_root: where named datasets live.
        absolute_calibration: keep the pose errors as drawn, including the part that is one motion of
            the whole training rig (a change of world frame no training image shows; the clean
            held-out cameras then count it against the reconstruction).
        backdrops: with the background fault, also write each plate as the camera's picture of the
            empty scene (bkgd/<cam>.png, as 4K4D's captures carry; training then takes the plate
            from it instead of measuring it).
    """
    from fourd.datasets.degrade import FaultSpec, degrade
    from fourd.io import check_output

    check_output(out, "folder", (src,))
    chosen = tuple(f.strip() for f in faults.split(",") if f.strip())
    print(degrade(src, out, chosen, seed, layout, FaultSpec(relative=not absolute_calibration), data_root=data_root,
                  backdrops=backdrops))
