import math

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers", reason="the SDS prior needs the gen extra (installed by .ci/run)")

from fourd.cli import main  # noqa: E402
from fourd.errors import FourdError  # noqa: E402
from fourd.gen.sds import (  # noqa: E402
    DiffusersPrior,
    SDSConfig,
    SplatCloud,
    TargetPrior,
    render_splats,
    run_sds,
    sample_camera,
    view_suffix,
)


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    from tiny_models import tiny_stable_diffusion

    return tiny_stable_diffusion(tmp_path_factory.mktemp("tiny_sd"))


def _disc_target(H=40):
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(H), indexing="ij")
    tgt = torch.ones(3, H, H)
    inside = ((xx - H / 2) ** 2 + (yy - H / 2) ** 2) < (0.3 * H) ** 2
    tgt[:, inside] = torch.tensor([0.9, 0.1, 0.1])[:, None]
    tgt[:, inside & (xx > H / 2)] = torch.tensor([0.1, 0.2, 0.9])[:, None]
    return tgt


def test_sds_converges_to_the_known_optimum_of_a_check_prior(tmp_path):
    """With a prior whose score points at a target image, SDS must reproduce that image."""
    tgt = _disc_target()
    cfg = SDSConfig(prompt="", iterations=200, points=1500, resolution=40, azimuth=(0, 0), elevation=(0, 0),
                    distance=(2.2, 2.2), fov=(50, 50), shading=(1, 0, 0), view_prompts=False, out=tmp_path,
                    preview_every=0, grad_clip=0)
    cam, _, _ = sample_camera(cfg, np.random.default_rng(0))
    res = run_sds(cfg, TargetPrior(tgt))
    with torch.no_grad():
        img = render_splats(res.cloud, cam, 8, "albedo", cam.centers[0], 0.3, cfg.background).permute(2, 0, 1)
        init = render_splats(SplatCloud(1500, 0.5, 0), cam, 8, "albedo", cam.centers[0], 0.3,
                             cfg.background).permute(2, 0, 1)
    psnr = lambda a: -10 * math.log10(float(((a - tgt) ** 2).mean()))  # noqa: E731
    assert psnr(init) < 14 and psnr(img) > psnr(init) + 12, (psnr(init), psnr(img))
    assert res.curve[-1]["loss"] < 0.05 * res.curve[0]["loss"]


def test_sds_gradients_reach_the_splats_through_a_diffusers_prior(tiny_sd):
    prior = DiffusersPrior(tiny_sd)
    cfg = SDSConfig(prompt="a fox", resolution=24, guidance_scale=7.5)
    cloud = SplatCloud(300, 0.5, 0)
    cam, az, el = sample_camera(cfg, np.random.default_rng(1))
    emb = prior.encode([f"a fox, {view_suffix(az, el)}", ""])
    img = render_splats(cloud, cam, 4, "shaded", cam.centers[0], 0.3, cfg.background).permute(2, 0, 1)[None]
    loss = prior.sds_loss(img, (emb[:1], emb[1:]), cfg, torch.Generator().manual_seed(0))
    loss.backward()
    for p in (cloud.xyz, cloud.color_logit, cloud.log_radius, cloud.normal_raw):
        assert p.grad is not None and float(p.grad.abs().sum()) > 0
    # the UNet is not differentiated: its parameters collect no gradient
    assert all(q.grad is None for q in prior.unet.parameters())


def test_view_dependent_prompts():
    assert view_suffix(0, 10) == "front view" and view_suffix(180, 0) == "back view"
    assert view_suffix(-90, 20) == "side view" and view_suffix(30, 75) == "overhead view"


def test_generate_sds_command_writes_a_scene_that_bakes_and_renders(tiny_sd, tmp_path):
    out = tmp_path / "gen"
    assert main(["--quiet", "generate", "sds", "--prompt", "a small red fox", "--prior", str(tiny_sd),
                 "--iterations", "3", "--points", "400", "--resolution", "24", "--out", str(out)]) == 0
    for name in ("points.safetensors", "preview.png", "config.json", "metrics.json", "ply/000000.ply"):
        assert (out / name).is_file(), name
    assert main(["--quiet", "bake", str(out / "points.safetensors"), "--out", str(tmp_path / "s.fourd")]) == 0
    from fourd.bake.format import BakedSequence

    seq = BakedSequence(tmp_path / "s.fourd")
    assert len(seq) == 1 and seq.frame(0).xyz.shape[0] > 0


def test_sds_bad_input(tmp_path, tiny_sd):
    with pytest.raises(FourdError, match="prompt is empty"):
        run_sds(SDSConfig(prompt="  ", prior=tiny_sd, out=tmp_path))
    with pytest.raises(FourdError, match="huggingface-cli download"):
        run_sds(SDSConfig(prompt="a fox", prior=None, out=tmp_path))
    (tmp_path / "not_a_model").mkdir()
    with pytest.raises(FourdError, match="missing: model_index.json"):
        DiffusersPrior(tmp_path / "not_a_model")
    assert main(["--quiet", "generate", "sds", "--prompt", "x", "--prior", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "o")]) == 2
    assert main(["--quiet", "generate", "dreamfusion"]) == 2
    assert main(["--quiet", "generate", "point-e"]) == 2
