"""Metrics and losses against references: PSNR and SSIM as scikit-image computes them, the mask
loss on cases with known answers and its gradient's direction."""

import pytest
import torch

from fourd.train.losses import dssim_loss, mask_loss, psnr, ssim


def pair(seed: int, noise: float, shape=(40, 52, 3)):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(shape, generator=g)
    # a smooth image too (SSIM's structure term matters there), with noise on top
    yy, xx = torch.meshgrid(torch.linspace(0, 1, shape[0]), torch.linspace(0, 1, shape[1]), indexing="ij")
    a[..., 1] = 0.5 + 0.4 * torch.sin(6 * xx + 3 * yy)
    b = (a + noise * torch.randn(shape, generator=g)).clamp(0, 1)
    return a, b


@pytest.mark.parametrize("seed,noise", [(0, 0.02), (1, 0.1), (2, 0.3)])
def test_psnr_and_ssim_match_scikit_image(seed, noise):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    gt, pred = pair(seed, noise)
    ref_psnr = peak_signal_noise_ratio(gt.numpy(), pred.numpy(), data_range=1.0)
    ref_ssim = structural_similarity(gt.numpy(), pred.numpy(), channel_axis=-1, data_range=1.0,
                                     gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert abs(psnr(pred, gt) - ref_psnr) < 1e-4
    assert abs(ssim(pred, gt) - ref_ssim) < 1e-5


def test_identical_images_score_perfectly():
    gt, _ = pair(3, 0.0)
    assert ssim(gt, gt) == pytest.approx(1.0, abs=1e-6) and psnr(gt, gt) >= 100


def test_dssim_loss_is_one_minus_ssim_and_descends_toward_the_target():
    gt, pred = pair(4, 0.1)
    assert float(dssim_loss(pred, gt)) == pytest.approx(1 - ssim(pred, gt), abs=1e-6)
    assert float(dssim_loss(gt, gt)) == pytest.approx(0.0, abs=1e-6)
    assert float(dssim_loss(pred[:8, :8], gt[:8, :8])) == 0.0  # smaller than the window: no term
    # grain on a flat image: gradient steps on the loss remove it (SSIM rises, the error falls)
    flat = torch.full((32, 32, 3), 0.4)
    x = (flat + 0.05 * torch.randn(32, 32, 3, generator=torch.Generator().manual_seed(0))).requires_grad_()
    before = ssim(x.detach(), flat)
    for _ in range(50):
        x.grad = None
        dssim_loss(x, flat).backward()
        with torch.no_grad():
            x -= 0.05 * x.grad / x.grad.abs().max()
    assert ssim(x.detach(), flat) > before + 0.2
    assert float((x.detach() - flat).abs().mean()) < 0.5 * 0.05 * 0.8


def test_mask_loss_known_values_and_gradient():
    mask = torch.zeros(8, 8)
    mask[2:6, 2:6] = 1
    assert float(mask_loss(mask.clone(), mask)) == pytest.approx(0.0, abs=1e-6)  # perfect
    assert float(mask_loss(torch.zeros(8, 8), mask)) == pytest.approx(1.0)  # nothing drawn
    half = mask.clone()
    half[2:6, 4:6] = 0  # half the subject drawn: IoU 1/2
    assert float(mask_loss(half, mask)) == pytest.approx(0.5)
    spill = mask.clone()
    spill[0:2, 2:6] = 1  # 8 extra pixels outside: IoU 16/24
    assert float(mask_loss(spill, mask)) == pytest.approx(1 - 16 / 24)
    assert float(mask_loss(spill, mask, "l2")) == pytest.approx(8 / 64)
    # descending the loss grows alpha inside the mask and shrinks it outside
    alpha = torch.full((8, 8), 0.5, requires_grad=True)
    for kind in ("iou", "l2"):
        alpha.grad = None
        mask_loss(alpha, mask, kind).backward()
        assert bool((alpha.grad[mask > 0] < 0).all() and (alpha.grad[mask == 0] > 0).all()), kind
    with pytest.raises(ValueError, match="iou or l2"):
        mask_loss(alpha, mask, "dice")


@pytest.mark.gl
def test_a_run_that_cannot_fit_in_memory_is_refused_up_front(tiny_ev, tmp_path):
    from conftest import tiny_train_config

    from fourd.errors import FourdError
    from fourd.train.memory import estimate
    from fourd.train.trainer import Trainer
    from fourd.datasets import open_dataset

    cfg = tiny_train_config(tiny_ev, tmp_path / "run", memory_limit=0.05)  # 50 MiB: less than torch itself
    with pytest.raises(FourdError, match=r"training would need about .* GiB .* but --memory-limit is 0\.05 GiB") as e:
        Trainer(cfg)
    assert "fix:" in str(e.value)
    assert not (tmp_path / "run").exists()  # refused before anything was written or carved
    # the estimate grows with what it should: frames × points, the crop's fragments
    video = open_dataset(tiny_ev)
    small = estimate(cfg, video, 0)
    big = estimate(tiny_train_config(tiny_ev, tmp_path / "x", carve={"points": 20_000}, K=24), video, 0)
    assert big["points"] == small["points"] * 10 and big["step"] > small["step"] * 2


def test_error_split_puts_each_error_in_its_region():
    from fourd.train.evaluate import error_split

    gt = torch.zeros(48, 48, 3)
    mask = torch.zeros(48, 48)
    mask[12:36, 12:36] = 1
    gt[mask > 0] = 0.6
    inner = gt.clone()
    inner[22:26, 22:26] = 0.2  # an error deep inside the subject
    s = error_split(inner, gt, mask)
    assert s["mse_share_interior"] == pytest.approx(1.0) and s["mse_share_edge"] == 0 and s["mse_share_outside"] == 0
    assert s["psnr_outside"] > 100 and s["psnr_interior"] < 40
    fat = gt.clone()
    fat[10:12, 12:36] = 0.6  # the silhouette drawn 2 px too far up: the band's error
    s = error_split(fat, gt, mask)
    assert s["mse_share_edge"] == pytest.approx(1.0)
    speck = gt.clone()
    speck[2, 2] = 1.0  # a floater far outside
    s = error_split(speck, gt, mask)
    assert s["mse_share_outside"] == pytest.approx(1.0) and s["dssim_share_outside"] > 0.99


def test_random_square_covers_the_image_and_keeps_the_pair_aligned():
    from fourd.train.losses import random_square

    a = torch.arange(40 * 30, dtype=torch.float32).reshape(40, 30, 1)
    b = a * 2
    g = torch.Generator().manual_seed(0)
    seen = torch.zeros(40, 30)
    for _ in range(3000):
        x, y = random_square(a, b, 16, g)
        assert x.shape == (16, 16, 1) and torch.equal(y, 2 * x)  # the same square of both
        idx = x.long().flatten()
        seen.view(-1)[idx] += 1
    assert (seen > 0).all()  # corners and edges too (less often)
    # no window, or one as large as the image: the whole images
    assert random_square(a, b, 0)[0] is a and random_square(a, b, 64)[1] is b
    # a window larger than one side only: clipped to it
    x, _ = random_square(a, b, 35, g)
    assert x.shape == (35, 30, 1)

