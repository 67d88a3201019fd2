"""CLI of the static generators: `fourd fit-mesh`, `fourd generate`, `fourd import`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import tyro

from fourd.console import log
from fourd.errors import FourdError

Pos = tyro.conf.Positional


def fit_mesh_main(argv: list[str]) -> None:
    """Fit a textured mesh to one frame of a capture (the DIB-R / pytorch3d tutorial task).

    `fourd fit-mesh --dataset demo --frame 0 --out DIR` starts from an icosphere and optimizes
    vertex offsets, a global shift and a UV texture (or vertex colours) against the frame's images
    and masks. --preset fourd (default), kaolin or pytorch3d selects the published settings; any
    option overrides them. Writes DIR/mesh.obj (+ .mtl, texture .png), mesh.glb, renders.png
    (ground truth | fit for every camera), metrics.json (mask IoU, PSNR, Chamfer to the ground
    truth of synthetic captures) — then `fourd view DIR/mesh.glb`, `fourd render DIR/mesh.glb --orbit`.
    """
    from fourd.gen.fit_mesh import PRESETS, FitMeshConfig, fit_mesh, preset_config

    argv = list(argv)
    name = "fourd"
    for i, a in enumerate(argv):
        if a == "--preset" and i + 1 < len(argv):
            name = argv[i + 1]
        elif a.startswith("--preset="):
            name = a.split("=", 1)[1]
    if name not in PRESETS:
        raise FourdError(f"unknown preset '{name}' (choose {', '.join(PRESETS)})")
    cfg = tyro.cli(FitMeshConfig, args=argv, default=preset_config(name), prog="fourd fit-mesh",
                   description=(fit_mesh_main.__doc__ or "").strip())
    r = fit_mesh(cfg)
    chamfer = f", Chamfer {r['chamfer_percent_of_height']:.2f}% of height" if r.get("chamfer") is not None else ""
    log(f"[bold green]fitted[/] mask IoU {r['iou']:.3f} (min {r['iou_min']:.3f}), PSNR {r['psnr']:.2f} dB{chamfer}, "
        f"{r['ms_per_iteration']:.0f} ms/iteration → {cfg.out}")
    print(json.dumps({k: r[k] for k in ("iou", "iou_min", "psnr", "chamfer", "ms_per_iteration")}))


def generate_main(argv: list[str]) -> None:
    """Generate a static 3D object that fourd can bake, view and render.

    --method sds      DreamFusion-style score distillation into splats through a local diffusers
                      text-to-image model: `fourd generate --method sds --prompt "..." --prior DIR`
    --method shap-e   Shap-E text → latent → mesh, decoded by fourd: `fourd generate --method shap-e
                      --prompt "..." --model DIR`
    Point-E outputs (.npz/.ply) and any mesh go through `fourd import FILE`.
    `fourd generate --method METHOD --help` lists the method's options.
    """
    argv = list(argv)
    method = None
    for i, a in enumerate(argv):
        if a == "--method" and i + 1 < len(argv):
            method = argv[i + 1]
            del argv[i:i + 2]
            break
        if a.startswith("--method="):
            method = a.split("=", 1)[1]
            del argv[i]
            break
    if method is None:
        if any(a in ("-h", "--help") for a in argv):
            print((generate_main.__doc__ or "").strip())
            return
        raise FourdError("choose a method: --method sds or --method shap-e (Point-E files: fourd import)")
    if method == "sds":
        from fourd.gen.sds import SDSConfig, generate_sds

        cfg = tyro.cli(SDSConfig, args=argv, prog="fourd generate --method sds",
                       description="Score distillation (DreamFusion) into a splat cloud through a local diffusion "
                                   "prior. Writes OUT/points.safetensors, OUT/ply/000000.ply, OUT/preview.png.")
        generate_sds(cfg)
    elif method == "shap-e":
        tyro.cli(shap_e_cmd, args=argv, prog="fourd generate --method shap-e")
    elif method == "point-e":
        raise FourdError("Point-E is not part of diffusers and fetches its weights at run time", None,
                         "run Point-E yourself, save its point cloud (PointCloud.save → .npz, or .ply), "
                         "then `fourd import cloud.npz --out DIR`")
    else:
        raise FourdError(f"unknown method '{method}' (choose sds or shap-e)")


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

    if not prompt.strip():
        raise FourdError("the prompt is empty", None, 'pass --prompt "a red chair"')
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

    seq = import_any(src, points, up, seed)
    out.mkdir(parents=True, exist_ok=True)
    seq.save(out / "points.safetensors")
    seq.write_ply_frames(out / "ply")
    r = seq.attributes["radius"]
    log(f"imported {seq.points.shape[0]} points ({seq.meta['kind']}, radius median {float(r.median()):.4g}) → "
        f"{out / 'points.safetensors'}; next: fourd bake {out / 'points.safetensors'} --out scene.fourd")
