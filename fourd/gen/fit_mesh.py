"""``fourd fit-mesh``: fit a textured triangle mesh to one frame of a multi-view capture.

This is the DIB-R tutorial task (Kaolin) and pytorch3d's "fit a textured mesh" tutorial on any
capture: start from an icosphere around the subject, optimize per-vertex offsets plus a global
shift and the appearance (a UV texture, or vertex colours) through the differentiable mesh
rasterizer (:mod:`fourd.gen.softras`) against the frame's images and masks.

Two published settings are presets (``--preset kaolin | pytorch3d``); every number can be
overridden. Coordinates are normalized so the subject's visual hull spans [−1, 1] along its
longest side, which is the scale both tutorials' learning rates assume.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from fourd.config import resolve_device
from fourd.console import log, progress
from fourd.errors import DataError, FourdError
from fourd.gen.softras import MeshRasterSettings, rasterize_mesh, shade
from fourd.structures.cameras import Cameras
from fourd.structures.mesh import Meshes, icosphere


@dataclass
class FitMeshConfig:
    dataset: str = "demo"  # demo, dna_rendering or a capture path
    frame: int = 0
    out: Path = Path("outputs/fit_mesh")
    preset: Literal["fourd", "kaolin", "pytorch3d"] = "fourd"
    views: int = 0  # training cameras used (0: all); the capture's held-out cameras are never used
    size: int = 128  # image long side in pixels
    level: int = 4  # icosphere subdivision level (4: 2562 vertices, 5120 faces)
    init: Path | None = None  # start from this closed mesh instead of the icosphere
    smooth_lambda: float = 0.0  # > 0: optimize vertices in Nicolet et al.'s smooth parameterization
    coarse_levels: int = 0  # start this many icosphere levels coarser and subdivide during the first half
    iterations: int = 2000
    views_per_iter: int = 2
    appearance: Literal["texture", "vertex"] = "texture"
    texture_size: int = 256  # texture height (width is twice it)
    w_image: float = 0.1
    image_loss: Literal["l1", "l2"] = "l1"
    w_mask: float = 1.0
    mask_loss: Literal["iou", "l2"] = "iou"
    w_laplacian: float = 0.03
    w_flat: float = 0.001
    w_edge: float = 0.0
    w_normal: float = 0.0
    optimizer: Literal["adam", "sgd"] = "adam"
    lr_verts: float = 5e-4
    lr_shift: float = 5e-4
    lr_appearance: float = 5e-2
    lr_decay_every: int = 750  # halve the learning rates every this many iterations (0: never)
    visibility: Literal["torch", "gl"] = "torch"  # nearest-triangle search in torch, or OpenGL face ids
    sigma: float = 1.0  # soft-silhouette width in pixel² at the start (see MeshRasterSettings)
    sigma_final: float = 0.1  # ... annealed geometrically to this: the soft silhouette of overlapping
    # front and back faces reaches ~√σ pixels beyond the edge, which shrinks the fit at a fixed σ
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    eval_size: int = 256
    seed: int = 0
    data_root: Path | None = None
    device: str = "cpu"  # torch device (cpu, cuda, cuda:1, ...); GL visibility reads back to it


def preset_config(name: str, **overrides) -> FitMeshConfig:
    """A fit-mesh preset (fourd, kaolin, pytorch3d: the registry in :mod:`fourd.config`) with overrides."""
    from fourd.config import preset

    return replace(preset(name, "fit-mesh"), **overrides)


@dataclass
class Target:
    camera: Cameras  # in normalized coordinates
    rgb: torch.Tensor  # [H, W, 3] in [0, 1]
    mask: torch.Tensor  # [H, W] float
    name: str

    def to(self, device) -> "Target":
        return Target(self.camera.to(device), self.rgb.to(device), self.mask.to(device), self.name)


@dataclass
class FitState:
    base: Meshes  # starting mesh (normalized coordinates)
    offsets: torch.Tensor
    shift: torch.Tensor
    appearance: torch.Tensor  # texture [h, w, 3] logits, or vertex colours [V, 3] logits
    kind: str
    extra: dict = field(default_factory=dict)
    opt: torch.optim.Optimizer | None = None

    def mesh(self) -> Meshes:
        off = self.offsets
        if "chol" in self.extra:  # "large steps": the parameters are (I + λL)·offsets
            off = torch.cholesky_solve(off, self.extra["chol"])
        verts = self.base.verts + off + self.shift
        col = torch.sigmoid(self.appearance)
        if self.kind == "texture":
            return Meshes(verts, self.base.faces, self.base.face_uvs, col)
        return Meshes(verts, self.base.faces, vertex_colors=col)


def _state(base: Meshes, app: torch.Tensor, cfg: FitMeshConfig, shift: torch.Tensor | None = None) -> FitState:
    st = FitState(base, torch.zeros_like(base.verts, requires_grad=True),
                  (shift if shift is not None else torch.zeros(3, device=base.verts.device)).clone().requires_grad_(),
                  app.detach().clone().requires_grad_(), cfg.appearance)
    st.extra = {"edges": base.edges(), "L": base.laplacian_uniform(), "adj": base.face_adjacency()}
    if cfg.smooth_lambda > 0:
        st.extra["chol"] = smoothing_factor(base, cfg.smooth_lambda)
    if cfg.visibility == "gl":
        from fourd.gl.face_ids import GLFaceIds

        st.extra["gl"] = GLFaceIds(base.faces)
    groups = [{"params": [st.offsets], "lr": cfg.lr_verts}, {"params": [st.shift], "lr": cfg.lr_shift},
              {"params": [st.appearance], "lr": cfg.lr_appearance}]
    st.opt = torch.optim.Adam(groups) if cfg.optimizer == "adam" else torch.optim.SGD(groups, momentum=0.9)
    return st


def smoothing_factor(mesh: Meshes, lam: float) -> torch.Tensor:
    """Cholesky factor of I + λ·(D − A), the graph Laplacian system of Nicolet et al. 2021
    ("Large steps in inverse rendering"): gradient steps taken on u = (I + λL)x move the surface
    smoothly instead of vertex by vertex."""
    e = mesh.edges()
    V = mesh.n_verts
    M = torch.zeros(V, V, dtype=torch.float64, device=mesh.verts.device)
    M[e[:, 0], e[:, 1]] = -lam
    M[e[:, 1], e[:, 0]] = -lam
    M += torch.diag(1.0 - M.sum(1))
    return torch.linalg.cholesky(M).float()


def _coarsen(base: Meshes, cfg: FitMeshConfig) -> Meshes:
    """The same ellipsoid one icosphere level lower (for coarse-to-fine fitting)."""
    n = base.n_faces // 4
    level = int(round(math.log(n / 20, 4)))
    ico = icosphere(level, 1.0, texture_size=1 if base.face_uvs is not None else 0).to(base.verts.device)
    scale = base.verts.abs().max(0).values  # the ellipsoid's semi-axes
    return Meshes(ico.verts * scale, ico.faces, ico.face_uvs, base.texture if base.face_uvs is not None else None)


def _refine(st: FitState, cfg: FitMeshConfig) -> FitState:
    """Subdivide the current mesh and continue from it (optimizer state restarts)."""
    with torch.no_grad():
        cur = Meshes(st.mesh().verts, st.base.faces, st.base.face_uvs, st.base.texture,
                     st.appearance if st.kind == "vertex" else None)
        fine = cur.subdivide()
        app = st.appearance if st.kind == "texture" else fine.vertex_colors
        base = Meshes(fine.verts - st.shift, fine.faces, fine.face_uvs, fine.texture)
    if "gl" in st.extra:
        st.extra["gl"].release()
    return _state(base, app, cfg, st.shift.detach())


def normalize_cameras(cams: Cameras, center: np.ndarray, scale: float) -> Cameras:
    """Cameras for world' = (world − center) / scale: same R, T' = (T + R·center) / scale."""
    c = torch.as_tensor(center, dtype=cams.R.dtype, device=cams.device)
    T = (cams.T + (cams.R @ c[:, None])[..., 0]) / scale
    return Cameras(cams.K, cams.R, T, cams.H, cams.W, D=cams.D, names=cams.names)


def load_targets(video, frame: int, names: list[str], size: int, center, scale) -> list[Target]:
    out = []
    for name in names:
        box = video.view(frame, name, crop_to_mask=True, image=False)  # the subject fills the frame
        bw, bh = box.box[2], box.box[3]
        v = video.view(frame, name, crop_to_mask=True, scale=size / max(bw, bh, 1))
        if v.mask is None:
            raise DataError("this capture has no masks; mesh fitting needs silhouettes", video.path,
                            "add masks (e.g. with a matting model) or use a synthetic capture")
        cam = normalize_cameras(v.camera, center, scale)
        out.append(Target(cam, torch.from_numpy(v.image).float() / 255.0, torch.from_numpy(v.mask).float(), name))
    return out


def subject_box(video, frame: int, names: list[str]) -> tuple[np.ndarray, float, np.ndarray]:
    """Centre, half of the longest side and the half-extents of the frame's visual hull box."""
    from fourd.carve.volume import find_bounds

    cams = video.cameras[[video.camera_names.index(n) for n in names]]
    masks = [video.mask(frame, n) for n in names]
    if any(m is None for m in masks):
        raise DataError("this capture has no masks; mesh fitting needs silhouettes", video.path,
                        "add masks or use a synthetic capture")
    lo, hi = find_bounds([(cams, masks)], margin=0.0)
    return (lo + hi) / 2, float((hi - lo).max() / 2), (hi - lo) / 2


