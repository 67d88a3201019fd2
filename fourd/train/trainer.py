"""``fourd train``: carve (if needed) → fit the 4D model through the point renderer.

One (frame, camera) crop per step and process; Adam with exponential decay; progress bar,
TensorBoard, JSON-lines log; periodic held-out evaluation; atomic checkpoints and exact resume.
With ``torchrun`` (WORLD_SIZE > 1) the model is wrapped in DistributedDataParallel (gloo on
CPU, NCCL on GPU); rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from fourd.config import TrainConfig, check_ranges, resolve_device, to_json
from fourd.console import log, progress
from fourd.errors import FourdError
from fourd.io import atomic_write_text
from fourd.structures.points import PointSequence
from fourd.train.checkpoint import load_checkpoint, save_checkpoint
from fourd.train.data import split_cameras
from fourd.train.losses import dssim_loss, edge_weights, lpips_distance, mask_loss, psnr, random_square
from fourd.train.run import (build_run, handle_out_of_step, load_model_state, match_frames, open_capture,
                             points_path)


def _dist_info() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


# what a run derives from its capture and settings; --restart removes them (the carve too: it was
# made with the old run's settings, and a restart may change them)
RUN_OUTPUTS = ("checkpoints", "carve", "eval", "cameras", "tb", "log.jsonl")


def clear_run(out: Path, keep_points: bool = False) -> None:
    """Remove what an earlier training in ``out`` wrote (:data:`RUN_OUTPUTS`); other files stay.
    Each is renamed out of the way first, so an interrupted clear leaves no half-removed folder."""
    import shutil

    removed = []
    for name in RUN_OUTPUTS:
        p = out / name
        if (name == "carve" and keep_points) or not (p.exists() or p.is_symlink()):
            continue
        gone = p.with_name(f".{name}.removing")
        if gone.is_dir():
            shutil.rmtree(gone)
        os.replace(p, gone)
        shutil.rmtree(gone) if gone.is_dir() and not gone.is_symlink() else gone.unlink()
        removed.append(name)
    if removed:
        log(f"--restart: removed {', '.join(removed)} of the earlier run in {out}")


class Trainer:
    """The optimization of a run: builds the run (carving first when it has no points), then
    steps, checkpoints, evaluates and resumes. Everything that only *uses* a trained model takes
    a :class:`~fourd.train.run.Run` from :func:`~fourd.train.run.load_run` instead."""

    def __init__(self, cfg: TrainConfig, restart: bool = False):
        self._t_start = time.perf_counter()  # a --minutes budget counts from here (carving included)
        self._spent_before = 0.0             # seconds of earlier sessions of this run (resume)
        torch.set_flush_denormal(True)
        check_ranges(cfg)  # before any work
        self.cfg = cfg
        self.rank, self.world = _dist_info()
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if cfg.device.startswith("cuda") else "gloo")
        self.device = resolve_device(cfg.device)
        self.out = Path(cfg.out)
        video = open_capture(cfg, cache_bytes=2 << 30)  # (a bad --frames: refused before any work)
        split_cameras(video, cfg.eval_cams)  # bad --eval-cams: refuse before writing or carving
        from fourd.train.memory import check_fits

        self.memory_estimate = check_fits(cfg, video, 2 << 30)  # a run that cannot fit: refused now, not hours later
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            if restart:  # from the start, with any settings: nothing of the old run is reused
                clear_run(self.out, keep_points=bool(cfg.points_file))
            self._check_checkpoint()  # before config.json is written: a refused run leaves it as it was
            atomic_write_text(self.out / "config.json", to_json(cfg))
        self.rig = self._check_rig(video)  # before carving: the carve uses the refined rig
        points = self._initial_points(video)
        match_frames(video, points, points_path(cfg, self.out))  # points of some frames: those frames
        handle_out_of_step(video, cfg, self.out)  # before the checks below pick the training cameras
        self.silhouettes = self._align_silhouettes(video, points)  # the hull's outline against the masks
        # from the carved surface, through the cameras as the silhouettes turned them (every fault, max gain
        # error Fox 3.78 → 3.53 %, CesiumMan 3.45 → 2.58 %: a camera still off samples its neighbour's colour)
        self.colours = self._check_colour(video, points)
        self.aligned = self._align_surface(video, points)  # also from the carved surface (what is left)
        self.run = build_run(cfg, points, self.out, video)
        self.model = self.run.model
        self.plate = self._measure_plate(video)  # after build_run: through the repaired masks
        if self.rig is not None and self.rig.applied:
            self._apply_rig(self.rig)
        if self.colours is not None and self.colours.applied:
            self._apply_colours(self.colours)
        for r in (self.silhouettes, self.aligned):
            if r is not None and r.applied:
                self._apply_alignment(r, video)
        if self.rank == 0 and self._checked():
            write_corrections(self.run, self.out / "cameras")  # the rig the checks found, for other tools
        self.video, self.train_cams, self.eval_cams = video, self.run.train_cams, self.run.eval_cams
        self.sampler, self.settings, self.bg = self.run.sampler, self.run.settings, self.run.background
        self.net = self.model
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, find_unused_parameters=True)
        corr = self.model.corrections
        pos = [self.model.positions]
        rest = [p for n, p in self.model.named_parameters() if n != "positions" and not n.startswith("corrections.")]
        for p in corr.parameters():  # fitted against the model's renders (fourd.train.align); the turns, below
            p.requires_grad_(False)
        groups = [{"params": pos, "lr": cfg.lr_points * self.run.spacing}, {"params": rest, "lr": cfg.lr}]
        if cfg.lr_pose > 0 and (cfg.learn_pose == "on" or (cfg.learn_pose == "auto" and self._poses_checked())):
            # the cameras' turns learned with the model after a warm-up; momentum over ~100 steps,
            # as each camera's gradient is a noisy one-view-at-a-time estimate
            corr.turn.requires_grad_(True)
            groups.append({"params": [corr.turn], "lr": cfg.lr_pose, "betas": (cfg.pose_momentum, 0.999)})
        self.optimizer = torch.optim.Adam(groups, eps=1e-15)
        # exponential decay to lr_decay at the planned last step; the plan moves with a time budget
        self.planned = cfg.steps

        def decay(s):
            return cfg.lr_decay ** min(s / max(self.planned, 1), 1.0)

        def pose(s):
            return decay(s) if s >= cfg.pose_after else 0.0

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, [decay, decay, pose][:len(groups)])
        self.gen = torch.Generator().manual_seed(cfg.seed * 1000 + self.rank)
        self.writer = None
        self._zfront: dict = {}
        self._next: tuple[int, str] | None = None  # the next step's (frame, camera), drawn one step ahead
        self.data_s = 0.0  # seconds the last step spent getting its views (waiting for the prefetcher)
        self.prefetcher = None
        if cfg.prefetch:
            from fourd.train.data import Prefetcher

            self.prefetcher = Prefetcher(self.sampler, cfg.model.source_views)

    @property
    def step(self) -> int:
        return self.run.step

    @step.setter
    def step(self, value: int) -> None:
        self.run.step = value

    # ------------------------------------------------------------------ set-up
    def _check_rig(self, video):
        """The bundle adjustment of the training cameras (:mod:`fourd.train.bundle`), or None when
        off or impossible; read from ``RUN/cameras/bundle.json`` when an earlier session made it."""
        from fourd.train import bundle

        cfg, d = self.cfg, self.out / "cameras"
        if not cfg.refine_rig:
            return None
        rig = self._read_check(d / "bundle.json", bundle.BundleResult)
        if rig is None:
            train, _ = split_cameras(video, cfg.eval_cams)
            frames = [video.frames[int(i)] for i in np.unique(np.linspace(0, len(video.frames) - 1, 24).round())]
            log("checking the training cameras' calibration against each other (feature tracks)")
            rig = self._decide(bundle.refine_rig(video, train, frames, seed=cfg.seed), "rig", bundle.log_result,
                               d / "bundle.json")
        return rig

    def _check_colour(self, video, points: PointSequence):
        """The training cameras' colour responses (:mod:`fourd.train.colour_check`) from the carved
        surface seen through the (refined) rig, or None when off or impossible; read from
        ``RUN/cameras/colour_check.json`` when an earlier session made it."""
        from fourd.train import colour_check

        if not self.cfg.refine_colour:
            return None
        return self._made_once("colour_check", colour_check.ColourResult, "colour", colour_check.log_result,
                               "checking the training cameras' colour against each other (the carved surface)",
                               lambda: colour_check.fit_colours(self._on_surface(video, points, 8, colour_check.surface_tracks),
                                                                iterations=colour_check.ITERATIONS))

    def _made_once(self, name: str, kind, what: str, report, start: str, measure):
        """A check's result: read from ``RUN/cameras/<name>.json`` when an earlier session made it,
        else ``measure()`` (after logging ``start``), decided, logged and saved."""
        path = self.out / "cameras" / f"{name}.json"
        result = self._read_check(path, kind)
        if result is None:
            log(start)
            result = self._decide(measure(), what, report, path)
        return result

    def _align_silhouettes(self, video, points: PointSequence):
        """Each training camera's image shift that puts the carved hull's silhouette where its masks
        are (:mod:`fourd.train.silhouette_align`), through the (refined) rig, or None when off or
        impossible; read from ``RUN/cameras/silhouette_align.json`` when an earlier session made it.
        (Carving again through the moved cameras and measuring again was tried: every fault, Fox
        33.47 → 33.18 dB, CesiumMan 28.02 → 28.04 — the second hull follows the moved cameras and
        the rig drifts with it.)"""
        from fourd.train import silhouette_align as sa

        if not self.cfg.align_silhouettes:
            return None
        return self._made_once("silhouette_align", sa.SilhouetteResult, "silhouette alignment", sa.log_result,
                               "aligning the training cameras with the carved hull's silhouette",
                               lambda: self._on_surface(video, points, 10, sa.align_to_silhouettes))

    def _align_surface(self, video, points: PointSequence):
        """Each training camera's image shift that best aligns it with the carved surface as the
        other cameras see it (:mod:`fourd.train.surface_align`), through the (refined) rig, or None
        when off or impossible; read from ``RUN/cameras/surface_align.json`` when an earlier session
        made it."""
        from fourd.train import surface_align

        if not self.cfg.align_surface:
            return None
        if self.silhouettes is not None and self.silhouettes.applied:
            # measured after the silhouette alignment it only adds its own bias: on the one
            # every-fault capture where it then moved cameras (Fox, fault seed 1) the image error
            # went 0.44 → 0.49 px
            log("surface alignment not needed: the silhouette alignment moved the cameras")
            return None
        colours = self.colours if self.colours is not None and self.colours.applied else None
        return self._made_once("surface_align", surface_align.AlignResult, "surface alignment", surface_align.log_result,
                               "aligning the training cameras with the carved surface",
                               lambda: self._on_surface(video, points, 10,
                                                        partial(surface_align.align_to_surface, colours=colours)))

    def _on_surface(self, video, points: PointSequence, n_frames: int, measure):
        """``measure(video, training cameras, frames, seed=)`` on ``n_frames`` frames of the carve
        spread evenly, through the rig check's refined rig when it was applied."""
        train, _ = split_cameras(video, self.cfg.eval_cams)
        frames = [points.frames[int(i)] for i in np.unique(np.linspace(0, len(points.frames) - 1, n_frames).round())]
        given = video.cameras
        if self._rig_moved():
            video.cameras = self._refined_rig(video)
        try:
            return measure(video, train, points, frames, seed=self.cfg.seed)
        finally:
            video.cameras = given

    def _measure_plate(self, video):
        """The backdrop behind each training camera and its matte's softness
        (:mod:`fourd.train.plate`), handed to the sampler so the training targets' edge rings are
        un-mixed; None when off. Measured every session (a few seconds; the plates are images,
        not kept on disk); RUN/cameras/plate.json reports it."""
        from fourd.train import plate

        if not self.cfg.unmix_plate:
            return None
        cams = self.run.train_cams
        with progress("measuring the background plate", len(cams)) as advance:
            result = plate.measure(video, cams, self.cfg.background, progress=advance,
                                   fill=self.cfg.plate_unknown == "fill", soft_masks=self.cfg.soft_masks)
        plate.log_result(result)
        self._write_check(self.out / "cameras" / "plate.json", result)
        self.run.sampler.plates = result.plates
        return result

    def _apply_alignment(self, r, video) -> None:
        """Turn the model's training cameras by the surface alignment's shifts (on top of the rig check's)."""
        corr = self.model.corrections
        w = r.turns(video.cameras)
        with torch.no_grad():
            for a, n in enumerate(r.names):
                if corr.has(n):
                    i = corr.names.index(n)
                    corr.rotation[i] += torch.from_numpy(w[a]).to(corr.rotation)

    def _checked(self) -> bool:
        """Whether a check before training changed the training cameras (poses or colours)."""
        return any(c is not None and c.applied for c in (self.rig, self.colours, self.silhouettes, self.aligned))

    def _decide(self, result, what: str, report, path: Path):
        """A check's result marked applied when it explains the tracks clearly better, logged and saved."""
        if result is None:
            log(f"[yellow]{what} check skipped: too few feature tracks on the subject[/]")
            return None
        result.applied = result.improves
        report(result)
        self._write_check(path, result)
        return result

    @staticmethod
    def _read_check(path: Path, kind):
        if not path.is_file():
            return None
        try:
            return kind.from_json(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: measured again

    def _write_check(self, path: Path, result) -> None:
        if self.rank == 0:
            from fourd.io import write_json

            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(path, result.to_json())

    def _poses_checked(self) -> bool:
        """Whether a check before training (rig check, silhouette or surface alignment) moved the training cameras."""
        return self._rig_moved() or (self.aligned is not None and self.aligned.applied)

    def _rig_moved(self) -> bool:
        """Whether the rig check or the silhouette alignment (once made) moved the training cameras."""
        return any(r is not None and r.applied for r in (self.rig, getattr(self, "silhouettes", None)))

    def _refined_rig(self, video):
        """The capture's cameras with the rig check's poses on the training cameras (for carving),
        and the silhouette alignment's turns on top once it is made and applied."""
        from fourd.model.corrections import perturbed
        from fourd.structures.cameras import Cameras

        cams = video.cameras
        turn = {n: np.zeros(3) for n in cams.names}
        move = {n: np.zeros(3) for n in cams.names}
        if self.rig is not None and self.rig.applied:
            for a, n in enumerate(self.rig.names):
                turn[n], move[n] = turn[n] + self.rig.rotation[a], move[n] + self.rig.shift[a]
        sil = getattr(self, "silhouettes", None)
        if sil is not None and sil.applied:
            for n, w in zip(sil.names, sil.turns(cams)):
                turn[n] = turn[n] + w
        out = []
        for j, n in enumerate(cams.names):
            c = cams[j]
            if turn[n].any() or move[n].any():
                c = perturbed(c, torch.from_numpy(turn[n]).to(c.R), torch.from_numpy(move[n]).to(c.R))
            out.append(c)
        return Cameras.cat(out)

    def _apply_rig(self, r) -> None:
        """Start the model's pose corrections at the rig check's (zero-mean, as they are kept)."""
        corr = self.model.corrections
        with torch.no_grad():
            for a, n in enumerate(r.names):
                if corr.has(n):
                    i = corr.names.index(n)
                    corr.rotation[i] = torch.from_numpy(r.rotation[a]).to(corr.rotation)
                    corr.shift[i] = (torch.from_numpy(r.shift[a]) / corr.distance).to(corr.shift)

    def _apply_colours(self, c) -> None:
        """Start the model's colour corrections at the colour check's."""
        corr = self.model.corrections
        A, b = c.correction()
        with torch.no_grad():
            for a, n in enumerate(c.names):
                if corr.has(n):
                    i = corr.names.index(n)
                    corr.colour_matrix[i] = torch.from_numpy(A[a] - np.eye(3)).to(corr.colour_matrix)
                    corr.colour_offset[i] = torch.from_numpy(b[a]).to(corr.colour_offset)

    def _corrected(self) -> bool:
        """Whether the training cameras carry corrections (written to RUN/cameras with checkpoints)."""
        return bool(self.cfg.colour_correction or self.cfg.pose_refinement or self.cfg.lr_pose or self._checked())

    def _initial_points(self, video) -> PointSequence:
        cfg = self.cfg
        path = points_path(cfg, self.out)
        if path.is_file() or cfg.points_file:
            return PointSequence.load(path)
        if self.world > 1:
            raise FourdError("distributed training needs carved points first", path,
                             f"run `fourd carve --dataset {cfg.dataset} --out {path.parent}` or pass --points-file")
        from fourd.carve.run import carve_sequence

        log("carving the capture to initialize the points")
        carve_cfg = dataclasses.replace(cfg.carve, device=cfg.device,  # --no-fix-mask-outlines: the carve's too
                                        fix_outlines=cfg.carve.fix_outlines and cfg.fix_mask_outlines)
        given = video.cameras
        if self._rig_moved():  # carve with the refined training cameras
            video.cameras = self._refined_rig(video)
        try:
            seq, report = carve_sequence(video, carve_cfg, path.parent)
        finally:
            video.cameras = given
        seq.meta["spacing"] = float(sum(f["spacing"] for f in report["frames"]) / len(report["frames"]))
        seq.save(path)
        return seq

    # --------------------------------------------------------------- steps
    def render(self, frame: int, camera, exclude: str | None, baseline: bool = False, net=None,
               reuse_visibility: bool = False):
        sources = self.run.sources(frame, camera, exclude)
        # training reuses the source views' depth maps (for visibility) for a while: they change
        # slowly; a render for evaluation or display draws them fresh, as a bake does
        if reuse_visibility:
            for s in sources:
                hit = self._zfront.get((frame, s.name, baseline))
                if hit is not None and self.step - hit[1] < self.cfg.visibility_refresh:
                    s.zfront = hit[0]
        out = self.run.render(frame, camera, exclude, baseline, sources, net)
        if reuse_visibility:
            for s in sources:
                key = (frame, s.name, baseline)
                if key not in self._zfront or self.step - self._zfront[key][1] >= self.cfg.visibility_refresh:
                    self._zfront[key] = (s.zfront, self.step)
        return out

    def _draw(self) -> tuple[int, str]:
        """A training view drawn uniformly from those the capture has (a pair whose camera dropped
        the frame is drawn again: every pair it has stays equally likely)."""
        while True:
            f = self.video.frames[int(torch.randint(len(self.video.frames), (1,), generator=self.gen))]
            cam = self.train_cams[int(torch.randint(len(self.train_cams), (1,), generator=self.gen))]
            if self.video.has(f, cam):
                return f, cam

    def train_step(self) -> dict:
        cfg = self.cfg
        t_data = time.perf_counter()
        f, cam = self._next if self._next is not None else self._draw()
        self._next = None
        if self.prefetcher is not None:
            got = self.prefetcher.take(f, cam)
            if got is not None:
                tgt, srcs = got
                self.run.ready[("target", f, cam)] = tgt
                for n, s in srcs.items():
                    self.run.ready[("source", f, n)] = s
            if self.step + 1 < self.planned:  # the next step's views load while this one computes
                self._next = self._draw()
                self.prefetcher.submit(*self._next)
        tgt = self.run.target(f, cam)
        self.data_s = time.perf_counter() - t_data
        out = self.render(f, tgt.camera, cam, net=self.net, reuse_visibility=True)
        self.run.ready.clear()  # anything loaded ahead and not used (a source list that changed)
        img = out.image
        trust = edge_weights(tgt.mask, cfg.edge_band) if tgt.mask is not None else None
        colour_trust = trust if tgt.weight is None else tgt.weight if trust is None else trust * tgt.weight
        if colour_trust is None:
            loss_rgb = ((img.rgb - tgt.image) ** 2).mean()
        else:
            loss_rgb = (((img.rgb - tgt.image) ** 2) * colour_trust[..., None]).sum() / (3 * colour_trust.sum().clamp_min(1))
        loss = loss_rgb
        if tgt.mask is not None and cfg.w_mask:
            loss = loss + cfg.w_mask * mask_loss(img.alpha, tgt.mask, cfg.mask_loss, trust)
        if cfg.w_ssim:
            loss = loss + cfg.w_ssim * dssim_loss(*random_square(img.rgb, tgt.image, cfg.ssim_window, self.gen))
        residual = self.model.appearance.residual
        if cfg.w_residual and residual is not None and residual.numel():
            loss = loss + cfg.w_residual * (residual ** 2).mean()
        if cfg.w_tv:
            loss = loss + cfg.w_tv * self.model.grid.tv_loss()
        if cfg.w_time:
            loss = loss + cfg.w_time * self.model.grid.time_smoothness()
        if cfg.w_lpips:
            lp = lpips_distance(img.rgb, tgt.image)
            if lp is not None:
                loss = loss + cfg.w_lpips * lp
        if not torch.isfinite(loss):
            raise FourdError(f"the loss became {float(loss.detach())} at step {self.step}; training stopped and the last good "
                             "checkpoint was kept", self.out / "checkpoints" / "latest.pt",
                             "resume with a lower --lr (the checkpoint is intact)")
        from torch.profiler import record_function

        self.optimizer.zero_grad(set_to_none=True)
        with record_function("backward"):
            loss.backward()
        with record_function("optimizer"):
            self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return {"loss": float(loss.detach()), "psnr": psnr(img.rgb.detach(), tgt.image.detach()), "frame": f, "camera": cam,
                "points_visible": int(out.visible.numel()), "data_ms": 1000 * self.data_s}

    def refine_due(self) -> bool:
        cfg = self.cfg
        return (cfg.pose_refinement or cfg.colour_correction) and self.step >= cfg.refine_after \
            and (self.step - cfg.refine_after) % cfg.refine_every == 0 and self.step < self.planned

    def refine(self) -> None:
        """One round of camera refinement (poses aligned, colours fitted against the model)."""
        import statistics

        from torch.profiler import record_function

        from fourd.train.align import refine_cameras

        cfg = self.cfg
        with record_function("align"):
            moved = refine_cameras(self.run, cfg.pose_refinement, cfg.colour_correction, cfg.colour_ridge,
                                   generator=self.gen)
        self._zfront.clear()  # the sources' depth maps were drawn from the old poses
        if moved:
            log(f"[dim]step {self.step}: camera poses aligned ({len(moved)} cameras, median change "
                f"{statistics.median(moved.values()):.3f}°)[/]")

    # ---------------------------------------------------------- checkpoints
    def save(self) -> None:
        if self.rank != 0:
            return
        d = self.out / "checkpoints"
        extra = {"spacing": self.run.spacing, "planned_steps": self.planned,
                 "train_seconds": self._spent_before + time.perf_counter() - self._t_start,
                 "next_sample": list(self._next) if self._next is not None else None}
        p = save_checkpoint(d / f"step_{self.step:07d}.pt", self.step, self.model, self.optimizer, self.scheduler,
                            self.gen, to_json(self.cfg), extra)
        atomic_write_text(d / "latest.txt", p.name)
        self._saved_step = self.step
        if self._corrected():
            write_corrections(self.run, self.out / "cameras")
        for old in sorted(d.glob("step_*.pt"))[:-2]:  # keep the last two
            old.unlink()

    def _check_checkpoint(self) -> None:
        """A checkpoint in the run folder made with settings it cannot continue with (another
        capture, model, held-out cameras or frames): refused now, before anything is written."""
        from fourd.train.checkpoint import check_compatible, checkpoint_config
        from fourd.train.run import latest_checkpoint

        ckpt = latest_checkpoint(self.out)
        saved = checkpoint_config(ckpt) if ckpt is not None and ckpt.is_file() else None
        if saved is not None:
            check_compatible(saved, to_json(self.cfg), ckpt)

    def resume(self) -> bool:
        d = self.out / "checkpoints"
        if not (d / "latest.txt").is_file():
            return False
        state = load_checkpoint(d / (d / "latest.txt").read_text().strip(), to_json(self.cfg))
        load_model_state(self.model, state["model"], d / "latest.txt")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.gen.set_state(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        extra = json.loads(state.get("extra") or "{}")
        if extra.get("next_sample"):  # drawn ahead before the checkpoint: the resumed run takes it next
            self._next = (int(extra["next_sample"][0]), str(extra["next_sample"][1]))
        if self.cfg.minutes:
            self._spent_before = float(extra.get("train_seconds", 0.0))
            self.planned = int(extra.get("planned_steps", self.planned))
        log(f"resumed from step {self.step}"
            + (f" ({self._spent_before / 60:.1f} of {self.cfg.minutes:g} minutes spent)" if self.cfg.minutes else ""))
        return True

    # ------------------------------------------------------------------ loop
    def fit(self, resume: bool = False) -> dict:
        from fourd.train.evaluate import evaluate

        cfg = self.cfg
        if resume:
            self.resume()
        if self.rank == 0:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out / "tb"))
        logf = open(self.out / "log.jsonl", "a") if self.rank == 0 else None
        t0, last = time.perf_counter(), {}
        budget = TimeBudget(self, cfg.minutes * 60) if cfg.minutes else None
        if budget is not None:
            if budget.elapsed() >= budget.seconds:
                log(f"[yellow]--minutes {cfg.minutes:g} already spent ({budget.elapsed() / 60:.1f} min); "
                    f"nothing left to train[/]")
                self.planned = self.step
            else:  # a first guess until the step time is measured (a resumed run: more than it has done)
                self.planned = max(self.planned, self.step + max(cfg.steps, TimeBudget.WARMUP))
        try:
            with progress("training", self.planned, completed=self.step) as advance:
                while self.step < self.planned:
                    t_step = time.perf_counter()
                    last = self.train_step()
                    step_s = time.perf_counter() - t_step
                    if self.refine_due() and (budget is None or budget.room_for_refinement()):
                        t = time.perf_counter()
                        self.refine()
                        if budget is not None:
                            budget.refined(time.perf_counter() - t)
                    if budget is not None:
                        budget.stepped(step_s)
                    advance(info=f"loss {last['loss']:.4f} psnr {last['psnr']:.2f}",
                            total=self.planned if budget is not None else None)
                    if self.rank == 0 and self.step % cfg.log_every == 0:
                        rec = {"step": self.step, "time": time.perf_counter() - t0, **last,
                               "lr": self.scheduler.get_last_lr()[1]}
                        logf.write(json.dumps(rec) + "\n")
                        logf.flush()
                        for k in ("loss", "psnr"):
                            self.writer.add_scalar(f"train/{k}", last[k], self.step)
                    if self.step % cfg.ckpt_every == 0 or self.step == self.planned:
                        t = time.perf_counter()
                        self.save()
                        if budget is not None:
                            budget.saved(time.perf_counter() - t)
                    if self.rank == 0 and cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < self.planned:
                        m = evaluate(self.run, self.out / "eval" / f"step_{self.step:07d}", frames=cfg.eval_frames)
                        self._log_eval(m, logf, t0)
            if budget is not None and getattr(self, "_saved_step", None) != self.step:
                self.save()
            result = {"steps": self.step, "train": last}
            if self.rank == 0:
                t = time.perf_counter()
                m = evaluate(self.run, self.out / "eval" / "final", frames=cfg.eval_frames)
                self._log_eval(m, logf, t0)
                result["eval"] = m
                if budget is not None:
                    budget.final_eval_s = time.perf_counter() - t
            if budget is not None:
                result["budget"] = budget.summary()
            return result
        finally:
            if self.prefetcher is not None:
                self.prefetcher.close()
                self.prefetcher = None
            if logf:
                logf.close()
            if self.writer:
                self.writer.close()

    def _log_eval(self, m: dict, logf, t0: float) -> None:
        logf.write(json.dumps({"step": self.step, "time": time.perf_counter() - t0, "eval": m["summary"]}) + "\n")
        logf.flush()
        for k, v in m["summary"].items():
            if isinstance(v, dict):  # the error split: eval/edge/psnr, ...
                for name, r in v.items():
                    for q, x in r.items():
                        if x is not None:
                            self.writer.add_scalar(f"eval/{name}/{q}", x, self.step)
            elif v is not None:
                self.writer.add_scalar(f"eval/{k}", v, self.step)
        log(f"step {self.step}: held-out PSNR {m['summary']['psnr']:.2f} dB, SSIM {m['summary']['ssim']:.3f}")


