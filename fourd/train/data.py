"""Training samples from a capture: target crops, nearest source views, held-out split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from fourd.datasets.base import MultiViewVideo
from fourd.errors import DataError
from fourd.model.appearance import SourceView
from fourd.structures.cameras import Cameras


@dataclass
class Target:
    image: Tensor  # [H, W, 3] float in [0, 1], composited over the background with the mask
    mask: Tensor | None  # [H, W] float
    camera: Cameras
    frame: int
    name: str
    weight: Tensor | None = None  # [H, W] how much the colour loss trusts each pixel (None: all alike)


def split_cameras(video: MultiViewVideo, eval_cams: str | None) -> tuple[list[str], list[str]]:
    """(train, eval) camera names: --eval-cams, else the capture's held-out set, else a spread of 4."""
    names = video.camera_names
    if eval_cams:
        held = [c.strip() for c in eval_cams.split(",") if c.strip()]
        bad = [c for c in held if c not in names]
        if bad:
            raise DataError(f"--eval-cams names unknown cameras {bad}", video.path, f"pick from {', '.join(names)}")
    elif video.held_out:
        held = list(video.held_out)
    else:
        n = min(4, max(0, len(names) - 4))
        held = [names[int(i * len(names) / n + len(names) / (2 * n))] for i in range(n)] if n else []
    blind = set(video.empty_mask_cameras([c for c in names if c not in held])) | set(video.excluded)
    train = [c for c in names if c not in held and c not in blind]
    if len(train) < 2:
        raise DataError(f"only {len(train)} training cameras remain after holding out {held}", video.path,
                        "hold out fewer cameras")
    return train, held