def losses(cfg: FitMeshConfig, st: FitState, mesh: Meshes, targets: list[Target],
           settings: MeshRasterSettings) -> dict[str, torch.Tensor]:
    L, adj = st.extra["L"], st.extra["adj"]
    bg = torch.tensor(cfg.background, device=mesh.verts.device)
    img_l, mask_l = 0.0, 0.0
    gl = st.extra.get("gl")
    for t in targets:
        ids = gl(mesh.verts.detach(), t.camera).to(mesh.verts.device) if gl is not None else None
        fr = rasterize_mesh(mesh.verts, mesh.faces, t.camera, settings, face_ids=ids)
        col = shade(mesh, fr, bg)
        rgb = fr.alpha[..., None] * col + (1 - fr.alpha[..., None]) * bg
        gt = t.rgb
        img_l = img_l + ((rgb - gt).abs().mean() if cfg.image_loss == "l1" else ((rgb - gt) ** 2).mean())
        a, m = fr.alpha, t.mask
        if cfg.mask_loss == "iou":
            mask_l = mask_l + 1 - (a * m).sum() / (a + m - a * m).sum().clamp_min(1e-6)
        else:
            mask_l = mask_l + ((a - m) ** 2).mean()
    n = len(targets)
    out = {"image": img_l / n, "mask": mask_l / n}
    v = mesh.verts
    if cfg.w_laplacian:
        out["laplacian"] = (torch.sparse.mm(L, v) ** 2).sum(-1).mean()
    if cfg.w_flat or cfg.w_normal:
        fn = mesh.face_normals()
        cos = (fn[adj[:, 0]] * fn[adj[:, 1]]).sum(-1)
        if cfg.w_flat:
            out["flat"] = ((1 - cos) ** 2).mean()
        if cfg.w_normal:
            out["normal"] = (1 - cos).mean()
    if cfg.w_edge:
        e = st.extra["edges"]
        out["edge"] = ((v[e[:, 0]] - v[e[:, 1]]) ** 2).sum(-1).mean()
    w = {"image": cfg.w_image, "mask": cfg.w_mask, "laplacian": cfg.w_laplacian, "flat": cfg.w_flat,
         "normal": cfg.w_normal, "edge": cfg.w_edge}
    out["total"] = sum(w[k] * v for k, v in out.items())
    return out