def write_corrections(run, out: Path) -> None:
    """The rig as training found it: ``intri.yml``/``extri.yml`` (EasyVolcap, every camera — the
    training cameras with their refined poses, held-out ones as given) and ``colour.json`` (each
    training camera's colour correction x ↦ A x + b and the gain it implies)."""
    from fourd.datasets.easyvolcap import write_easyvolcap_cameras
    from fourd.io import write_json

    corr = run.model.corrections
    out.mkdir(parents=True, exist_ok=True)
    write_easyvolcap_cameras(out, corr.refined(run.video.cameras.to(run.device)).to("cpu"))
    write_json(out / "colour.json", {"model": "x -> A x + b on RGB in [0, 1]; gain = 1 / diag(A)",
                                     "cameras": corr.summary()})


class TimeBudget:
    """Sizes a run to ``seconds`` of wall time (``--minutes``): from the measured step time it sets
    the planned number of steps — which is also where the learning rate reaches its final decay —
    keeping back what the final checkpoint and held-out evaluation will take. Re-planned every few
    steps, so a slower or faster stretch of training moves the end, not the deadline."""

    WARMUP = 5

    def __init__(self, trainer: Trainer, seconds: float):
        from fourd.train.evaluate import pick_frames

        self.tr, self.seconds = trainer, float(seconds)
        self.times: list[float] = []
        self.save_s = 0.2
        self.n_eval = len(pick_frames(trainer.video.frames, trainer.cfg.eval_frames)) * len(trainer.eval_cams)
        self.eval_s = None
        self.replans = 0
        self.step_s, self.reserve = None, None
        self.final_eval_s = None
        self.refine_s: list[float] = []  # seconds of each camera-refinement round

    def elapsed(self) -> float:
        return self.tr._spent_before + time.perf_counter() - self.tr._t_start

    def saved(self, seconds: float) -> None:
        self.save_s = seconds

    def refined(self, seconds: float) -> None:
        self.refine_s.append(seconds)

    def room_for_refinement(self) -> bool:
        """A refinement round fits before the deadline (its time measured by the last round; the
        first one is guessed at 200 steps' worth)."""
        if self.step_s is None:
            return True
        guess = self.refine_s[-1] if self.refine_s else 200 * self.step_s
        return self.elapsed() + guess + (self.reserve or 0) < self.seconds

    def _eval_estimate(self) -> float:
        """One held-out render timed (the first time), times the number the final evaluation makes."""
        if self.eval_s is None:
            if not self.n_eval:
                self.eval_s = 0.0
            else:
                tr = self.tr
                cam = tr.eval_cams[0]
                f = tr.video.frames_of(cam)[0]
                took = []
                for _ in range(2):  # the second: the first pays one-time set-up (a full-size rasterizer)
                    t = time.perf_counter()
                    with torch.no_grad():
                        tgt = tr.run.sampler.target(f, cam, crop=False, scale=1.0)
                        tr.run.render(f, tgt.camera, None)
                    took.append(time.perf_counter() - t)
                self.eval_s = took[1] * 1.2 * self.n_eval + 0.1
        return self.eval_s

    def stepped(self, seconds: float) -> None:
        tr = self.tr
        self.times.append(seconds)
        n = len(self.times)
        if n < self.WARMUP:
            return
        if n == self.WARMUP or n % max(1, min(20, n // 10)) == 0:
            recent = sorted(self.times[-50:])
            self.step_s = recent[len(recent) // 2]
            cfg = tr.cfg
            if self.refine_s and (cfg.pose_refinement or cfg.colour_correction):  # rounds still to come, per step
                self.step_s += (sum(self.refine_s) / len(self.refine_s)) / cfg.refine_every
            self.reserve = self._eval_estimate() + self.save_s + 0.005 * self.seconds
            left = self.seconds - self.elapsed() - self.reserve
            tr.planned = max(tr.step, tr.step + int(left / max(self.step_s, 1e-6)))
            self.replans += 1
            if tr.planned == tr.step and self.replans == 1:
                log(f"[yellow]--minutes {self.seconds / 60:g}: the budget leaves no time to train after "
                    f"{self.elapsed():.0f} s of set-up; stopping at step {tr.step}[/]")
        # every step: never start a step that would end past the deadline
        if self.elapsed() + self.step_s + self.reserve > self.seconds:
            tr.planned = tr.step

    def summary(self) -> dict:
        return {"budget_s": self.seconds, "elapsed_s": self.elapsed(), "steps": self.tr.step,
                "step_s": sorted(self.times)[len(self.times) // 2] if self.times else None,
                "eval_estimate_s": self.eval_s, "final_eval_s": self.final_eval_s, "save_s": self.save_s,
                "refine_s": self.refine_s,
                "replans": self.replans}
