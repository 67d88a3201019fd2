"""``fourd generate sds``: text-to-3D by Score Distillation Sampling (DreamFusion).

The 3D representation is a cloud of coloured, oriented splats rendered by fourd's own
differentiable point renderer (the same rasterizer + compositor the 4D model trains through).
Each step renders a random camera with random shading — albedo, Lambertian-shaded, or
textureless (white albedo, shading only) — and a light near the camera; a 2D diffusion prior
scores the render under a view-dependent prompt ("…, front view" / "side view" / "back view" /
"overhead view") and its denoising residual is pushed back into the splats:

    ∇θ L_SDS = E_t,ε [ w(t) (ε̂_φ(z_t; y, t) − ε) ∂z/∂θ ],  ε̂ with classifier-free guidance.

The prior is a diffusers pipeline read from a LOCAL folder only (nothing is downloaded); tests
build a tiny random one in code. :class:`TargetPrior` is a check prior whose score points at a
known image, so the optimisation's convergence can be tested without a diffusion model.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from fourd.console import log, progress
from fourd.errors import FourdError
from fourd.structures.cameras import Cameras
from fourd.structures.fragments import RasterSettings

SD_HELP = ("download a Stable Diffusion model in diffusers format to a local folder, e.g. "
           "`huggingface-cli download stabilityai/stable-diffusion-2-1-base --local-dir models/sd21` "
           "on a machine with network access, then pass --prior models/sd21")


@dataclass
class SDSConfig:
    prompt: str = ""  # what to generate, e.g. "a DSLR photo of a corgi"
    negative_prompt: str = ""  # the unconditional branch of classifier-free guidance
    prior: Path | None = None  # local diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/)
    out: Path = Path("outputs/generate")  # output folder
    points: int = 4096  # splats
    init_radius: float = 0.5  # points start uniformly in a ball of this radius (the scene is ~unit size)
    iterations: int = 3000
    batch: int = 1
    resolution: int = 64  # render size; upsampled to the prior's resolution
    K: int = 8
    lr: float = 1e-2
    lr_color: float = 5e-2
    guidance_scale: float = 100.0  # DreamFusion uses 100 with Imagen
    t_min: float = 0.02
    t_max: float = 0.98
    weighting: Literal["sds", "uniform"] = "sds"  # w(t) = 1 − ᾱ_t (DreamFusion) or 1
    grad_clip: float = 1.0  # clip the parameters' gradient norm (0: off)
    view_prompts: bool = True  # append "front/side/back/overhead view"
    shading: tuple[float, float, float] = (0.2, 0.5, 0.3)  # probabilities of albedo / shaded / textureless
    ambient: float = 0.3
    distance: tuple[float, float] = (2.0, 2.6)
    elevation: tuple[float, float] = (-10.0, 45.0)  # degrees
    azimuth: tuple[float, float] = (-180.0, 180.0)  # degrees, 0 = front (+z looking at −z)
    fov: tuple[float, float] = (40.0, 70.0)  # vertical field of view, degrees
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    seed: int = 0
    device: str = "cpu"
    preview_every: int = 500


# ------------------------------------------------------------------ representation
class SplatCloud(torch.nn.Module):
    """N splats with position, albedo, radius, density and a normal (for shading)."""

    def __init__(self, n: int, radius: float = 0.5, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        d = F.normalize(torch.randn(n, 3, generator=g), dim=-1)
        xyz = d * radius * torch.rand(n, 1, generator=g) ** (1 / 3)
        spacing = radius * (4 / 3 * math.pi / n) ** (1 / 3)
        self.xyz = torch.nn.Parameter(xyz)
        self.color_logit = torch.nn.Parameter(torch.zeros(n, 3))
        self.log_radius = torch.nn.Parameter(torch.full((n,), math.log(1.5 * spacing)))
        self.density_logit = torch.nn.Parameter(torch.full((n,), 1.0))
        self.normal_raw = torch.nn.Parameter(d.clone())

    @property
    def albedo(self) -> Tensor:
        return torch.sigmoid(self.color_logit)

    @property
    def radius(self) -> Tensor:
        return self.log_radius.exp()

    @property
    def density(self) -> Tensor:
        return torch.sigmoid(self.density_logit)

    @property
    def normals(self) -> Tensor:
        return F.normalize(self.normal_raw, dim=-1)

    def to_sequence(self):
        from fourd.structures.points import PointSequence

        with torch.no_grad():
            keep = self.density > 0.05
            return PointSequence.from_list(
                [self.xyz[keep].cpu()], [0],
                {"colors": [self.albedo[keep].cpu()], "radius": [self.radius[keep].cpu()[:, None]],
                 "density": [self.density[keep].cpu()[:, None]], "normals": [self.normals[keep].cpu()]},
                meta={"source": "sds"})


def render_splats(cloud: SplatCloud, camera: Cameras, K: int, shading: str, light: Tensor,
                  ambient: float, background) -> Tensor:
    """[H, W, 3] render under ``shading`` in {albedo, shaded, textureless} with a point light."""
    from fourd.render.compositor import composite
    from fourd.render.rasterize import rasterize_points

    xyz, r = cloud.xyz, cloud.radius
    frags = rasterize_points(xyz, r, camera, RasterSettings(K=K, near=0.05, far=100.0))
    if shading == "albedo":
        col = cloud.albedo
    else:
        ldir = F.normalize(light - xyz, dim=-1)
        n = cloud.normals
        # two-sided: a splat's normal may face either way; shading uses the side facing the camera
        view = F.normalize(camera.centers[0].to(xyz) - xyz, dim=-1)
        n = torch.where(((n * view).sum(-1, keepdim=True)) < 0, -n, n)
        lam = ambient + (1 - ambient) * (n * ldir).sum(-1, keepdim=True).clamp_min(0)
        base = cloud.albedo if shading == "shaded" else torch.ones_like(cloud.albedo)
        col = base * lam
    return composite(frags, xyz, r, cloud.density, col, camera, background).rgb


# ------------------------------------------------------------------ cameras
def view_suffix(azimuth_deg: float, elevation_deg: float) -> str:
    if elevation_deg > 60:
        return "overhead view"
    a = (azimuth_deg + 180) % 360 - 180
    if abs(a) < 45:
        return "front view"
    if abs(a) > 135:
        return "back view"
    return "side view"


def sample_camera(cfg: SDSConfig, rng: np.random.Generator) -> tuple[Cameras, float, float]:
    az = rng.uniform(*cfg.azimuth)
    el = rng.uniform(*cfg.elevation)
    dist = rng.uniform(*cfg.distance)
    fov = rng.uniform(*cfg.fov)
    a, e = math.radians(az), math.radians(el)
    eye = [dist * math.cos(e) * math.sin(a), dist * math.sin(e), dist * math.cos(e) * math.cos(a)]
    cam = Cameras.look_at(eye, [0.0, 0.0, 0.0], fov_y_deg=fov, H=cfg.resolution, W=cfg.resolution)
    return cam, az, el


# ------------------------------------------------------------------ priors
class TargetPrior:
    """A check prior with a known optimum: its "denoising residual" is the render minus a target
    image, so SDS descends ½‖x − target‖² and must converge to the target (tests use it)."""

    def __init__(self, target: Tensor):
        self.target = target  # [3, H, W] in [0, 1]

    def encode(self, prompts: list[str]):
        return prompts

    def sds_loss(self, images: Tensor, cond, cfg: SDSConfig, generator: torch.Generator) -> Tensor:
        tgt = F.interpolate(self.target[None], size=images.shape[-2:], mode="bilinear", align_corners=False)
        grad = (images - tgt).detach()
        return 0.5 * ((images - (images - grad).detach()) ** 2).sum() / images.shape[0]


class DiffusersPrior:
    """Stable-Diffusion-style prior from a local diffusers folder: text encoder + tokenizer, UNet,
    noise scheduler, and (for latent models) the VAE."""

    def __init__(self, path: str | Path, device: str = "cpu", dtype=torch.float32):
        from fourd.gen.local_models import load_local_pipeline

        pipe = load_local_pipeline(path, ["model_index.json", "unet", "text_encoder", "tokenizer", "scheduler"],
                                   "diffusion model", SD_HELP)
        self.unet = pipe.unet.to(device, dtype).eval().requires_grad_(False)
        self.vae = getattr(pipe, "vae", None)
        if self.vae is not None:
            self.vae = self.vae.to(device, dtype).eval().requires_grad_(False)
        self.text_encoder = pipe.text_encoder.to(device).eval().requires_grad_(False)
        self.tokenizer = pipe.tokenizer
        self.scheduler = pipe.scheduler
        self.device, self.dtype = device, dtype
        self.alphas = self.scheduler.alphas_cumprod.to(device)
        self.T = int(self.scheduler.config.num_train_timesteps)
        if self.vae is not None:
            self.vae_scale = float(getattr(self.vae.config, "scaling_factor", 0.18215))
            self.resolution = int(self.unet.config.sample_size) * 2 ** (len(self.vae.config.block_out_channels) - 1)
        else:
            self.resolution = int(self.unet.config.sample_size)

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> Tensor:
        tok = self.tokenizer(prompts, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt")
        return self.text_encoder(tok.input_ids.to(self.device))[0]

    def sds_loss(self, images: Tensor, cond: tuple[Tensor, Tensor], cfg: SDSConfig,
                 generator: torch.Generator) -> Tensor:
        """images [B, 3, h, w] in [0, 1]; cond = (text embeddings [B, L, D], unconditional [B, L, D])."""
        x = F.interpolate(images, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False)
        x = x.to(self.dtype) * 2 - 1
        if self.vae is not None:
            latents = self.vae.encode(x).latent_dist.sample(generator) * self.vae_scale
        else:
            latents = x
        B = latents.shape[0]
        t = torch.randint(int(cfg.t_min * self.T), int(cfg.t_max * self.T) + 1, (B,), generator=generator)
        noise = torch.randn(latents.shape, generator=generator).to(latents)
        with torch.no_grad():
            noisy = self.scheduler.add_noise(latents, noise, t.to(self.device))
            text, uncond = cond
            eps = self.unet(torch.cat([noisy, noisy]), torch.cat([t, t]).to(self.device),
                            encoder_hidden_states=torch.cat([text, uncond])).sample
            eps_text, eps_uncond = eps.chunk(2)
            eps_hat = eps_uncond + cfg.guidance_scale * (eps_text - eps_uncond)
        w = (1 - self.alphas[t.to(self.device)]).view(B, 1, 1, 1) if cfg.weighting == "sds" else 1.0
        grad = torch.nan_to_num(w * (eps_hat - noise))
        # d/dlatents of ½‖latents − (latents − grad)‖² is grad: the UNet is never differentiated
        return 0.5 * ((latents - (latents - grad).detach()) ** 2).sum() / B


def load_prior(path: Path | None, device: str):
    if path is None:
        raise FourdError("score distillation needs a 2D diffusion prior (--prior PATH)", None, SD_HELP)
    return DiffusersPrior(path, device)


# ------------------------------------------------------------------ optimisation
@dataclass
class SDSResult:
    cloud: SplatCloud
    seconds: float
    curve: list = field(default_factory=list)


def run_sds(cfg: SDSConfig, prior=None) -> SDSResult:
    """Optimise a splat cloud against ``prior`` (default: the local diffusers model at cfg.prior)."""
    if not cfg.prompt.strip() and not isinstance(prior, TargetPrior):
        raise FourdError("the prompt is empty", None, 'pass --prompt "a DSLR photo of a corgi"')
    if cfg.iterations < 1 or cfg.points < 1:
        raise FourdError("--iterations and --points must be at least 1", "--iterations", "pass e.g. --iterations 3000")
    if not (0 <= cfg.t_min < cfg.t_max <= 1):
        raise FourdError(f"need 0 ≤ t-min < t-max ≤ 1, got {cfg.t_min}, {cfg.t_max}", "--t-min", "e.g. --t-min 0.02 --t-max 0.98")
    torch.manual_seed(cfg.seed)
    prior = prior or load_prior(cfg.prior, cfg.device)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    cloud = SplatCloud(cfg.points, cfg.init_radius, cfg.seed).to(cfg.device)
    opt = torch.optim.Adam([
        {"params": [cloud.xyz, cloud.log_radius, cloud.density_logit, cloud.normal_raw], "lr": cfg.lr},
        {"params": [cloud.color_logit], "lr": cfg.lr_color}])
    # one embedding per view suffix, computed once
    suffixes = ["front view", "side view", "back view", "overhead view"] if cfg.view_prompts else [""]
    prompts = [f"{cfg.prompt}, {s}" if s else cfg.prompt for s in suffixes]
    emb = prior.encode(prompts + [cfg.negative_prompt])
    if isinstance(emb, Tensor):
        conds = {s: (emb[i:i + 1], emb[-1:]) for i, s in enumerate(suffixes)}
    else:
        conds = {s: None for s in suffixes}
    shadings = ["albedo", "shaded", "textureless"]
    p = np.asarray(cfg.shading, np.float64)
    p = p / p.sum()
    cfg.out.mkdir(parents=True, exist_ok=True)
    curve = []
    t0 = time.perf_counter()
    with progress("score distillation", cfg.iterations) as advance:
        for it in range(cfg.iterations):
            imgs, embs = [], []
            for _ in range(cfg.batch):
                cam, az, el = sample_camera(cfg, rng)
                light = cam.centers[0] + torch.from_numpy(rng.normal(0, 0.5, 3)).float()
                shading = shadings[int(rng.choice(3, p=p))]
                img = render_splats(cloud, cam.to(cfg.device), cfg.K, shading, light.to(cfg.device), cfg.ambient,
                                    cfg.background)
                imgs.append(img.permute(2, 0, 1))
                embs.append(conds[view_suffix(az, el) if cfg.view_prompts else ""])
            images = torch.stack(imgs)
            cond = None
            if embs[0] is not None:
                cond = (torch.cat([e[0] for e in embs]), torch.cat([e[1] for e in embs]))
            loss = prior.sds_loss(images, cond, cfg, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(cloud.parameters(), cfg.grad_clip)
            opt.step()
            with torch.no_grad():
                cloud.log_radius.clamp_(math.log(1e-3), math.log(0.2))
            if it % 50 == 0 or it == cfg.iterations - 1:
                curve.append({"it": it, "loss": float(loss.detach())})
            if cfg.preview_every and (it + 1) % cfg.preview_every == 0:
                write_preview(cloud, cfg, cfg.out / "preview.png")
            advance(info=f"loss {float(loss.detach()):.4g}")
    return SDSResult(cloud, time.perf_counter() - t0, curve)


@torch.no_grad()
def write_preview(cloud: SplatCloud, cfg: SDSConfig, path: Path, n: int = 8, size: int = 128) -> Path:
    """Albedo (top) and textureless (bottom) renders from n azimuths."""

    from fourd.io import write_png

    rows = []
    for shading in ("albedo", "textureless"):
        tiles = []
        for i in range(n):
            a = 2 * math.pi * i / n
            d = sum(cfg.distance) / 2
            eye = [d * math.sin(a) * math.cos(0.3), d * math.sin(0.3), d * math.cos(a) * math.cos(0.3)]
            cam = Cameras.look_at(eye, [0, 0, 0], fov_y_deg=sum(cfg.fov) / 2, H=size, W=size).to(cfg.device)
            img = render_splats(cloud, cam, cfg.K, shading, cam.centers[0], cfg.ambient, cfg.background)
            tiles.append(img.clamp(0, 1).cpu().numpy())
        rows.append(np.concatenate(tiles, 1))
    grid = (np.concatenate(rows, 0) * 255).round().astype(np.uint8)
    return write_png(path, grid)


def generate_sds(cfg: SDSConfig, prior=None) -> dict:
    """Run SDS and write points.safetensors, a PLY, preview.png, config.json and metrics.json."""
    from fourd.io import atomic_write_text

    res = run_sds(cfg, prior)
    seq = res.cloud.to_sequence()
    seq.meta.update({"prompt": cfg.prompt, "bounds": [b.tolist() for b in seq.bounds()]})
    seq.save(cfg.out / "points.safetensors")
    seq.write_ply_frames(cfg.out / "ply")
    write_preview(res.cloud, cfg, cfg.out / "preview.png")
    cfg_dict = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    atomic_write_text(cfg.out / "config.json", json.dumps(cfg_dict, indent=1))
    summary = {"points": int(seq.points.shape[0]), "seconds": res.seconds,
               "ms_per_iteration": 1000 * res.seconds / cfg.iterations, "curve": res.curve}
    atomic_write_text(cfg.out / "metrics.json", json.dumps(summary, indent=1))
    log(f"{summary['points']} splats after {cfg.iterations} iterations ({summary['ms_per_iteration']:.0f} ms each) "
        f"→ {cfg.out / 'points.safetensors'}")
    return summary