@torch.no_grad()
def evaluate_fit(mesh: Meshes, targets: list[Target], background) -> dict:
    """Hard-coverage mask IoU and PSNR of the unlit textured render per view."""
    bg = torch.tensor(background, device=mesh.verts.device)
    ious, psnrs, images = [], [], []
    for t in targets:
        fr = rasterize_mesh(mesh.verts, mesh.faces, t.camera, MeshRasterSettings(sigma=0.0))
        col = shade(mesh, fr, bg).clamp(0, 1)
        m = t.mask > 0.5
        c = fr.covered
        ious.append(float((m & c).sum()) / max(float((m | c).sum()), 1.0))
        mse = float(((col - t.rgb) ** 2).mean())
        psnrs.append(10 * math.log10(1.0 / max(mse, 1e-10)))
        images.append((t.rgb.cpu(), col.cpu()))
    return {"iou": float(np.mean(ious)), "psnr": float(np.mean(psnrs)), "iou_min": float(np.min(ious)),
            "per_view": [{"camera": t.name, "iou": i, "psnr": p} for t, i, p in zip(targets, ious, psnrs)],
            "_images": images}


def _grid(images, cols: int = 4) -> np.ndarray:
    tiles = [np.concatenate([a.numpy(), b.numpy()], 1) for a, b in images]
    h, w = max(t.shape[0] for t in tiles), max(t.shape[1] for t in tiles)
    rows = math.ceil(len(tiles) / cols)
    g = np.zeros((rows * h, cols * w, 3), np.float32)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        g[r * h:r * h + t.shape[0], c * w:c * w + t.shape[1]] = t
    return (g.clip(0, 1) * 255).round().astype(np.uint8)


