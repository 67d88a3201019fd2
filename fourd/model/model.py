"""The composed 4D point model: per-frame learnable point positions (initialized by carving), the
4D feature grid, the geometry head and the hybrid appearance, rendered through depth peeling
and the differentiable compositor. Never imports GL or UI code; the rasterizer is passed in."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from fourd.model.appearance import Appearance, SourceView, draw_depth_maps
from fourd.model.corrections import CameraCorrections
from fourd.model.geometry import GeometryHead
from fourd.model.grid4d import Grid4D, Grid4DConfig, principal_axes
from fourd.render.compositor import Composite, composite
from fourd.structures.cameras import Cameras
from fourd.structures.fragments import RasterSettings
from fourd.structures.points import PointSequence


@dataclass
class ModelConfig:
    grid: Grid4DConfig = field(default_factory=Grid4DConfig)
    """4D feature grid."""
    geometry_hidden: int = 64
    """hidden width of the geometry MLP (4K4D: 32→64→64→2)."""
    radius_min: float = 0.25
    """smallest point radius, in units of the carved point spacing."""
    radius_max: float = 4.0
    """largest point radius, in units of the carved point spacing."""
    radius_init: float = 2.0
    """initial point radius, in units of the carved point spacing (≈ 12 splats overlap on a surface,
    so K ≈ 8 layers make it opaque)."""
    appearance: str = "hybrid"
    """hybrid (image blend + SH residual), blend (no SH) or sh (SH only)."""
    source_views: int = 4
    """source views blended per render (nearest training cameras by centre distance). 6 (demo preset,
    1500 steps, held-out PSNR / SSIM): Fox 34.97 → 35.10 dB / 0.9754 → 0.9760, CesiumMan 29.73 → 29.74
    / 0.9684 → 0.9688 — within a run's noise on CesiumMan, for half as many views again to blend: kept."""
    cnn_channels: int = 8
    """feature channels of the source-image CNN."""
    cnn_downsample: int = 2
    """the CNN sees source images downsampled by this factor (colours are sampled at full size)."""
    direction_prior: float = 20.0
    """blend logit per unit of cos(angle between a source's ray and the target's) the learned weights
    start from; 0 starts from an equal blend of the sources that see the point."""
    blend_view_input: bool = False
    """the learned blend weights also see the target's direction (the default before 4K4D-style
    exact baking; such runs bake only with --appearance compact)."""
    density_init: float = 0.9
    """initial point density."""
    density_max: float = 1.0
    """largest point density. A splat's opacity is density · (1 − d²/r²) clamped to 1, so a density
    above 1 gives a splat an opaque core and a hard rim instead of a cone (1: every splat fades from
    its centre)."""
    sh_degree: int = 3
    """degree of the SH residual."""
    sh_scale: float = 0.25
    """the residual is sh_scale · tanh(SH)."""
    hold_turn_mean: bool = False
    """hold the mean of the training cameras' turns (rotation vectors in each camera's frame) at zero,
    as runs made before the silhouette alignment did. That mean is not a motion of the whole rig
    (which also moves the centres), so holding it removed a real error: every camera of a ring
    turned the same way about its own centre (on the degraded test captures about 0.25 px of the
    0.4 px the checks leave). The centre shifts' mean is held at zero either way."""


@dataclass
class RenderOutput:
    image: Composite  # rgb [H, W, 3], alpha, depth, weights
    visible: Tensor  # [U] indices of the frame's points that reached the image
    radius: Tensor  # [N] radii of the frame's points
    density: Tensor  # [N]


def principal_box(points: Tensor, lo: Tensor, hi: Tensor, margin: float = 0.05,
                  keep_below: float = 0.8) -> tuple[Tensor | None, Tensor, Tensor]:
    """(axes, lo, hi): a box round ``points`` (every frame's) along their principal axes, with the
    carve's ``margin``, when it holds them in less than ``keep_below`` of the volume of the world
    box (``lo``, ``hi``) — a capture whose world is turned against the subject and its path (a
    z-up rig, a structure-from-motion frame, a walk across the room's diagonal) leaves most of an
    axis-aligned box empty, and the grid's texels with it. Else (None, lo, hi): the world's axes,
    which most captures' already fit (the bench captures: 0.96–0.97 of the volume)."""
    axes = principal_axes(points)
    q = points.detach().float().cpu() @ axes.T
    qlo, qhi = q.min(0).values, q.max(0).values
    pad = margin * float((qhi - qlo).max())
    plo, phi = qlo - pad, qhi + pad
    if float((phi - plo).prod()) < keep_below * float((hi - lo).prod()):
        return axes, plo, phi
    return None, lo, hi


