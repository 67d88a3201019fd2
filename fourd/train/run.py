"""A trained run as something to use: :func:`load_run` reads ``RUN/config.json``, the carved
points and the latest checkpoint's weights and returns a :class:`Run` — the model, the capture and
everything needed to render it. Loading never writes, carves or trains: evaluation, baking and
offline rendering take a ``Run``; the trainer builds one for itself and adds the optimization.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fourd.config import TrainConfig, from_json, resolve_device
from fourd.console import log
from fourd.datasets import open_dataset, select_frames
from fourd.datasets.base import MultiViewVideo
from fourd.errors import FourdError
from fourd.model.appearance import SourceView
from fourd.model.model import FourDModel, RenderOutput
from fourd.render.rasterize import GLRasterizer, gl_method, rasterize_points
from fourd.structures.cameras import Cameras
from fourd.structures.fragments import Fragments, RasterSettings
from fourd.structures.points import PointSequence
from fourd.train.data import Target, ViewSampler, split_cameras


def corrected_over_background(colour, image: torch.Tensor, mask: torch.Tensor | None,
                               background: torch.Tensor) -> torch.Tensor:
    """A target ``image`` ([H, W, 3], the subject over ``background`` by ``mask``) through the
    affine colour correction ``colour``, the background kept as it is. A soft mask's pixel is
    ``c·F + (1 − c)·background``: only the subject's part ``c·F`` is corrected (affine ``A``:
    ``A(c·F) − (1 − c)·A(0) = c·A(F)``); a hard mask's pixels are the subject's or the background's."""
    if mask is None:
        return colour(image)
    m = mask[..., None]
    bg = background.to(image)
    if bool(((m > 0) & (m < 1)).any()):
        part = colour(image - (1 - m) * bg) - (1 - m) * colour(torch.zeros_like(bg))
        return torch.where(m > 0, part + (1 - m) * bg, bg)
    return colour(image) * m + bg * (1 - m)


@dataclass
class Run:
    """A model with its capture: what evaluation, bake and offline rendering need."""

    cfg: TrainConfig
    model: FourDModel
    video: MultiViewVideo
    points: PointSequence  # the carved points the model started from
    train_cams: list[str]
    eval_cams: list[str]
    sampler: ViewSampler
    settings: RasterSettings  # K, near and far for this capture
    background: torch.Tensor  # [3] on the model's device
    spacing: float
    path: Path
    step: int = 0  # the checkpoint's step (0 before training)
    gl: GLRasterizer | None = field(default=None, repr=False)
    # views loaded ahead by the trainer's prefetcher, used (and dropped) by target()/source()
    ready: dict = field(default_factory=dict, repr=False)

    @property
    def device(self) -> torch.device:
        return self.background.device

    @property
    def cameras(self) -> Cameras:
        return self.video.cameras

    def rasterize(self, points: torch.Tensor, radii: torch.Tensor, camera: Cameras,
                  settings: RasterSettings) -> Fragments:
        # which point covers which pixel is not differentiated (the compositor carries the gradients)
        return rasterize_points(points, radii, camera.detach(), settings, backend=self.cfg.rasterizer, gl=self.gl)

    def settings_for(self, K: int) -> RasterSettings:
        """This capture's near and far planes with another number of layers."""
        return RasterSettings(K=K, near=self.settings.near, far=self.settings.far,
                              background=self.settings.background)

    def sources(self, frame: int, camera: Cameras, exclude: str | None) -> list[SourceView]:
        """The source views blended for a render from ``camera`` (the nearest training cameras)."""
        names = self.sampler.source_names(camera, exclude, self.cfg.model.source_views, frame)
        return [self.source(frame, n) for n in names]

    def source(self, frame: int, name: str) -> SourceView:
        """Training camera ``name``'s view of ``frame`` as the model blends it: in the shared colour
        space and with the refined pose (:class:`~fourd.model.corrections.CameraCorrections`)."""
        s = self.ready.pop(("source", frame, name), None) or self.sampler.source(frame, name)
        corr = self.model.corrections
        if corr.has(name):
            s.image = corr.colour(s.image, name, channels_first=True)
            s.camera = corr.camera(s.camera, name)
        return s

    def target(self, frame: int, cam: str, crop: bool = True, scale: float | None = None) -> Target:
        """A training target: camera ``cam``'s image of ``frame`` over the background, corrected like
        the sources (held-out cameras are returned as recorded: they are the ground truth)."""
        t = self.ready.pop(("target", frame, cam), None) if crop and scale is None else None
        t = t or self.sampler.target(frame, cam, crop, scale)
        corr = self.model.corrections
        if corr.has(cam):
            t.image = corrected_over_background(lambda x: corr.colour(x, cam), t.image, t.mask, self.background)
            t.camera = corr.camera(t.camera, cam)
        return t

    def render(self, frame: int, camera: Cameras, exclude: str | None = None, baseline: bool = False,
               sources: list[SourceView] | None = None, net=None) -> RenderOutput:
        """Frame ``frame`` seen from ``camera``, blending the nearest training cameras (but
        ``exclude``). ``net`` is the module to call (the DDP wrapper in training)."""
        sources = self.sources(frame, camera, exclude) if sources is None else sources
        return (net or self.model)(self.model.slot(frame), camera, sources, self.settings, self.rasterize,
                                   self.background, baseline)

    def release(self) -> None:
        if self.gl is not None:
            self.gl.release()