class ViewSampler:
    def __init__(self, video: MultiViewVideo, train_cams: list[str], cfg, device: torch.device):
        self.video, self.train_cams, self.cfg, self.device = video, train_cams, cfg, device
        self.bg = torch.tensor(cfg.background, dtype=torch.float32)
        idx = [video.cameras.index(n) for n in train_cams]
        self.centers = video.cameras.centers[idx]
        self.plates: dict = {}  # camera → fourd.train.plate.CameraPlate: its targets' edge rings un-mixed
        self._given: dict = {}  # held-out camera → CameraPlate from the capture's picture of the empty scene

    def target(self, frame: int, cam: str, crop: bool = True, scale: float | None = None) -> Target:
        v = self.video.view(frame, cam, scale=self.cfg.image_scale if scale is None else scale,
                            crop_to_mask=crop, margin=self.cfg.crop_margin)
        unknown = None  # edge pixels whose backdrop is not known
        if v.coverage is not None and getattr(self.cfg, "soft_masks", True):
            img, mask, unknown = self._over_background(v, cam)
        else:
            if cam in self.plates and v.mask is not None:  # the backdrop taken out of the matte's edge
                unmixed, unknown = self.plates[cam].unmix(v.image, v.mask, v.box)
                img = torch.from_numpy(unmixed)
            else:
                img = torch.from_numpy(v.image).float() / 255
            mask = None
            if v.mask is not None:
                mask = torch.from_numpy(v.mask).float()
                img = img * mask[..., None] + self.bg * (1 - mask[..., None])
        weight = None
        if self.cfg.plate_unknown == "skip" and unknown is not None and unknown.any():
            weight = torch.from_numpy(~unknown).float().to(self.device)
        return Target(img.to(self.device), None if mask is None else mask.to(self.device),
                      v.camera.to(self.device), frame, cam, weight)

    def _over_background(self, v, cam: str) -> tuple[torch.Tensor, torch.Tensor, np.ndarray | None]:
        """A view with a soft mask (coverage ``c``) as the training target: the recorded pixel is
        ``c·F + (1 − c)·B`` over the backdrop ``B``, so the subject's own part ``c·F`` is the pixel
        less ``(1 − c)·B``, and the target is that over the training background — no division, so
        no noise is amplified at low coverage. ``B`` is the camera's measured plate where it has one
        (:mod:`fourd.train.plate`), else the training background (what the plate check found behind
        the subject, or what a capture without one is taken to have). Returns (image [H, W, 3],
        coverage [H, W], the partly covered pixels whose plate is not known, or None)."""
        c = v.coverage
        img = v.image.astype(np.float32) / 255
        bg = self.bg.numpy()
        unknown = None
        plate = self.plates.get(cam) or self._given_plate(cam)
        if plate is not None:
            B, seen = plate.behind(v.box, img.shape[:2])
            unknown = (c > 0) & (c < 1) & ~seen
        else:
            B = bg
        out = img - (1 - c[..., None]) * (B - bg)
        out = np.where(c[..., None] > 0, out, bg)  # nothing of the subject: the background exactly
        return torch.from_numpy(np.clip(out, 0, 1).astype(np.float32)), torch.from_numpy(c), unknown

    def _given_plate(self, cam: str):
        """A held-out camera's plate when the capture has its picture of the empty scene (4K4D's
        ``bkgd/``): its ground truth's partly covered pixels are then the subject's share over the
        training background, as the training targets' are (the model is asked for the subject
        alone); None for a training camera (the plate check decides those) or without a picture."""
        if cam in self.train_cams or not getattr(self.cfg, "unmix_plate", True):
            return None
        if cam not in self._given:
            from fourd.train.plate import CameraPlate

            B = self.video.backdrop(cam)
            self._given[cam] = None if B is None else CameraPlate(B, np.ones(B.shape[:2], bool), 0.0)
        return self._given[cam]

    def source_names(self, camera: Cameras, exclude: str | None, n: int, frame: int | None = None) -> list[str]:
        """The ``n`` training cameras nearest ``camera`` but ``exclude`` (that have an image of ``frame``)."""
        d = (self.centers - camera.centers[0].cpu()).norm(dim=1)
        order = [self.train_cams[i] for i in torch.argsort(d).tolist()]
        if frame is not None:
            order = self.video.cameras_at(frame, order)
        return [c for c in order if c != exclude][:n]

    def source(self, frame: int, name: str) -> SourceView:
        """One source view: the camera's image cropped to the subject, resized to source_size²."""
        import cv2

        S = self.cfg.source_size
        v = self.video.view(frame, name, crop_to_mask=True, margin=self.cfg.crop_margin)
        img = cv2.resize(v.image, (S, S), interpolation=cv2.INTER_AREA)
        cam = v.camera.resize(S, S)
        t = torch.from_numpy(np.ascontiguousarray(img)).float().permute(2, 0, 1) / 255
        mask = None
        if v.mask is not None and getattr(self.cfg, "source_masks", False):
            # the source pixels wholly inside the mask (an edge pixel mixes subject and background)
            full = v.coverage if v.coverage is not None and getattr(self.cfg, "soft_masks", True) \
                else v.mask.astype(np.float32)
            m = cv2.resize(full, (S, S), interpolation=cv2.INTER_AREA)
            mask = torch.from_numpy(m > 0.999).to(self.device)
        return SourceView(t.to(self.device), cam.to(self.device), name=name, mask=mask)


class Prefetcher:
    """Loads the next training step's target and source views in a background thread while the
    current step computes (decoding, undistorting, cropping and resizing release the GIL), one
    step ahead, so memory stays at one step's views. Colour and pose corrections are applied by
    the caller (:class:`~fourd.train.run.Run`), so what is loaded ahead never goes stale."""

    def __init__(self, sampler: ViewSampler, n_sources: int):
        from concurrent.futures import ThreadPoolExecutor

        self.sampler, self.n_sources = sampler, n_sources
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="fourd-prefetch")
        self._pending = None  # ((frame, cam), future)

    def submit(self, frame: int, cam: str) -> None:
        self._pending = ((frame, cam), self._pool.submit(self._load, frame, cam))

    def _load(self, frame: int, cam: str) -> tuple[Target, dict[str, SourceView]]:
        tgt = self.sampler.target(frame, cam)
        video = self.sampler.video
        names = self.sampler.source_names(video.cameras[cam], cam, self.n_sources, frame)
        return tgt, {n: self.sampler.source(frame, n) for n in names}

    def take(self, frame: int, cam: str) -> tuple[Target, dict[str, SourceView]] | None:
        """What was loaded for (frame, cam) (waiting for it), or None when something else was asked for."""
        if self._pending is None or self._pending[0] != (frame, cam):
            return None
        got = self._pending[1].result()
        self._pending = None
        return got

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