class FourDModel(nn.Module):
    def __init__(self, cfg: ModelConfig, init: PointSequence, lo: Tensor, hi: Tensor, spacing: float,
                 cameras: list[str] | None = None, distance: float = 1.0):
        super().__init__()
        self.cfg = cfg
        self.frames = list(init.frames)
        self.register_buffer("offsets", init.offsets.clone())
        self.positions = nn.Parameter(init.points.clone().float())
        # the carved positions, for the untrained baseline (not saved: the carve file has them)
        self.register_buffer("carved", init.points.clone().float(), persistent=False)
        self.spacing = float(spacing)
        axes = None
        if cfg.grid.axes == "principal":
            axes, lo, hi = principal_box(init.points, lo, hi)
        elif cfg.grid.axes != "world":
            raise ValueError(f"Grid4DConfig.axes must be 'principal' or 'world', got '{cfg.grid.axes}'")
        self.grid = Grid4D(cfg.grid, lo, hi, len(self.frames), axes)
        s = self.spacing
        self.geometry = GeometryHead(self.grid.out_dim, cfg.geometry_hidden, cfg.radius_min * s, cfg.radius_max * s,
                                     cfg.radius_init * s,
                                     cfg.density_init, cfg.density_max)
        self.appearance = Appearance(self.grid.out_dim, cfg.cnn_channels, sh_degree=cfg.sh_degree,
                                     sh_scale=cfg.sh_scale, mode=cfg.appearance, cnn_downsample=cfg.cnn_downsample,
                                     direction_prior=cfg.direction_prior, view_input=cfg.blend_view_input)
        # per training camera: colour and pose corrections (identity until trained)
        self.corrections = CameraCorrections(list(cameras or []), distance, hold_turn_mean=cfg.hold_turn_mean)

    def slot(self, frame: int) -> int:
        return self.frames.index(int(frame))

    def frame_points(self, slot: int) -> Tensor:
        return self.positions[self.offsets[slot]:self.offsets[slot + 1]]

    def geometry_at(self, slot: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(xyz [N, 3], feature [N, D], radius [N], density [N]) of a frame."""
        xyz = self.frame_points(slot)
        feat = self.grid(xyz, float(slot))
        radius, density = self.geometry(feat)
        return xyz, feat, radius, density

    def forward(self, slot: int, camera: Cameras, sources: list[SourceView], settings: RasterSettings,
                rasterize, background: Tensor | None = None, baseline: bool = False) -> RenderOutput:
        """Render frame ``slot`` from ``camera``. ``rasterize(points, radii, camera, settings)`` → Fragments.
        ``baseline`` renders the untrained reference: carved points, fixed radius, density 1, uniform blend."""
        from torch.profiler import record_function

        if baseline:
            xyz = self.carved[self.offsets[slot]:self.offsets[slot + 1]]
            feat = torch.zeros(xyz.shape[0], self.grid.out_dim, device=xyz.device)
            radius = torch.full((xyz.shape[0],), self.cfg.radius_init * self.spacing, device=xyz.device)
            density = torch.ones_like(radius)
        else:
            xyz = self.frame_points(slot)
            with record_function("grid"):
                feat = self.grid(xyz, float(slot))
            with record_function("heads"):
                radius, density = self.geometry(feat)
        with record_function("peel"):
            frags = rasterize(xyz.detach(), radius.detach(), camera, settings)
        hit = frags.idx[frags.idx >= 0]
        visible = torch.unique(hit) if hit.numel() else hit
        with record_function("peel_sources"):  # each source view's nearest depth, for the visibility test
            draw_depth_maps(sources, xyz, radius, rasterize, settings.near, settings.far)
        with record_function("blend"):
            colors = self.appearance(xyz[visible], feat[visible], radius[visible], camera, sources, uniform=baseline)
        local = torch.full((xyz.shape[0],), -1, dtype=torch.long, device=xyz.device)
        local[visible] = torch.arange(visible.numel(), device=xyz.device)
        frags = frags.reindex(local, visible)
        with record_function("composite"):
            image = composite(frags, xyz[visible], radius[visible], density[visible], colors, camera, background)
        return RenderOutput(image, visible, radius, density)