def fit_mesh(cfg: FitMeshConfig) -> dict:
    """Run the fit; writes mesh.obj (+ texture), mesh.glb, renders.png, metrics.json into cfg.out."""
    from fourd.datasets import open_dataset
    from fourd.io import atomic_write_text, write_png

    dev = resolve_device(cfg.device)  # before any work
    if cfg.iterations < 0:
        raise FourdError(f"{cfg.iterations} is out of range [0, ...)", "--iterations",
                         "give --iterations ≥ 0 (0 evaluates the starting mesh)")
    torch.set_flush_denormal(True)  # denormals in the soft silhouette's tails cost 30× on CPU
    torch.manual_seed(cfg.seed)
    video = open_dataset(cfg.dataset, cfg.data_root)
    if cfg.frame not in video.frames:
        raise FourdError(f"frame {cfg.frame} is not in the capture ({video.frames[0]}..{video.frames[-1]})",
                         video.path, "pass --frame with one of its frames")
    train = [n for n in video.cameras_at(cfg.frame) if n not in video.held_out]
    if cfg.views:
        train = [train[int(i * len(train) / cfg.views)] for i in range(min(cfg.views, len(train)))]
    center, scale, half = subject_box(video, cfg.frame, train)
    targets = [t.to(dev) for t in load_targets(video, cfg.frame, train, cfg.size, center, scale)]
    evals = [t.to(dev) for t in load_targets(video, cfg.frame, video.cameras_at(cfg.frame), cfg.eval_size, center, scale)]

    if cfg.init is not None:
        base = Meshes.load(cfg.init).validate(cfg.init, manifold=True)
        base = base.with_verts((base.verts - torch.tensor(center, dtype=torch.float32)) / scale)
        if base.face_uvs is None and cfg.appearance == "texture":
            cfg = replace(cfg, appearance="vertex")
            log(f"{cfg.init} has no UV map: fitting vertex colours instead of a texture")
    else:
        # the icosphere stretched to the ellipsoid inscribed in the visual hull's box
        base = icosphere(cfg.level, 1.0, texture_size=cfg.texture_size if cfg.appearance == "texture" else 0)
        base = base.with_verts(base.verts * torch.tensor(half / scale, dtype=torch.float32))
    if cfg.appearance == "texture":
        if base.face_uvs is None:
            raise FourdError("texture fitting needs a UV map", cfg.init, "use --appearance vertex")
        app = torch.zeros(cfg.texture_size, 2 * cfg.texture_size, 3)
        base = Meshes(base.verts, base.faces, base.face_uvs, torch.zeros(1, 1, 3))
    else:
        app = torch.zeros(base.n_verts, 3)
    base, app = base.to(dev), app.to(dev)
    stages = cfg.coarse_levels if cfg.init is None else 0
    for _ in range(stages):  # coarse to fine: start coarser, subdivide back up to --level while fitting
        base = _coarsen(base, cfg)
        app = app if cfg.appearance == "texture" else torch.zeros(base.n_verts, 3, device=dev)
    switch = {int(cfg.iterations * (i + 1) / (2 * stages + 2)) for i in range(stages)} if stages else set()
    st = _state(base, app, cfg)
    settings = MeshRasterSettings(sigma=cfg.sigma)
    rng = np.random.default_rng(cfg.seed)
    cfg.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    curve = []
    texels_seen = None  # texels that ever received gradient (the rest are filled in at the end)
    with progress("fitting mesh", cfg.iterations) as advance:
        for it in range(cfg.iterations):
            if it in switch:
                st = _refine(st, cfg)
            decay = 0.5 ** (it // cfg.lr_decay_every) if cfg.lr_decay_every else 1.0
            for g, lr in zip(st.opt.param_groups, (cfg.lr_verts, cfg.lr_shift, cfg.lr_appearance)):
                g["lr"] = lr * decay
            settings.sigma = cfg.sigma * (cfg.sigma_final / cfg.sigma) ** (it / max(cfg.iterations - 1, 1))
            batch = [targets[i] for i in rng.choice(len(targets), min(cfg.views_per_iter, len(targets)), replace=False)]
            mesh = st.mesh()
            ls = losses(cfg, st, mesh, batch, settings)
            if not torch.isfinite(ls["total"]):
                raise FourdError(f"the loss became {float(ls['total'])} at iteration {it}", None,
                                 "lower the learning rates (--lr-verts) or raise --w-laplacian")
            st.opt.zero_grad(set_to_none=True)
            ls["total"].backward()
            if cfg.appearance == "texture" and st.appearance.grad is not None:
                seen = st.appearance.grad.abs().sum(-1) > 0
                texels_seen = seen if it == 0 or texels_seen is None else texels_seen | seen
            st.opt.step()
            if it % 50 == 0 or it == cfg.iterations - 1:
                curve.append({"it": it, "faces": st.base.n_faces, **{k: float(v.detach()) for k, v in ls.items()}})
            advance(info=f"loss {float(ls['total'].detach()):.4f} mask {float(ls['mask'].detach()):.3f}")
    seconds = time.perf_counter() - t0
    if "gl" in st.extra:
        st.extra["gl"].release()
    mesh = st.mesh().detach()
    if texels_seen is not None:
        mesh.texture = fill_unseen(mesh.texture.cpu(), texels_seen.cpu()).to(dev)
    m = evaluate_fit(mesh, evals, cfg.background)
    images = m.pop("_images")
    mesh = mesh.to("cpu")
    world = mesh.with_verts(mesh.verts * scale + torch.tensor(center, dtype=torch.float32))
    world.save(cfg.out / "mesh.obj")
    world.save(cfg.out / "mesh.glb")

    write_png(cfg.out / "renders.png", _grid(images))
    result = {"iou": m["iou"], "iou_min": m["iou_min"], "psnr": m["psnr"], "iterations": cfg.iterations,
              "seconds": seconds, "ms_per_iteration": 1000 * seconds / max(cfg.iterations, 1),
              "vertices": mesh.n_verts, "faces": mesh.n_faces, "views": len(targets), "eval_views": len(evals),
              "per_view": m["per_view"], "curve": curve}
    result.update(ground_truth_chamfer(cfg, video, world))
    atomic_write_text(cfg.out / "metrics.json", json.dumps(result, indent=1))
    cfg_dict = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    atomic_write_text(cfg.out / "config.json", json.dumps(cfg_dict, indent=1))
    return result


def fill_unseen(texture: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Texels no camera ever saw keep their grey start value and show as specks where the surface
    samples them between seen texels: inpaint them from their seen neighbours (OpenCV Telea)."""
    import cv2

    if bool(seen.all()) or not bool(seen.any()):
        return texture
    img = (texture.clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    hole = (~seen).numpy().astype(np.uint8) * 255
    filled = cv2.inpaint(img, hole, 3, cv2.INPAINT_TELEA)
    out = texture.clone()
    unseen = ~seen
    out[unseen] = torch.from_numpy(filled).float()[unseen] / 255.0
    return out


def ground_truth_chamfer(cfg: FitMeshConfig, video, world: Meshes) -> dict:
    """Chamfer distance to the capture's ground-truth mesh (synthetic captures only), also as a
    percentage of the subject's height."""
    from fourd.carve.metrics import chamfer_to_mesh
    from fourd.datasets.synth import load_ground_truth

    try:
        gv, gf = load_ground_truth(video.path, cfg.frame)
    except DataError:
        return {"chamfer": None}
    pts = world.sample_points(100_000).points.numpy()
    c = chamfer_to_mesh(pts, gv, gf)
    height = float(np.ptp(gv, axis=0).max())
    return {"chamfer": c["chamfer"], "chamfer_percent_of_height": 100 * c["chamfer"] / height,
            "chamfer_detail": c}
