"""``fourd bake``: evaluate a trained run per frame into a compact streaming file.

Geometry (positions, radius, density) is stored as the model predicts it. Appearance — the
model's image blend + SH residual, which depends on the viewpoint — is baked like a texture:
each point's colour is evaluated from a spread of training cameras that see it, then stored as
a view-independent colour plus an optional degree-1 SH residual fitted by least squares. That
is 12 (or 21) bytes per point per frame instead of 4K4D's per-source-view colour tables.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fourd.bake.format import BakedFrame, write_baked
from fourd.console import log, progress
from fourd.errors import FourdError
from fourd.model.sh import sh_basis
from fourd.structures.fragments import RasterSettings


def _spread(names: list[str], n: int) -> list[str]:
    if len(names) <= n:
        return list(names)
    return [names[int(i * len(names) / n)] for i in range(n)]


@torch.no_grad()
def bake_frame(trainer, frame: int, views: list[str], sh: bool, ridge: float = 1.0) -> BakedFrame:
    model = trainer.model
    slot = model.slot(frame)
    xyz, feat, radius, density = model.geometry_at(slot)
    N = xyz.shape[0]
    acc = torch.zeros(N, 3)
    wsum = torch.zeros(N)
    A = torch.zeros(N, 4, 4)
    b = torch.zeros(N, 4, 3)
    for name in views:
        cam = trainer.video.cameras[name].to(trainer.device)
        full = trainer.sampler.target(frame, name, crop=False, scale=1.0).camera
        sf = trainer.rasterize(xyz, radius, full, RasterSettings(K=1, near=trainer.settings.near,
                                                                  far=trainer.settings.far))
        zfront = torch.where(sf.idx[..., 0] >= 0, sf.zbuf[..., 0], torch.full_like(sf.zbuf[..., 0], 1e30))
        uv, z = full.project(xyz)
        ij = uv[0].floor().long()
        H, W = zfront.shape
        inside = (z[0] > 0) & (ij[:, 0] >= 0) & (ij[:, 1] >= 0) & (ij[:, 0] < W) & (ij[:, 1] < H)
        vis = inside & (z[0] <= zfront[ij[:, 1].clamp(0, H - 1), ij[:, 0].clamp(0, W - 1)] + 3 * radius)
        idx = vis.nonzero()[:, 0]
        if idx.numel() == 0:
            continue
        sources = trainer.sampler.sources(frame, cam, name, model.cfg.source_views)
        for s in sources:
            s2 = trainer.rasterize(xyz, radius, s.camera, RasterSettings(K=1, near=trainer.settings.near,
                                                                          far=trainer.settings.far))
            s.zfront = torch.where(s2.idx[..., 0] >= 0, s2.zbuf[..., 0], torch.full_like(s2.zbuf[..., 0], 1e30))
        col = model.appearance(xyz[idx], feat[idx], radius[idx], full, sources).clamp(0, 1)
        acc[idx] += col
        wsum[idx] += 1
        Y = sh_basis(torch.nn.functional.normalize(xyz[idx] - full.centers[0], dim=-1), 1)  # [M, 4]
        A[idx] += Y[:, :, None] * Y[:, None, :]
        b[idx] += Y[:, :, None] * col[:, None, :]
    seen = wsum > 0
    rgb = torch.where(seen[:, None], acc / wsum.clamp_min(1)[:, None],
                      torch.sigmoid(model.appearance.base(feat)))  # never seen: the model's fallback colour
    residual = None
    if sh:
        # least squares per point: colour(d) ≈ Σ_k Y_k(d) c_k over the views that saw it (ridge keeps
        # points seen from few directions near their mean colour)
        from fourd.model.sh import C0

        reg = ridge * torch.diag(torch.tensor([0.0, 1.0, 1.0, 1.0]))
        coef = torch.linalg.solve(A + reg + 1e-6 * torch.eye(4), b)  # [N, 4, 3]
        rgb = torch.where(seen[:, None], C0 * coef[:, 0], rgb)  # the constant term is the stored colour
        residual = torch.where(seen[:, None, None], coef[:, 1:], torch.zeros_like(coef[:, 1:]))
    return BakedFrame(xyz.float(), radius.float(), density.float(), rgb.float(), residual)


def bake_run(run: str | Path, out: str | Path, views: int = 8, sh: bool = True) -> Path:
    from fourd.config import TrainConfig, from_json
    from fourd.train.trainer import Trainer

    run = Path(run)
    cfg_path = run / "config.json"
    if not cfg_path.is_file():
        raise FourdError("not a training run (no config.json)", run, "pass the --out folder of fourd train")
    trainer = Trainer(from_json(TrainConfig, cfg_path.read_text(), str(cfg_path)))
    if not trainer.resume():
        raise FourdError("the run has no checkpoint yet", run / "checkpoints", "train it first")
    chosen = _spread(trainer.train_cams, views)
    frames = []
    with progress("baking", len(trainer.video.frames)) as advance:
        for f in trainer.video.frames:
            frames.append(bake_frame(trainer, f, chosen, sh))
            advance()
    cams = trainer.video.cameras
    meta = {"names": cams.names, "K": cams.K.tolist(), "R": cams.R.tolist(), "T": cams.T.tolist(),
            "H": cams.H.tolist(), "W": cams.W.tolist(), "held_out": trainer.eval_cams,
            "near": trainer.settings.near, "far": trainer.settings.far}
    path = write_baked(out, frames, trainer.video.frames, trainer.points.meta["bounds"], meta, trainer.video.fps,
                       tuple(trainer.cfg.background))
    n = sum(f.xyz.shape[0] for f in frames)
    log(f"baked {len(frames)} frames, {n} points, {path.stat().st_size / n:.1f} bytes/point → {path}")
    return path


def bake_scene(src: str | Path, out: str | Path) -> Path:
    """Bake anything the viewer opens without a model — a point sequence (`fourd carve`,
    `fourd import`, `fourd generate`), a folder of PLY frames or a mesh — into a .fourd file."""
    from fourd.viewer.scene import open_scene

    scene = open_scene(src)
    frames = []
    with progress("baking", len(scene)) as advance:
        for t in range(len(scene)):
            frames.append(scene.frame(t))
            advance()
    lo = torch.stack([f.xyz.min(0).values for f in frames]).min(0).values
    hi = torch.stack([f.xyz.max(0).values for f in frames]).max(0).values
    meta = {"near": scene.near, "far": scene.far}
    path = write_baked(out, frames, list(scene.frames), (lo.numpy(), hi.numpy()), meta, scene.fps, scene.background)
    n = sum(f.xyz.shape[0] for f in frames)
    log(f"baked {len(frames)} frame(s), {n} points, {path.stat().st_size / max(n, 1):.1f} bytes/point → {path}")
    return path


def gaussian_splat_attributes(f: BakedFrame) -> dict:
    """A baked frame as the attributes of a 3D Gaussian Splatting PLY (isotropic Gaussians):
    SH DC and degree-1 rest coefficients (3DGS's channel-major order), logit opacity, log scale,
    identity rotation. Colour = 0.5 + SH(d) there, as here."""
    from fourd.model.sh import C0

    n = f.xyz.shape[0]
    d = f.density.clamp(1e-4, 1 - 1e-4)
    rest = f.sh.permute(0, 2, 1).reshape(n, 9) if f.sh is not None else torch.zeros(n, 9)
    return {"normals": torch.zeros(n, 3), "f_dc": (f.rgb - 0.5) / C0, "f_rest": rest,
            "opacity": torch.log(d / (1 - d)), "scale": torch.log(f.radius)[:, None].expand(n, 3),
            "rot": torch.tensor([1.0, 0, 0, 0]).expand(n, 4)}
