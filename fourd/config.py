"""Dataclass configs: one docstring per field (shown by ``--help``), presets by name.

A run saves its resolved config as JSON beside its outputs; loading rejects unknown keys.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from fourd.errors import FourdError
from fourd.model.model import ModelConfig


@dataclass
class CarveConfig:
    points: int = 262_144
    """surface points per frame (4K4D uses 262,144; the demo preset far fewer)."""
    resolution: int = 256
    """voxels along the longest side of the working volume (the fine level)."""
    coarse_resolution: int = 32
    """voxels along the longest side at the coarsest level; each finer level halves the voxel edge
    (4K4D carves at ~15 mm then ~5 mm; here levels are relative to the subject, so any scale works)."""
    vote: float = 0.9
    """fraction of the cameras seeing a voxel that must put it inside their mask."""
    try_unanimous: bool = True
    """every frame is carved again with every camera required to agree (vote 1) — but the masks the
    tolerant hull contradicts (flagged in carve.json: a hole, a blob, a bad camera), which abstain
    in that frame (a hole's tunnel does not show in the other cameras' silhouettes) — and that
    tighter hull is kept if its silhouettes match the masks better (mean IoU). Measured: clean Fox
    and CesiumMan captures chose vote 1 in 30/30 and 27/30 frames, held-out +1.0 dB on both at
    equal steps; their masks-only faulty versions 29/30 and 28/30 frames (none before the flagged
    masks abstained), held-out +0.41 / +0.57 dB."""
    fix_outlines: bool = True
    """the frames with masks eroded or dilated against the same camera's other frames (carve.json
    masks_offset) are carved again with those masks grown or shrunk back, so one matte a pixel too
    tight does not shave the unanimous hull. A clean capture lists none (nothing carved twice)."""
    check_sync: bool = True
    """name the cameras whose masks match the carved hull best a frame or more away from their own
    numbering (a video out of step with the rest; carve.json cameras_out_of_step), with the shift
    that puts it back in step (training then reads it shifted: --out-of-step). Reads the masks of
    up to 42 frames again (3 s for the 30-frame 512² demo)."""
    min_views: int = 3
    """voxels seen by fewer cameras are dropped."""
    mask_tolerance: int = 0
    """pixels (at the carving mask size) a voxel may project outside a camera's mask before that camera
    votes it out, so a matte a pixel too tight does not cut the hull. Off by default: 1 px fattened the
    hull enough to cost 0.8 dB held-out on the faulty Fox (scripts/bench_faults.py); the vote already
    lets a few cameras disagree."""
    drop_outlier_masks: bool = False
    """a frame whose hull contradicts some camera's mask far more than the others' (a stray blob, a hole;
    carve.json lists them) is carved again without those masks' votes (opt-in, like --mask-tolerance)."""
    margin: float = 0.05
    """margin around the automatically found volume, as a fraction of its largest side."""
    bounds: tuple[float, float, float, float, float, float] | None = None
    """working volume (xmin ymin zmin xmax ymax zmax); found from cameras and masks when unset."""
    mask_max_side: int = 1024
    """masks are downscaled so their longer side is at most this many pixels."""
    bounds_frames: int = 8
    """frames sampled (evenly) to find the working volume."""
    outlier_removal: bool = True
    """drop statistical outliers (Open3D) before resampling to the exact count."""
    include_held_out: bool = False
    """also carve with the held-out evaluation cameras' masks."""
    device: str = "cpu"
    """torch device (cpu, cuda, cuda:1, ...)."""
    seed: int = 0
    """seed for surface sampling."""


