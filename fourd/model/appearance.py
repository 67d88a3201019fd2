"""Hybrid appearance (4K4D): image-based blending of the nearest source views plus a
spherical-harmonics residual predicted from the point feature.

colour = Σ_s softmax(w_s) · rgb_s  (over source views that see the point)
       + scale · tanh(SH(view direction))
w_s = MLP(point feature, image feature of s at the point) + prior · cos(angle between the source's
and the target's rays to the point). A source view contributes only where the point is visible in
it (depth test against that view's own nearest-point depth map). Points no source sees fall back
to a colour predicted from the feature. ``mode`` selects 'hybrid', 'blend' (no SH) or 'sh' (SH
only: sigmoid(SH)) for ablations.

As in 4K4D, everything the MLP sees depends on the point and the source view only, so rgb_s, the
visibility and the learned weight can be precomputed per source view (:meth:`source_terms`) and
the rest — choosing the sources, the prior, the softmax and the SH — evaluated at display time
(``fourd bake --appearance views``). ``view_input`` (runs made before this) also feeds the
target direction to the MLP, which rules that out.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fourd.model.sh import eval_sh
from fourd.structures.cameras import Cameras


@dataclass
class SourceView:
    image: Tensor  # [3, h, w] float in [0, 1]
    camera: Cameras  # one camera matching the image
    zfront: Tensor | None = None  # [h, w] depth of the nearest point (computed per render), inf where none
    name: str = ""  # camera name, for caching visibility maps
    mask: Tensor | None = None  # [h, w] bool: where the view shows the subject (None: everywhere)


def visible_points(camera: Cameras, xyz: Tensor, radius: Tensor, zfront: Tensor | None,
                   size: tuple[int, int], mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The visibility test of a point in a view: (uv [N, 2] pixel coordinates, visible [N]) — in
    front of the camera, inside the ``size`` = (h, w) image, and (when the view's nearest-point
    depth map ``zfront`` [h, w] is given) no more than 3 radii behind the nearest point there, and
    (when the view's ``mask`` is given) on the subject there — so the colour sampled is the
    subject's, not the background's that a matte's soft edge mixes in."""
    uv, z = camera.project(xyz)
    uv, z = uv[0], z[0]
    h, w = size
    ij = uv.detach().floor().long()
    vis = (z > 0) & (ij[:, 0] >= 0) & (ij[:, 1] >= 0) & (ij[:, 0] < w) & (ij[:, 1] < h)
    if zfront is not None:
        zf = zfront[ij[:, 1].clamp(0, h - 1), ij[:, 0].clamp(0, w - 1)]
        vis &= z.detach() <= zf + 3 * radius.detach()
    if mask is not None:
        vis &= mask[ij[:, 1].clamp(0, h - 1), ij[:, 0].clamp(0, w - 1)]
    return uv, vis


def draw_depth_maps(sources: list[SourceView], xyz: Tensor, radius: Tensor, rasterize, near: float, far: float) -> None:
    """Give each source view its nearest-point depth map (``zfront``) for the visibility test, drawn
    with the same rasterizer as the image; maps already there (reused in training) are kept."""
    from fourd.structures.fragments import RasterSettings

    one = RasterSettings(K=1, near=near, far=far)
    for s in sources:
        if s.zfront is None:
            s.zfront = rasterize(xyz.detach(), radius.detach(), s.camera, one).front_depth()


class FeatureCNN(nn.Module):
    """A small CNN over source images, trained end to end: [S, 3, h, w] → [S, C, h, w]."""

    def __init__(self, channels: int = 8, hidden: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, hidden, 3, padding=1),
                                 nn.ReLU(), nn.Conv2d(hidden, channels, 3, padding=1))
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def sample_image(img: Tensor, uv: Tensor) -> Tensor:
    """img [S, C, h, w], uv [S, N, 2] pixel coords (centres at +½) → [S, N, C], bilinear."""
    h, w = img.shape[-2:]
    g = torch.stack([2 * uv[..., 0] / w - 1, 2 * uv[..., 1] / h - 1], -1)[:, None]  # [S, 1, N, 2]
    return F.grid_sample(img, g, mode="bilinear", padding_mode="border", align_corners=False)[:, :, 0].transpose(1, 2)


def blend_sources(rgb_s: Tensor, vis: Tensor, logits: Tensor) -> Tensor:
    """Softmax blend of the source colours [S, U, 3] over the sources that see each point (zero
    where none does)."""
    w = torch.softmax(logits.masked_fill(~vis, -1e9), 0) * vis  # [S, U]
    return (w[..., None] * rgb_s).sum(0)


def blend_colors(rgb_s: Tensor, vis: Tensor, learned: Tensor, d_src: Tensor, d_tgt: Tensor, fallback: Tensor,
                 sh_coef: Tensor | None, prior: float, sh_scale: float) -> Tensor:
    """The hybrid colour from the per-source terms (:meth:`Appearance.source_terms`) of the chosen
    sources and the target direction d_tgt [U, 3]: the trained model and the baked tables of
    ``fourd bake --appearance views`` both colour points with this."""
    color = blend_sources(rgb_s, vis, learned + prior * (d_src * d_tgt).sum(-1))
    color = color + (~vis.any(0))[:, None] * fallback
    if sh_coef is not None:
        color = color + sh_scale * torch.tanh(eval_sh(sh_coef, d_tgt))
    return color


