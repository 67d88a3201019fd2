"""Losses and image metrics: MSE, soft-IoU mask loss, PSNR, SSIM; LPIPS only when its weights are
on disk (nothing is downloaded)."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor


def edge_weights(mask: Tensor, band: int) -> Tensor | None:
    """[H, W] 0 within ``band`` pixels of the mask's edge (either side), 1 elsewhere; None for band 0."""
    if band <= 0:
        return None
    m = mask[None, None].float()
    k = 2 * band + 1
    grown = F.max_pool2d(m, k, 1, band)
    shrunk = -F.max_pool2d(-m, k, 1, band)
    return (1 - (grown - shrunk))[0, 0]


def mask_loss(alpha: Tensor, mask: Tensor, kind: str = "iou", weight: Tensor | None = None) -> Tensor:
    """``iou``: 1 − soft IoU between rendered alpha and the foreground mask; ``l2``: mean squared
    difference per pixel (penalizes holes inside the mask and spill outside it alike). ``weight``
    [H, W] leaves pixels out (0) or in (1)."""
    if weight is not None:
        alpha, mask = alpha * weight, mask * weight
    if kind == "l2":
        return ((alpha - mask) ** 2).mean()
    if kind != "iou":
        raise ValueError(f"mask loss must be iou or l2, got '{kind}'")
    inter = (alpha * mask).sum()
    union = (alpha + mask - alpha * mask).sum().clamp_min(1e-6)
    return 1 - inter / union


def psnr(pred: Tensor, gt: Tensor) -> float:
    mse = float(((pred.clamp(0, 1) - gt) ** 2).mean())
    return 10 * math.log10(1 / max(mse, 1e-12))


def ssim_map(pred: Tensor, gt: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Per-pixel structural similarity [H-window+1, W-window+1] of two [H, W, 3] images in [0, 1]
    (Gaussian window, as Wang et al.; averaged over channels; differentiable)."""
    x = pred.clamp(0, 1).permute(2, 0, 1)[None]
    y = gt.permute(2, 0, 1)[None]
    g = torch.exp(-((torch.arange(window, device=x.device) - window // 2) ** 2) / (2 * sigma ** 2))
    g = (g / g.sum()).to(x)
    # the Gaussian window is separable: a row pass then a column pass (2·11 taps a pixel instead of
    # 11², the same sums up to rounding), over the five maps at once (it matters as a training loss
    # on a CPU)
    kr = g[None, None, None, :].expand(15, 1, 1, window)
    kc = g[None, None, :, None].expand(15, 1, window, 1)
    m = F.conv2d(F.conv2d(torch.cat([x, y, x * x, y * y, x * y], 1), kr, groups=15), kc, groups=15)
    mx, my, exx, eyy, exy = m.split(3, 1)
    sxx, syy, sxy = exx - mx ** 2, eyy - my ** 2, exy - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    return (((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2)))[0].mean(0)


def ssim(pred: Tensor, gt: Tensor, window: int = 11, sigma: float = 1.5) -> float:
    """Structural similarity of two [H, W, 3] images in [0, 1] (Gaussian window, as Wang et al.)."""
    return float(ssim_map(pred, gt, window, sigma).mean())


def dssim_loss(pred: Tensor, gt: Tensor) -> Tensor:
    """1 − SSIM of two [H, W, 3] images (a training loss; images smaller than the window: 0)."""
    if min(pred.shape[:2]) < 11:
        return pred.new_zeros(())
    return 1 - ssim_map(pred, gt).mean()


def random_square(a: Tensor, b: Tensor, side: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """The same random ``side`` × ``side`` square of two [H, W, ...] images (clipped to their size;
    ``side`` 0, or as large as the image: the whole images). The square's corner is drawn uniformly,
    so pixels nearer the border than ``side`` are inside it less often (a training crop's border is
    its margin of background)."""
    H, W = a.shape[:2]
    if side <= 0 or side >= max(H, W):
        return a, b
    h, w = min(H, side), min(W, side)
    y = int(torch.randint(H - h + 1, (1,), generator=generator))
    x = int(torch.randint(W - w + 1, (1,), generator=generator))
    return a[y:y + h, x:x + w], b[y:y + h, x:x + w]


@functools.lru_cache(maxsize=1)
def lpips_model():
    """An LPIPS network if the ``lpips`` package and its VGG weights are already on disk, else None."""
    try:
        import os

        import lpips  # noqa: F401
        from torch.hub import get_dir

        weights = os.path.join(get_dir(), "checkpoints", "vgg16-397923af.pth")
        if not os.path.isfile(weights):
            raise FileNotFoundError(weights)
        return lpips.LPIPS(net="vgg", verbose=False).eval()
    except Exception as e:  # not installed, or weights absent: skip, never download
        from fourd.console import log

        log(f"[dim]LPIPS unavailable ({type(e).__name__}); perceptual loss and LPIPS metric skipped[/]")
        return None


def lpips_distance(pred: Tensor, gt: Tensor) -> Tensor | None:
    net = lpips_model()
    if net is None:
        return None
    to = lambda t: t.permute(2, 0, 1)[None] * 2 - 1  # noqa: E731
    return net.to(pred.device)(to(pred.clamp(0, 1)), to(gt)).mean()
