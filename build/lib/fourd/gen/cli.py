"""Commands of the static generators — `fourd fit-mesh`, `fourd generate sds|shap-e|point-e`,
`fourd import` — registered on the `fourd` command tree by :func:`add_commands`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import tyro

from fourd.console import log
from fourd.errors import FourdError
from fourd.gen.fit_mesh import FitMeshConfig
from fourd.gen.sds import SDSConfig

Pos = tyro.conf.Positional


def make_fit_mesh(default):
    def fit_mesh_cmd(cfg: Annotated[FitMeshConfig, tyro.conf.arg(name="")] = default) -> None:
        """Fit a textured mesh to one frame of a capture (the DIB-R / pytorch3d tutorial task).

        `fourd fit-mesh --dataset demo --frame 0 --out DIR` starts from an icosphere and optimizes
        vertex offsets, a global shift and a UV texture (or vertex colours) against the frame's images
        and masks. --preset fourd (default), kaolin or pytorch3d selects the published settings; any
        option overrides them. Writes DIR/mesh.obj (+ .mtl, texture .png), mesh.glb, renders.png
        (ground truth | fit for every camera), metrics.json (mask IoU, PSNR, Chamfer to the ground
        truth of synthetic captures) — then `fourd view DIR/mesh.glb`, `fourd render DIR/mesh.glb --orbit`.
        """
        from fourd.gen.fit_mesh import fit_mesh
        from fourd.io import check_output

        check_output(cfg.out, "folder")
        r = fit_mesh(cfg)
        chamfer = f", Chamfer {r['chamfer_percent_of_height']:.2f}% of height" if r.get("chamfer") is not None else ""
        log(f"[bold green]fitted[/] mask IoU {r['iou']:.3f} (min {r['iou_min']:.3f}), PSNR {r['psnr']:.2f} dB{chamfer}, "
            f"{r['ms_per_iteration']:.0f} ms/iteration → {cfg.out}")
        print(json.dumps({k: r[k] for k in ("iou", "iou_min", "psnr", "chamfer", "ms_per_iteration")}))

    return fit_mesh_cmd


def sds_cmd(cfg: Annotated[SDSConfig, tyro.conf.arg(name="")]) -> None:
    """Score distillation (DreamFusion) into a splat cloud through a local diffusion prior:
    `fourd generate sds --prompt "..." --prior DIR`. Writes OUT/points.safetensors,
    OUT/ply/000000.ply, OUT/preview.png."""
    from fourd.gen.sds import generate_sds
    from fourd.io import check_output

    check_output(cfg.out, "folder")
    generate_sds(cfg)


def point_e_cmd() -> None:
    """Point-E: run it yourself and import its point cloud (`fourd import cloud.npz`)."""
    raise FourdError("Point-E is not part of diffusers and fetches its weights at run time", None,
                     "run Point-E yourself, save its point cloud (PointCloud.save → .npz, or .ply), "
                     "then `fourd import cloud.npz --out DIR`")


def shap_e_cmd(prompt: str = "", model: Path | None = None, out: Path = Path("outputs/shap_e"), steps: int = 64,
               guidance_scale: float = 15.0, grid: int = 128, points: int = 200_000, seed: int = 0,
               device: str = "cpu") -> None:
    """Shap-E text → latent → mesh.

    Args:
        prompt: what to generate.
        model: local diffusers Shap-E folder (model_index.json, prior/, text_encoder/, tokenizer/,
            scheduler/, shap_e_renderer/).
        out: output folder (mesh.obj, mesh.glb, mesh.ply, points.safetensors, latent.safetensors).
        steps: diffusion steps of the prior.
        guidance_scale: classifier-free guidance of the prior.
        grid: marching-cubes grid resolution.
        points: surface samples written to points.safetensors.
        seed: random seed.
        device: cpu or cuda.
    """
    from safetensors.torch import save_file

    from fourd.gen.shap_e import latent_to_mesh, load_shap_e, text_to_latent
    from fourd.io import check_output

    if not prompt.strip():
        raise FourdError("the prompt is empty", "--prompt", 'pass --prompt "a red chair"')
    for opt, v, lo in (("--steps", steps, 1), ("--grid", grid, 8), ("--points", points, 1)):
        if v < lo:
            raise FourdError(f"{v} is out of range [{lo}, ...)", opt, f"give {opt} at least {lo}")
    check_output(out, "folder")
    pipe = load_shap_e(model, device)
    latent = text_to_latent(pipe, prompt, steps, guidance_scale, seed)
    mesh = latent_to_mesh(pipe.shap_e_renderer, latent, grid)
    out.mkdir(parents=True, exist_ok=True)
    save_file({"latent": latent.float().cpu().contiguous()}, str(out / "latent.safetensors"))
    for suffix in ("obj", "glb", "ply"):
        mesh.save(out / f"mesh.{suffix}")
    seq = mesh.sample_points(points, seed)
    seq.meta.update({"source": "shap-e", "prompt": prompt})
    seq.save(out / "points.safetensors")
    log(f"Shap-E mesh: {mesh.n_verts} vertices, {mesh.n_faces} faces → {out / 'mesh.glb'} "
        f"(+ {points} surface points in points.safetensors)")


def import_cmd(src: Annotated[Path, tyro.conf.Positional], out: Path = Path("outputs/import"),
               points: int = 200_000, up: Literal["y", "z"] | None = None, seed: int = 0) -> None:
    """Import a mesh or point cloud as a one-frame point sequence for fourd bake / view / render.

    Args:
        src: a mesh (.obj .glb .gltf .ply .off .stl: GET3D outputs, scans, fit-mesh results) or a point
            cloud (.ply, Point-E .npz with coords + R/G/B).
        out: output folder: points.safetensors and ply/000000.ply.
        points: surface samples taken from a mesh (point clouds keep their points).
        up: the file's up axis (default: z for Point-E .npz, y otherwise); fourd is y-up.
        seed: sampling seed.
    """
    from fourd.gen.importers import import_any
    from fourd.io import check_output

    check_output(out, "folder", (src,))
    seq = import_any(src, points, up, seed)
    out.mkdir(parents=True, exist_ok=True)
    seq.save(out / "points.safetensors")
    seq.write_ply_frames(out / "ply")
    r = seq.attributes["radius"]
    log(f"imported {seq.points.shape[0]} points ({seq.meta['kind']}, radius median {float(r.median()):.4g}) → "
        f"{out / 'points.safetensors'}; next: fourd bake {out / 'points.safetensors'} --out scene.fourd")


def add_commands(app, fit_mesh_default: FitMeshConfig | None = None) -> None:
    """Register fit-mesh (its options default to ``fit_mesh_default``), generate {sds, shap-e,
    point-e} and import on the `fourd` command tree."""
    from fourd.cli import add

    add(app, {"fit-mesh": make_fit_mesh(fit_mesh_default or FitMeshConfig()), "import": import_cmd})
    add(app, {"sds": sds_cmd, "shap-e": shap_e_cmd, "point-e": point_e_cmd}, "generate",
        "Generate a static object: sds (text → splats), shap-e (text → mesh).")
