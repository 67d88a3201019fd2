"""``fourd generate shap-e``: text → Shap-E latent → SDF → mesh, decoded by fourd.

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
from fourd.structures.isosurface import marching_cubes
from fourd.structures.mesh import Meshes

SHAP_E_HELP = ("download Shap-E in diffusers format to a local folder, e.g. "
               "`huggingface-cli download openai/shap-e --local-dir models/shap-e` on a machine with network "
               "access, then pass --model models/shap-e")
NEED = ["model_index.json", "prior", "text_encoder", "tokenizer", "scheduler", "shap_e_renderer"]


def load_shap_e(path: str | Path, device: str = "cpu"):
    from fourd.gen.local_models import load_local_pipeline

    pipe = load_local_pipeline(path, NEED, "Shap-E", SHAP_E_HELP, "ShapEPipeline")
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
