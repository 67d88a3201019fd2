"""``fourd generate --method shap-e``: text → Shap-E latent → SDF → mesh, decoded by fourd.

The diffusers ShapEPipeline (loaded from a LOCAL folder) produces the latent. Decoding is done
here rather than by diffusers' ``decode_to_mesh``: the latent is projected to the weights of
Shap-E's implicit MLP, its signed distance is sampled on a grid and meshed with scikit-image's
marching cubes (diffusers' own table-based decoder keeps its table in the checkpoint, so a
freshly initialised renderer has an empty one), and vertex colours are read from the STF colour
head in sRGB (diffusers converts them to linear, which looks washed-out in sRGB viewers).
Shap-E works z-up; the mesh is turned y-up like the rest of fourd.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fourd.errors import FourdError
from fourd.structures.mesh import Meshes, marching_cubes

SHAP_E_HELP = ("download Shap-E in diffusers format to a local folder, e.g. "
               "`huggingface-cli download openai/shap-e --local-dir models/shap-e` on a machine with network "
               "access, then pass --model models/shap-e")
NEED = ["model_index.json", "prior", "text_encoder", "tokenizer", "scheduler", "shap_e_renderer"]


def quiet_diffusers() -> None:
    """No download/loading progress bars from diffusers/transformers inside fourd's own."""
    try:
        import diffusers
        import transformers

        diffusers.utils.logging.disable_progress_bar()
        diffusers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
    except ImportError:
        pass


def load_shap_e(path: str | Path, device: str = "cpu"):
    path = Path(path) if path is not None else None
    if path is None:
        raise FourdError("Shap-E needs its model folder (--model PATH)", None, SHAP_E_HELP)
    missing = [n for n in NEED if not (path / n).exists()]
    if not path.is_dir() or missing:
        raise FourdError(f"not a diffusers Shap-E folder (missing: {', '.join(missing) or 'the folder'})", path,
                         SHAP_E_HELP)
    try:
        from diffusers import ShapEPipeline
    except ImportError:
        raise FourdError("Shap-E needs diffusers and transformers", None, "bash scripts/install.sh --extras=gen") from None
    quiet_diffusers()
    try:
        pipe = ShapEPipeline.from_pretrained(str(path), local_files_only=True)
    except Exception as e:  # noqa: BLE001 - a broken folder fails in many ways inside diffusers
        raise FourdError(f"cannot load Shap-E ({type(e).__name__}: {e})", path, SHAP_E_HELP) from None
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def text_to_latent(pipe, prompt: str, steps: int = 64, guidance_scale: float = 15.0, seed: int = 0) -> torch.Tensor:
    if not prompt.strip():
        raise FourdError("the prompt is empty", None, 'pass --prompt "a red chair"')
    g = torch.Generator().manual_seed(seed)
    out = pipe(prompt, num_inference_steps=steps, guidance_scale=guidance_scale, generator=g,
               output_type="latent", frame_size=32)
    return out.images[:1]


@torch.no_grad()
def _set_mlp(renderer, latent: torch.Tensor) -> None:
    params = renderer.params_proj(latent.to(renderer.dtype))
    for name, p in renderer.mlp.state_dict().items():
        key = f"nerstf.{name}"
        if key in params:
            p.copy_(params[key].squeeze(0))


@torch.no_grad()
def _query(renderer, pts: torch.Tensor, batch: int = 16384):
    sdf, rgb = [], []
    for i in range(0, pts.shape[0], batch):
        out = renderer.mlp(position=pts[None, i:i + batch].to(renderer.dtype), direction=None, ts=None,
                           nerf_level="fine", rendering_mode="stf")
        sdf.append(out.signed_distance[0, :, 0].float())
        rgb.append(out.channels[0].float())
    return torch.cat(sdf), torch.cat(rgb)


@torch.no_grad()
def latent_to_sdf(renderer, latent: torch.Tensor, grid: int = 128) -> torch.Tensor:
    """Shap-E's signed distance on a grid³ over [−1, 1]³ (Shap-E's z-up axes; positive inside)."""
    _set_mlp(renderer, latent)
    ax = torch.linspace(-1.0, 1.0, grid)
    pts = torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)
    sdf, _ = _query(renderer, pts.to(renderer.device))
    return sdf.reshape(grid, grid, grid).cpu()


@torch.no_grad()
def latent_to_mesh(renderer, latent: torch.Tensor, grid: int = 128) -> Meshes:
    """Decode a Shap-E latent into a y-up mesh with sRGB vertex colours."""
    from fourd.gen.importers import Z_UP_TO_Y_UP

    sdf = latent_to_sdf(renderer, latent, grid)
    if not (sdf > 0).any():
        raise FourdError("the decoded shape is empty (the signed distance is negative everywhere)", None,
                         "try another --seed or a higher --guidance-scale")
    # close shapes that touch the box, as Shap-E does: a border of "outside" around the grid
    padded = torch.full((grid + 2,) * 3, -1.0)
    padded[1:-1, 1:-1, 1:-1] = sdf
    step = 2.0 / (grid - 1)
    lo, hi = -1.0 - step, 1.0 + step
    mesh = marching_cubes(-padded, (lo,) * 3, (hi,) * 3)  # fourd's convention: negative inside
    _, rgb = _query(renderer, mesh.verts.to(renderer.device))
    verts = mesh.verts @ Z_UP_TO_Y_UP.T
    return Meshes(verts, mesh.faces, vertex_colors=rgb.clamp(0, 1).cpu())