class Appearance(nn.Module):
    def __init__(self, feat_dim: int, cnn_channels: int = 8, hidden: int = 32, sh_degree: int = 3,
                 sh_scale: float = 0.25, mode: str = "hybrid", cnn_downsample: int = 2, direction_prior: float = 20.0,
                 view_input: bool = False):
        super().__init__()
        self.cnn_downsample = cnn_downsample
        if mode not in ("hybrid", "blend", "sh"):
            raise ValueError(f"appearance mode must be hybrid, blend or sh, got '{mode}'")
        self.mode, self.sh_scale = mode, sh_scale
        self.n_sh = (sh_degree + 1) ** 2
        self.cnn = FeatureCNN(cnn_channels)
        self.view_input = view_input
        self.blend = nn.Sequential(nn.Linear(feat_dim + cnn_channels + (4 if view_input else 0), hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.sh_head = nn.Linear(feat_dim, self.n_sh * 3)
        self.base = nn.Linear(feat_dim, 3)
        with torch.no_grad():
            self.sh_head.weight.mul_(0.1)
            self.sh_head.bias.zero_()
            # the learned blend starts as the fixed directional prior below and refines it
            self.blend[-1].weight.zero_()
            self.blend[-1].bias.zero_()
        self.direction_prior = direction_prior  # logit per unit of cos(angle between source and target rays)
        self.residual: Tensor | None = None  # [U, 3] the last forward's SH residual (for the trainer's penalty)
        self.use_residual = True  # off inside without_residual()

    @contextmanager
    def without_residual(self):
        """Renders without the SH residual: the blend of the source views alone (what the rig's
        other cameras saw, with nothing fitted to the target camera's own images)."""
        old, self.use_residual = self.use_residual, False
        try:
            yield
        finally:
            self.use_residual = old

    def forward(self, xyz: Tensor, feat: Tensor, radius: Tensor, target: Cameras, sources: list[SourceView],
                uniform: bool = False) -> Tensor:
        """xyz [U, 3], feat [U, D], radius [U] → rgb [U, 3]. ``uniform`` blends visible sources with
        equal weights and nothing learned (the untrained baseline)."""
        d_tgt = F.normalize(xyz - target.centers[0].to(xyz), dim=-1)
        sh_coef = None
        if self.mode != "blend" and not uniform:
            sh_coef = self.sh_head(feat).reshape(-1, self.n_sh, 3)
        if self.mode == "sh" and not uniform:
            return torch.sigmoid(eval_sh(sh_coef, d_tgt))
        rgb_s, vis, learned, d_src = self.source_terms(xyz, feat, radius, sources, d_tgt, uniform)
        if uniform:
            return blend_sources(rgb_s, vis, torch.zeros_like(learned))
        fallback = torch.sigmoid(self.base(feat))
        color = blend_colors(rgb_s, vis, learned, d_src, d_tgt, fallback, None, self.direction_prior, self.sh_scale)
        self.residual = None
        if self.mode == "hybrid" and self.use_residual:  # the sum blend_colors forms with sh_coef, kept for its penalty
            self.residual = self.sh_scale * torch.tanh(eval_sh(sh_coef, d_tgt))
            color = color + self.residual
        return color

    def source_terms(self, xyz: Tensor, feat: Tensor, radius: Tensor, sources: list[SourceView],
                     d_tgt: Tensor | None = None, uniform: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Per source view and point: colour rgb_s [S, U, 3], visibility [S, U], the learned blend
        logit [S, U] (without the directional prior) and the source's ray direction d_src [S, U, 3].
        ``d_tgt`` is needed only by ``view_input`` models."""
        imgs = torch.stack([s.image for s in sources])  # [S, 3, h, w] (one size: the trainer resizes)
        uv_all, vis_all, dirs = [], [], []
        for s in sources:
            uv, inside = visible_points(s.camera, xyz, radius, s.zfront, tuple(s.image.shape[-2:]), s.mask)
            uv_all.append(uv)
            vis_all.append(inside)
            dirs.append(F.normalize(xyz - s.camera.centers[0].to(xyz), dim=-1))
        uv = torch.stack(uv_all)
        vis = torch.stack(vis_all)
        d_src = torch.stack(dirs)
        rgb_s = sample_image(imgs, uv)  # [S, U, 3]
        if uniform:
            return rgb_s, vis, torch.zeros(vis.shape, device=xyz.device), d_src
        k = self.cnn_downsample  # features at 1/k resolution: the CNN is the costliest part on a CPU
        small = F.avg_pool2d(imgs, k) if k > 1 else imgs
        feats = sample_image(self.cnn(small), uv / k)  # [S, U, C]; pixel-centre coordinates scale exactly
        x = [feat.expand(len(sources), -1, -1), feats]
        if self.view_input:
            if d_tgt is None:
                raise ValueError("this model's blend weights depend on the target direction: pass d_tgt")
            x.append(torch.cat([(d_src * d_tgt).sum(-1, keepdim=True), d_src - d_tgt], -1))
        return rgb_s, vis, self.blend(torch.cat(x, -1))[..., 0], d_src