def read_config(run: str | Path) -> TrainConfig:
    """The run's saved configuration (``RUN/config.json``), checked."""
    run = Path(run)
    path = run / "config.json"
    if not path.is_file():
        raise FourdError("not a training run (no config.json)", run, "pass the --out folder of fourd train")
    try:
        return from_json(TrainConfig, path.read_text(), str(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FourdError(f"config.json is not valid JSON ({e})", path,
                         "restore it from the checkpoint (it holds a copy) or retrain") from None


def points_path(cfg: TrainConfig, run: str | Path) -> Path:
    """Where a run's initial points are: ``--points-file``, else ``RUN/carve/points.safetensors``."""
    return Path(cfg.points_file) if cfg.points_file else Path(run) / "carve" / "points.safetensors"


def spacing_of(points: PointSequence) -> float:
    """The carved point spacing (saved by the carve), else a guess from the volume and the count."""
    if "spacing" in points.meta:
        return float(points.meta["spacing"])
    lo, hi = (torch.tensor(b) for b in points.meta["bounds"])
    return float((hi - lo).norm() / math.sqrt(points.counts[0]) * 0.5)


def raster_settings(video: MultiViewVideo, points: PointSequence, cfg: TrainConfig) -> RasterSettings:
    """Near and far planes that hold the carved volume from every camera of the capture."""
    c = video.cameras.centers
    lo, hi = (torch.tensor(b) for b in points.meta["bounds"])
    d = (c - (lo + hi) / 2).norm(dim=1)
    r = float((hi - lo).norm() / 2)
    return RasterSettings(K=cfg.K, near=max(1e-3, float(d.min()) - 2 * r), far=float(d.max()) + 2 * r,
                          background=tuple(cfg.background))


def handle_out_of_step(video: MultiViewVideo, cfg: TrainConfig, path: str | Path) -> None:
    """The cameras the carve found out of step with the rest (``carve.json`` next to the run's
    points, :mod:`fourd.carve.sync_check`) read shifted into step (``video.frame_shift``) or left out
    of training (``video.excluded``), as ``cfg.out_of_step`` says; a read, nothing written."""
    report = points_path(cfg, path).parent / "carve.json"
    if cfg.out_of_step == "keep" or not report.is_file():
        return
    try:
        steps = json.loads(report.read_text()).get("cameras_out_of_step", [])
    except (OSError, ValueError):
        return  # an unreadable report: MaskRepair.from_carve names it
    for o in steps:
        cam, k = o["camera"], int(o["shift"])
        if cam in video.excluded or cam in video.frame_shift:
            continue
        if cfg.out_of_step == "drop":
            video.excluded[cam] = f"out of step with the others by {k:+d} frames"
            log(f"[yellow]camera {cam} left out of training: out of step with the others (carve.json); "
                f"--out-of-step shift reads it shifted, keep as numbered[/]")
        else:
            video.frame_shift[cam] = k
            log(f"[yellow]camera {cam} read {k:+d} frames off its numbering (its frame f{k:+d} as the rig's f; "
                f"carve.json); --out-of-step drop leaves it out, keep reads it as numbered[/]")


def open_capture(cfg: TrainConfig, dataset: str | None = None, **kwargs) -> MultiViewVideo:
    """The run's capture (``dataset``, default the run's own) limited to the run's frames."""
    return select_frames(open_dataset(dataset or cfg.dataset, cfg.data_root, **kwargs), cfg.frames)


def match_frames(video: MultiViewVideo, points: PointSequence, where) -> None:
    """The run trains the frames its points hold: carved points of some of the capture's frames
    (``fourd carve --frames``) limit the capture to them, said once; points of a frame the capture
    lacks are refused."""
    held = [int(f) for f in points.frames]
    if held == video.frames:
        return
    missing = sorted(set(held) - set(video.frames))
    if missing:
        raise FourdError(f"the carved points hold frames the capture does not have ({missing[:5]})", where,
                         "carve this capture (`fourd carve`), or train the capture the points were carved from")
    log(f"the carved points hold {len(held)} of the capture's {len(video.frames)} frames "
        f"({held[0]}..{held[-1]}): training those")  # (once: called again, the frames match)
    video.frames = held


def build_run(cfg: TrainConfig, points: PointSequence, path: str | Path, video: MultiViewVideo | None = None) -> Run:
    """A freshly initialized run (seeded by ``cfg.seed``) from carved ``points``; writes nothing."""
    video = video if video is not None else open_capture(cfg)
    match_frames(video, points, points_path(cfg, path))
    handle_out_of_step(video, cfg, path)
    device = resolve_device(cfg.device)
    train_cams, eval_cams = split_cameras(video, cfg.eval_cams)
    spacing = spacing_of(points)
    lo, hi = (torch.tensor(b) for b in points.meta["bounds"])
    torch.manual_seed(cfg.seed)
    centre = (lo + hi).double() / 2
    distance = float((video.cameras.centers.double() - centre).norm(dim=1).median())
    model = FourDModel(cfg.model, points, lo, hi, spacing, train_cams, distance).to(device)
    video.mask_repair = None
    if cfg.repair_masks or cfg.fix_mask_outlines:  # the carve's findings undone (a read, nothing written)
        from fourd.carve.repair import MaskRepair

        video.mask_repair = MaskRepair.from_carve(points_path(cfg, path).parent / "carve.json", points, spacing,
                                                  holes=cfg.repair_masks, outlines=cfg.fix_mask_outlines)
    sampler = ViewSampler(video, train_cams, cfg, device)
    gl = GLRasterizer(gl_method(cfg.rasterizer)) if cfg.rasterizer in ("auto", "gl", "gl-kbuffer", "gl-peel") else None
    bg = torch.tensor(cfg.background, dtype=torch.float32, device=device)
    return Run(cfg, model, video, points, train_cams, eval_cams, sampler, raster_settings(video, points, cfg), bg,
               spacing, Path(path), 0, gl)


def load_model_state(model: FourDModel, state: dict, where) -> None:
    """Load weights; a run saved before per-camera corrections existed loads with none (identity)."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    if "grid.axes" in missing:  # saved before the grid had its own axes: the world's, as it was trained
        model.grid.axes.copy_(torch.eye(3))
    missing = [k for k in missing if not k.startswith("corrections.") and k != "grid.axes"]
    if missing or unexpected:
        raise FourdError(f"the checkpoint does not match the model (missing {missing[:4]}, unexpected "
                         f"{unexpected[:4]})", where, "load it with the fourd version and settings it was trained with")


def latest_checkpoint(run: str | Path) -> Path | None:
    d = Path(run) / "checkpoints"
    latest = d / "latest.txt"
    return d / latest.read_text().strip() if latest.is_file() else None


def capture_moved(cfg: TrainConfig, run: str | Path) -> FourdError:
    """The error for a run whose capture is not where its config says any more."""
    return FourdError(f"the run's capture is not at {cfg.dataset} any more", Path(run) / "config.json",
                      "give its new place: `--dataset PATH` (fourd eval, bake, render), or load_run(RUN, dataset=PATH)")


def load_run(run: str | Path, device: str | None = None, dataset: str | Path | None = None) -> Run:
    """Load a trained run for use: nothing is written, carved or trained. ``device`` overrides
    the device the run was trained on; ``dataset`` reads the images and masks from another copy
    of the capture (same cameras and frames — e.g. re-cut masks to evaluate against)."""
    from fourd.config import to_json
    from fourd.train.checkpoint import load_checkpoint

    run = Path(run)
    cfg = read_config(run)
    if device is not None:
        import dataclasses

        cfg = dataclasses.replace(cfg, device=device)
    ckpt = latest_checkpoint(run)
    if ckpt is None:
        raise FourdError("the run has no checkpoint yet", run / "checkpoints", "train it first")
    pts_path = points_path(cfg, run)
    if not pts_path.is_file():
        raise FourdError("the run's carved points are missing", pts_path,
                         "restore the file, or carve again with `fourd train --resume` on this run")
    points = PointSequence.load(pts_path)
    video = None
    from fourd.train.checkpoint import moved

    here = not moved(cfg.dataset)
    if dataset is not None:
        video = open_capture(cfg, dataset)
        own = open_capture(cfg) if here else None  # (a capture that moved: its new place is all there is)
        if own is not None and (video.camera_names != own.camera_names or video.frames != own.frames):
            raise FourdError("this capture's cameras or frames differ from the run's", dataset,
                             "give a copy of the run's own capture (same camera names and frames)")
    elif not here:
        raise capture_moved(cfg, run)
    r = build_run(cfg, points, run, video)
    state = load_checkpoint(ckpt, to_json(cfg))
    load_model_state(r.model, state["model"], ckpt)
    r.step = int(state["step"])
    return r


__all__ = ["Run", "load_run", "capture_moved", "build_run", "open_capture", "handle_out_of_step", "read_config", "points_path", "latest_checkpoint", "raster_settings"]