@dataclass
class TrainConfig:
    dataset: str = "demo"
    """demo, dna_rendering, or a capture path."""
    out: str = "outputs/run"
    """run folder: config, checkpoints, TensorBoard logs, evaluation images."""
    data_root: str | None = None
    """where named datasets live."""
    eval_cams: str | None = None
    """comma-separated cameras held out from training (default: the capture's held-out set, or a spread of 4)."""
    frames: str | None = None
    """the capture's frames the run carves, trains, evaluates and bakes: "a:b" (b not included),
    "a:b:step" or "i,j,k" (default all) — e.g. a 200-frame segment of a long capture, or the frames
    the subject is in."""
    points_file: str | None = None
    """carved points (points.safetensors) to start from; carved into the run folder when unset."""
    steps: int = 2000
    """optimization steps (one (frame, camera) crop per step per process)."""
    minutes: float | None = None
    """train to a wall-time budget instead: the number of steps (and with it the learning-rate decay,
    evaluations and checkpoints) is sized from the measured step time so the run — carving, training,
    the final evaluation and checkpoint — ends within the budget; --steps is then only the first guess."""
    lr: float = 5e-3
    """learning rate of the networks and the feature grid (Adam)."""
    lr_points: float = 0.1
    """learning rate of the point positions, in units of the scene's point spacing per step. The carved
    hull is larger than the subject where cameras disagree; moving points is what shrinks it (demo,
    held-out PSNR after 300 steps: 29.6 dB at 1e-4 (points barely move), 29.9 at 0.01, 30.3 at 0.03,
    30.7 at 0.1)."""
    lr_decay: float = 0.1
    """factor the learning rates decay to (exponentially) by the last step."""
    K: int = 12
    """points composited per pixel in training and evaluation (4K4D: 15). Demo preset, 1500 steps,
    held-out PSNR / SSIM, K 8 → 12: Fox 34.11 → 34.94 dB / 0.9730 → 0.9750, CesiumMan 28.71 → 29.79 /
    0.9644 → 0.9685 (every rig fault: 33.47 → 33.96, 28.10 → 29.11), ~7 % more time per step: with 8
    layers the interior is not opaque and the splats grow past the outline to make up for it."""
    image_scale: float = 1.0
    """training images are the mask crop scaled by this."""
    source_size: int = 256
    """source views are resized to source_size × source_size for blending."""
    visibility_refresh: int = 1000
    """steps a source view's depth map (for the visibility test) is reused in training before it is
    redrawn (renders for evaluation and baking always draw it; checkpoints do not keep it, so a
    resumed run redraws it and departs slightly from an uninterrupted one unless this is 1)."""
    crop_margin: int = 8
    """pixels kept around the mask's bounding box."""
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """background colour behind the subject (ground truth is composited over it with the mask)."""
    w_mask: float = 0.01
    """weight of the mask loss (1 − soft IoU of rendered alpha and the mask). Larger weights make
    radii grow past the silhouette and blur the image (0.1 cost 3 dB held-out on the demo)."""
    mask_loss: str = "iou"
    """mask loss: iou (1 − soft IoU) or l2 (per-pixel squared alpha error)."""
    w_tv: float = 1e-3
    """weight of the feature planes' total variation."""
    w_time: float = 1e-3
    """weight of the time planes' second-difference smoothness."""
    w_ssim: float = 0.0
    """weight of 1 − SSIM between the render and the target crop (grain and soft edges cost little
    MSE but much structure). Demo preset, 1500 steps, held-out PSNR / SSIM, 0 → 0.01: Fox 34.94 →
    34.80 dB / 0.9750 → 0.9761, CesiumMan 29.79 → 29.68 / 0.9685 → 0.9704 (interior SSIM 0.852 →
    0.864 and 0.793 → 0.819: the flat regions' grain); 0.003: 34.96 / 0.9759, 29.67 / 0.9691;
    0.05: 34.08 / 0.9752, 29.21 / 0.9700. Off by default: it costs 11–20 % per step, and in the
    20-minute budget (bench_train.py) 0.01 gave 35.43 / 0.9791 and 30.06 / 0.9734 against 35.62 /
    0.9788 and 30.33 / 0.9739 without it — fewer steps eat the gain."""
    ssim_window: int = 0
    """side (px) of a random square of the crop the SSIM loss is computed on each step (0: the whole
    crop). The window moves every step, so the loss pulls on every pixel over the run at a fraction
    of the cost: with --w-ssim 0.01 and a 128-px window a step costs what one without the loss does,
    but in the 20-minute budget it still lost (demo 35.12 / 0.9780, CesiumMan 30.06 / 0.9733 against
    35.62 / 0.9788 and 30.33 / 0.9739 without the loss; bench_train.py --variants ssim-window)."""
    w_residual: float = 1.0
    """weight of the SH residual's mean square over the points drawn: the view-dependent residual
    then only carries what the blended source colours cannot (unpenalized, it varies from point to
    point and shows as dark mottling on flat surfaces). Demo preset, 600 steps, held-out SSIM / PSNR:
    Fox 0.9540 → 0.9574 / 31.19 → 31.14 dB, CesiumMan 0.9443 → 0.9461 / 26.84 → 26.71 dB (0: off).
    0.3 (demo preset, 1500 steps, held-out PSNR / SSIM): Fox 34.97 → 34.95 dB / 0.9754 → 0.9750,
    CesiumMan 29.73 → 29.74 / 0.9684 → 0.9680 — no better."""
    w_lpips: float = 0.0
    """weight of LPIPS (only when its VGG weights are on disk; 4K4D uses 1e-3)."""
    colour_correction: bool = False
    """fit a colour correction per training camera (3×3 + offset, mean held at the identity) to the
    model's renders every --refine-every steps; applied to the source views blended and to the
    targets. Written to RUN/cameras/colour.json. Opt-in: with pose refinement it cost 1.3 dB
    held-out on the clean Fox and recovered gains only to 3.5 % (4.2 % uncorrected) on the faulty one."""
    colour_ridge: float = 0.01
    """how strongly each colour correction is pulled toward the identity (ridge weight per pixel)."""
    pose_refinement: bool = False
    """refine each training camera's pose (rotation about its centre, centre shift; the shifts' mean
    held at zero) by aligning its images with the model's renders every --refine-every steps; the refined
    rig is written to RUN/cameras/{intri,extri}.yml. Opt-in: it takes a 1.2-px calibration error to
    0.9 px, but moves exact cameras by 0.3–0.5 px (the renders' own misregistration)."""
    refine_rig: bool = True
    """before carving, check the training cameras' calibration against each other: SIFT features on
    the subject tracked through three or more cameras on 24 frames, and the cameras' poses (a turn
    about the centre, a centre shift; mean motion zero, held-out cameras untouched) refined by
    bundle adjustment. Used — for carving and as the training's starting pose corrections — only
    when it explains the tracks clearly better (median reprojection error down by a fifth), so an
    exact rig is left alone. Report: RUN/cameras/bundle.json; refined rig: RUN/cameras/{intri,extri}.yml."""
    refine_colour: bool = True
    """before training, check the training cameras' colours against each other on the carved
    surface: each of a few thousand carved points read in every camera that sees it; per camera and
    channel a gain and offset that make the points' colours agree (robust least squares, the rig's
    mean response held fixed). Used — as the training's starting colour corrections, applied to the
    views blended and to the targets — only when it explains the colours clearly better (median
    disagreement down by a fifth and by a level of 255), so a rig whose cameras agree is left
    alone. Report: RUN/cameras/colour_check.json."""
    align_surface: bool = True
    """after carving, align each training camera with the carved surface as the other cameras see
    it: per camera the image shift (within 2.5 px, steps of 0.25) that makes its colours of a few
    thousand carved points agree best with the other cameras', and the camera turned by 3/4 of it
    (the hull sits a little off the true surface). Cameras are moved only when they are off by more
    than the hull's own error: all of them when their best shifts average a quarter of a carve
    voxel or more, else a camera off by half a voxel on its own; so an exact rig is left alone.
    Calibration-only captures, after the rig check: image error Fox 0.69 → 0.39 px, CesiumMan
    0.58 → 0.40 px; held-out 33.00 → 33.68 dB and 27.87 → 28.29 dB; every fault 32.91 → 33.02 dB
    and 27.51 → 27.72 dB. Not made when the silhouette alignment moved the cameras (it then only
    adds its own bias). Report: RUN/cameras/surface_align.json."""
    align_silhouettes: bool = True
    """after carving, fit per training camera the image shift that puts the carved hull's silhouette
    where its masks are (over the mask outlines of 10 frames, against the hull's outward normal),
    and turn the camera by it; the surface alignment is then not made.
    Catches what the rig check and the surface alignment cannot: every camera of the ring turned
    the same way about its own centre (neighbouring cameras then agree with each other). Cameras
    are moved only when the fitted shifts average 0.25 px or more (exact rigs: 0.10–0.13 px; every
    fault: 0.37–0.41 px, and the image error after the rig check 0.55 → 0.28 px).
    Report: RUN/cameras/silhouette_align.json."""
    lr_pose: float = 0.0
    """learning rate (radians per step, Adam; try 8e-6) of a turn of each training camera about its
    centre, learned with the model from the photometric and mask losses after --pose-after steps,
    on top of the checks' corrections, its mean over the cameras held at zero (every camera tilting
    alike looks like the subject moving, which the held-out cameras count as an error); see
    --learn-pose for when. Opt-in: every fault, Fox / CesiumMan, seed 0: image error 0.306 → 0.267 px
    and 0.278 → 0.270 px, held-out 34.04 → 34.19 dB and 29.08 → 29.08 dB; seed 1: 0.392 → 0.338 px
    and 0.252 → 0.276 px, 33.53 → 33.63 dB and 29.17 → 29.11 dB — with every fault it helps the Fox
    only (turns alone: rotation error 0.048 → 0.039° on both subjects). 0: off."""
    learn_pose: str = "auto"
    """when to learn the turns (--lr-pose): auto — only when a check before training (the rig check,
    the silhouette or the surface alignment) found the rig off and moved it, so an exact rig trains
    exactly as before; on; off."""
    pose_momentum: float = 0.99
    """Adam's first-moment decay for the learned turns: a camera's gradient is a noisy estimate from
    one view at a time, averaged over about a hundred steps."""
    pose_after: int = 300
    """steps before --lr-pose starts to turn the training cameras (the model first fits the scene)."""
    refine_after: int = 300
    """steps before the cameras' poses and colours are first refined (the model first learns a rough scene)."""
    refine_every: int = 300
    """steps between camera refinements (each renders every training camera on 2 frames)."""
    source_masks: bool = True
    """a source view lends its colour to a point only where its mask shows the subject (at least one
    source pixel in from the edge), so background colour that a matte's soft edge mixes into the
    silhouette is never blended into renders."""
    fix_mask_outlines: bool = True
    """masks the carve found eroded or dilated against the same camera's other frames (carve.json
    masks_offset: the outline's mean distance from the hull's silhouette off that camera's usual by
    half a pixel or more) are grown or shrunk back before training uses them (targets, sources,
    mask loss), and the carve carves their frames again with them put back (carve.fix_outlines).
    The outline is moved by the pixels listed on the average (the disk whose area change per
    outline pixel matches; a radius-1 disk — a cross — moved diagonal stretches by 0.7 px and left
    a quarter of each damaged rim, which over a textured background trained a fringe of its
    colour: every fault, with --repair-masks, 33.11 → 33.43 dB Fox, 27.80 → 27.83 dB CesiumMan).
    A clean capture lists none."""
    out_of_step: str = "shift"
    """what training does with a training camera the carve finds out of step with the others (its
    masks match the hull best a frame or more away from its numbering: a video started late or
    renumbered; carve.json cameras_out_of_step): shift — read its frame f from its file f + shift
    (the sequence's ends repeat the nearest frame); drop — leave it out; keep — use it as numbered.
    An exact rig lists none. Held-out PSNR (demo preset, 1500 steps): CesiumMan with one camera 2
    frames late — keep 29.66, drop 29.44, shift 29.79 dB (clean 29.79); Fox with one camera 1 late
    and one 3 early — keep 33.69, drop 33.49, shift 34.40 (clean 34.94)."""
    repair_masks: bool = True
    """the masks the carve flags (carve.json masks_flagged: a hole or stray blob the other cameras
    contradict) are repaired from the hull before training uses them — foreground more than 2 px
    outside the hull's silhouette dropped, enclosed holes more than 2 px inside it filled; masks not
    flagged are used as they are (a clean capture flags none: nothing changes). Over a textured
    background a blob teaches the background's colour and a hole black: every fault, held-out
    33.02 → 33.11 dB (Fox), 27.72 → 27.80 dB (CesiumMan); masks-only (black background) ±0.01 dB."""
    unmix_plate: bool = True
    """where a backdrop other than the training background shows behind the subject, measure it per
    training camera (each pixel's median over the frames in which the subject is elsewhere, filled
    in a few pixels under where it never leaves) and the matte's softness (the subject's share of
    the mask's outermost pixels, as the width of a gaussian edge), and take the backdrop's colour
    back out of the training targets' edge pixels. Every fault: the outermost mask pixel's error
    against the clean image 0.040 → 0.010 (Fox), 0.041 → 0.015 (CesiumMan); held-out PSNR within
    ±0.1 dB (Fox 33.47 → 33.38, CesiumMan 28.02 → 28.02; fault seed 1: 33.02 → 33.05, 28.05 →
    28.08), SSIM higher in all four (the ring inside the silhouette improves, the ring outside it
    worsens about as much). A capture whose backdrop is the background (clean, synthetic) or whose matte is
    hard is left exactly as it was. Report: RUN/cameras/plate.json."""
    soft_masks: bool = True
    """masks stored soft (0–255 coverage: a matting tool's alpha, an anti-aliased render's) are
    trained as coverage: each edge pixel's target is the subject's share of it over the training
    background (the backdrop — the measured plate, where it is not the training background — taken
    out pixel by pixel) and the silhouette's target is the coverage itself; off, they are cut at one
    half like a hard mask. Hard masks are not affected. Measured in the README (anti-aliased captures)."""
    plate_unknown: str = "fill"
    """edge pixels whose backdrop the frames never show (a third of the outline on the test
    captures): ``fill`` — the plate is inpainted up to 8 px in from where it was seen and they are
    un-mixed with it; ``skip`` — the colour loss leaves them out. Every fault (stop 50), skip →
    fill: Fox 34.04 → 34.39 dB, CesiumMan 29.08 → 29.06 — as good as the true plate on both
    (given backdrops: 34.38, 29.10); left out, those rim pixels' alpha went unsupervised and the
    held-out outline's first inside pixel came out darker (alpha 0.73 against 0.77 with the plate
    known, 0.82 clean). A capture with no plate found (clean, synthetic) is not affected."""
    edge_band: int = 0
    """pixels on each side of the target mask's edge that the colour and mask losses ignore (a matte's
    edge is a pixel or two off and mixes background colour in). Off by default: 1 px left the rendered
    silhouette unsupervised and cost 0.4 dB held-out on the faulty Fox."""
    eval_every: int = 500
    """steps between evaluations on held-out cameras (0: only at the end)."""
    eval_frames: int = 4
    """frames evaluated during training (all at the end and by fourd eval)."""
    memory_limit: float | None = None
    """GiB the run may hold; a run whose estimated peak (points × frames, feature grid, image cache,
    one step's fragments) exceeds it is refused before any work, naming the setting to change.
    Default: the memory available when training starts."""
    prefetch: bool = True
    """load the next step's target and source views in a background thread while a step computes."""
    ckpt_every: int = 250
    """steps between checkpoints."""
    log_every: int = 25
    """steps between log lines / TensorBoard scalars."""
    rasterizer: str = "auto"
    """auto (GL when available, else torch), gl (one-pass K-buffer on GL 4.3+, else K-pass peeling),
    gl-kbuffer, gl-peel (the K-pass reference), torch or pytorch3d."""
    device: str = "cpu"
    """torch device (cpu, cuda, ...)."""
    seed: int = 0
    """seed for sampling and initialization."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """the 4D model."""
    carve: CarveConfig = field(default_factory=CarveConfig)
    """carving settings used when no points file is given."""


def apply_overrides(cfg, overrides: dict[str, Any], where: str = "config"):
    """Return ``cfg`` with fields replaced (nested configs take nested dicts); unknown keys are errors."""
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise FourdError(f"unknown {type(cfg).__name__} keys {unknown}", where,
                         f"valid keys: {', '.join(sorted(fields))}")
    changes = {}
    for k, v in overrides.items():
        cur = getattr(cfg, k)
        if dataclasses.is_dataclass(cur) and isinstance(v, dict):
            changes[k] = apply_overrides(cur, v, f"{where}.{k}")
        else:
            changes[k] = tuple(v) if isinstance(v, list) and isinstance(cur, tuple) else v
    return dataclasses.replace(cfg, **changes)


def _train_demo() -> "TrainConfig":
    # exact synthetic masks: one camera in twenty may disagree (vote 0.95) instead of two
    return apply_overrides(TrainConfig(), {
        "carve": {"points": 32_768, "resolution": 256, "vote": 0.95},
        "steps": 1500, "K": 12, "eval_every": 500, "source_size": 192,
        "model": {"grid": {"levels": 2, "spatial_min": 32, "spatial_max": 128, "time_max": 16}},
    }, "preset demo")


def _train_dna_rendering() -> "TrainConfig":
    return apply_overrides(TrainConfig(), {
        "carve": {"points": 262_144, "resolution": 256},
        "steps": 200_000, "K": 15, "image_scale": 0.5, "source_size": 512, "eval_every": 5000, "ckpt_every": 2000,
        "w_lpips": 1e-3,
    }, "preset dna_rendering")


def _fit_mesh(name: str):
    from fourd.gen.fit_mesh import FitMeshConfig

    over = {
        # default: Kaolin's losses; vertices moved in a smooth ("large steps") parameterization with 20× its
        # vertex step, coarse-to-fine from icosphere level 2 (fits thin parts — legs, ears, tails — that a
        # level-4 sphere at Kaolin's step cannot reach in 2000 steps), 192-px crops
        "fourd": dict(lr_verts=1e-2, lr_shift=5e-3, coarse_levels=2, smooth_lambda=1.0, size=192),
        # Kaolin DIB-R tutorial: image L1 ×0.1, mask IoU ×1, Laplacian ×0.03 (+ flat), Adam 5e-4 / 5e-2, UV texture
        "kaolin": {},
        # pytorch3d "fit a textured mesh": 20 views at 128 px, ico level 4, 2000 iterations, vertex colours,
        # RGB and silhouette squared error ×1, edge ×1, normal consistency ×0.01, Laplacian ×1, SGD momentum
        # 0.9. Its step of 1.0 diverges with this rasterizer's gradient scale (measured: IoU 0.01): 0.1 here,
        # no shift
        "pytorch3d": dict(views=20, size=128, level=4, iterations=2000, views_per_iter=2, appearance="vertex",
                          w_image=1.0, image_loss="l2", w_mask=1.0, mask_loss="l2", w_laplacian=1.0, w_flat=0.0,
                          w_edge=1.0, w_normal=0.01, optimizer="sgd", lr_verts=0.1, lr_shift=0.0, lr_appearance=1.0,
                          lr_decay_every=0),
    }[name]
    return apply_overrides(FitMeshConfig(preset=name), over, f"fit-mesh preset {name}")


# The one preset registry: per command, named config instances (built on demand, so a command
# imports only its own config's module).
PRESETS: dict[str, dict[str, Callable[[], Any]]] = {
    "train": {"demo": _train_demo, "dna_rendering": _train_dna_rendering},
    "carve": {"demo": lambda: _train_demo().carve, "dna_rendering": lambda: _train_dna_rendering().carve},
    "fit-mesh": {name: (lambda n=name: _fit_mesh(n)) for name in ("fourd", "kaolin", "pytorch3d")},
}


def preset(name: str, command: str = "train"):
    """The config instance of preset ``name`` of ``command`` (train, carve, fit-mesh)."""
    table = PRESETS[command]
    if name not in table:
        raise FourdError(f"unknown {command} preset '{name}'", fix=f"use one of {', '.join(table)}")
    return table[name]()


def to_json(cfg) -> str:
    return json.dumps(dataclasses.asdict(cfg), indent=2)


# settings whose default changed: a saved config without them was made with the old value
_OLD_DEFAULTS = {TrainConfig: {"model": {"blend_view_input": True, "density_max": 1.0, "hold_turn_mean": True},
                                "refine_rig": False, "refine_colour": False, "repair_masks": False,
                                "fix_mask_outlines": False, "carve": {"fix_outlines": False},
                                "align_surface": False, "align_silhouettes": False, "unmix_plate": False}}


def _fill_old_defaults(d: dict, old: dict) -> dict:
    out = dict(d)
    for k, v in old.items():
        if isinstance(v, dict):
            if isinstance(out.get(k), dict):
                out[k] = _fill_old_defaults(out[k], v)
        elif k not in out:
            out[k] = v
    return out


def from_json(cls, text: str, where: str = "config"):
    """Rebuild a config saved by :func:`to_json`; unknown keys (another fourd's config) are errors.
    Settings added since with a changed default take the value older fourd used."""
    return apply_overrides(cls(), _fill_old_defaults(json.loads(text), _OLD_DEFAULTS.get(cls, {})), where)





def parse_size(text: str, option: str = "--size", limit: int = 16384) -> tuple[int, int]:
    """'1280x720' → (1280, 720), both sides in 1..limit."""
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise FourdError(f"{option} must look like 1280x720, got '{text}'", option, "give WIDTHxHEIGHT") from None
    if not (0 < w <= limit and 0 < h <= limit):
        raise FourdError(f"{option} {w}x{h} is out of range", option, f"use sides from 1 to {limit} pixels")
    return w, h


def resolve_device(name: str, option: str = "--device"):
    """``name`` as a torch device, refused in one line when it is malformed or not present here."""
    import torch

    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise FourdError(f"'{name}' is not a torch device", option, "use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise FourdError(f"device '{name}' asked for, but CUDA is not available here", option,
                         "use --device cpu, or install a CUDA build of torch on a machine with an NVIDIA GPU")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise FourdError(f"device '{name}' asked for, but this machine has {torch.cuda.device_count()} GPU(s)",
                         option, "use cuda:0 .. cuda:N-1")
    return dev


# Ranges of numeric settings, by config class name and field: (low, high, low inclusive, high
# inclusive); None leaves a side open. Checked by :func:`check_ranges` before any work.
RANGES: dict[str, dict[str, tuple]] = {
    "CarveConfig": {"points": (1, 50_000_000, True, True), "resolution": (8, 4096, True, True),
                    "coarse_resolution": (2, 4096, True, True), "vote": (0.0, 1.0, False, True),
                    "min_views": (1, None, True, True), "margin": (0.0, 10.0, True, True),
                    "mask_max_side": (16, None, True, True), "bounds_frames": (1, None, True, True),
                    "mask_tolerance": (0, 64, True, True)},
    "TrainConfig": {"steps": (0, None, True, True), "minutes": (0.0, None, False, True), "lr": (0.0, 10.0, False, True), "lr_points": (0.0, None, True, True),
                    "lr_decay": (0.0, 1.0, False, True), "K": (1, 64, True, True), "image_scale": (0.0, 4.0, False, True),
                    "source_size": (8, 4096, True, True), "visibility_refresh": (1, None, True, True),
                    "crop_margin": (0, None, True, True), "w_mask": (0.0, None, True, True),
                    "w_tv": (0.0, None, True, True), "w_time": (0.0, None, True, True), "w_lpips": (0.0, None, True, True), "w_ssim": (0.0, None, True, True), "w_residual": (0.0, None, True, True),
                    "eval_every": (0, None, True, True), "eval_frames": (1, None, True, True),
                    "ckpt_every": (1, None, True, True), "log_every": (1, None, True, True),
                    "memory_limit": (0.0, None, False, True), "refine_after": (0, None, True, True), "lr_pose": (0.0, 1.0, True, True), "pose_after": (0, None, True, True), "pose_momentum": (0.0, 0.9999, True, True),
                    "refine_every": (1, None, True, True), "colour_ridge": (0.0, None, True, True),
                    "edge_band": (0, 64, True, True)},
    "ModelConfig": {"geometry_hidden": (1, None, True, True), "radius_min": (0.0, None, False, True),
                    "radius_max": (0.0, None, False, True), "radius_init": (0.0, None, False, True),
                    "source_views": (1, 64, True, True), "cnn_channels": (1, None, True, True),
                    "cnn_downsample": (1, 64, True, True), "density_init": (0.0, None, False, True),
                    "density_max": (0.0, 64.0, False, True),
                    "sh_degree": (0, 3, True, True), "sh_scale": (0.0, None, True, True)},
    "Grid4DConfig": {"levels": (1, 16, True, True), "features": (1, 256, True, True),
                     "spatial_min": (2, 8192, True, True), "spatial_max": (2, 8192, True, True),
                     "time_max": (1, 100_000, True, True)},
}
CHOICES: dict[str, dict[str, tuple]] = {
    "TrainConfig": {"rasterizer": ("auto", "gl", "gl-kbuffer", "gl-peel", "torch", "pytorch3d"), "mask_loss": ("iou", "l2"), "plate_unknown": ("fill", "skip"), "learn_pose": ("auto", "on", "off"),
                   "out_of_step": ("shift", "drop", "keep")},
    "ModelConfig": {"appearance": ("hybrid", "blend", "sh")},
    "Grid4DConfig": {"combine": ("sum", "product"), "axes": ("principal", "world")},
}


def check_ranges(cfg, prefix: str = "--") -> None:
    """Refuse, in one line naming the option, a setting of ``cfg`` (and its nested configs) out of
    its range (:data:`RANGES`) or choices (:data:`CHOICES`), or colours outside [0, 1]."""
    import math

    name = type(cfg).__name__
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        opt = f"{prefix}{f.name.replace('_', '-')}"
        if dataclasses.is_dataclass(v):
            check_ranges(v, f"{opt}.")
            continue
        rng = RANGES.get(name, {}).get(f.name)
        if rng is not None and v is not None:
            lo, hi, lo_in, hi_in = rng
            bad = isinstance(v, float) and not math.isfinite(v)
            bad |= lo is not None and (v < lo if lo_in else v <= lo)
            bad |= hi is not None and (v > hi if hi_in else v >= hi)
            if bad:
                span = f"{'[' if lo_in else '('}{lo if lo is not None else '-inf'}, " \
                       f"{hi if hi is not None else 'inf'}{']' if hi_in else ')'}"
                raise FourdError(f"{v} is out of range {span}", opt, f"give {opt} a value in {span}")
        choices = CHOICES.get(name, {}).get(f.name)
        if choices is not None and v not in choices:
            raise FourdError(f"'{v}' is not one of {', '.join(choices)}", opt, f"use one of {', '.join(choices)}")
        if f.name == "background" and v is not None and not all(0 <= c <= 1 for c in v):
            raise FourdError(f"{tuple(v)} is not a colour in [0, 1]", opt, "give r g b between 0 and 1")
    if name == "ModelConfig" and not cfg.radius_min < cfg.radius_init < cfg.radius_max:
        raise FourdError("the radii must satisfy radius-min < radius-init < radius-max", f"{prefix}radius-init",
                         "change --model.radius-min / -init / -max")
    if name == "ModelConfig" and not cfg.density_init < cfg.density_max:
        raise FourdError("the densities must satisfy density-init < density-max", f"{prefix}density-init",
                         "change --model.density-init or --model.density-max")
    if name == "Grid4DConfig" and cfg.spatial_min > cfg.spatial_max:
        raise FourdError("spatial-min is larger than spatial-max", f"{prefix}spatial-min", "make min ≤ max")
    if name == "CarveConfig" and cfg.bounds is not None:
        b = cfg.bounds
        if len(b) != 6 or not all(math.isfinite(x) for x in b) or not all(b[i] < b[i + 3] for i in range(3)):
            raise FourdError(f"{tuple(b)} is not a box (xmin ymin zmin xmax ymax zmax, min < max)",
                             f"{prefix}bounds", "give six finite numbers, each min below its max")
