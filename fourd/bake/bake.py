"""``fourd bake``: evaluate a trained run per frame into a compact streaming file.

Geometry (positions, radius, density) is stored as the model predicts it. Appearance — the
model's image blend + SH residual, which depends on the viewpoint — is baked like a texture, in
two steps per frame:

1. a per-point estimate: each point's colour as the model predicts it from a spread of training
   cameras that see it, reduced by least squares to a colour plus a degree-1 SH residual;
2. an image-space fit (:mod:`fourd.bake.refit`): with the baked geometry fixed a rendered pixel
   is linear in the point colours, so the colours and residuals that best reproduce every
   training image are solved for directly (conjugate gradients, starting from step 1, which
   also fills points no training camera sees).

Step 2 is what keeps the baked file within a few tenths of a dB of the model on held-out cameras
(measured: per-point averaging alone lost 1.6 dB). 17 bytes per point per frame with the SH
residual (4-bit), 12 without, instead of 4K4D's per-source-view colour tables.

``appearance="views"`` bakes those tables instead (:func:`bake_frame_views`): every term of the
model's colour that does not depend on the viewpoint, per training camera, so the viewer
reproduces the model's image exactly (to 8-bit quantization) — at 6 bytes per point per training
camera plus the full SH residual.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fourd.bake.format import BakedFrame, BakeWriter, ViewTables, write_baked
from fourd.bake.refit import fit_colors, neighbours, view_system
from fourd.console import log, progress
from fourd.errors import FourdError
from fourd.model.appearance import draw_depth_maps, visible_points
from fourd.model.sh import sh_basis


FIT_BYTES = 2 << 30  # memory for the compact bake's fit rows (per frame)


def _spread(names: list[str], n: int, mix: bool = False) -> list[str]:
    """``n`` of ``names`` evenly spread; ``mix``: all of them, ordered so that every prefix is
    spread over the rig (0, ½, ¼, ¾, …)."""
    if mix:
        order, seen = [], set()
        step = len(names)
        while len(order) < len(names):
            for i in range(0, len(names), max(step, 1)):
                if i not in seen:
                    seen.add(i)
                    order.append(i)
            step //= 2
            if step == 0:
                step = 1
        return [names[i] for i in order]
    if len(names) <= n:
        return list(names)
    return [names[int(i * len(names) / n)] for i in range(n)]


@torch.no_grad()
def per_point_colors(run, frame: int, xyz: torch.Tensor, feat: torch.Tensor, radius: torch.Tensor,
                     views: list[str], sh: bool, ridge: float = 1.0) -> torch.Tensor:
    """Step 1: coefficients [N, 4 (or 1), 3] — colour and degree-1 residual of every point of the
    frame's geometry from the model's colours for ``views`` (points none of them sees get the
    model's fallback colour). ``run``: a :class:`~fourd.train.run.Run`."""
    model = run.model
    N, dev = xyz.shape[0], xyz.device
    A = torch.zeros(N, 4, 4, device=dev)
    b = torch.zeros(N, 4, 3, device=dev)
    near, far = run.settings.near, run.settings.far
    for name in run.video.cameras_at(frame, views):  # (a camera that dropped the frame: not a view of it)
        full = run.target(frame, name, crop=False, scale=1.0).camera
        zfront = run.rasterize(xyz, radius, full, run.settings_for(1)).front_depth()
        _, vis = visible_points(full, xyz, radius, zfront, tuple(zfront.shape))
        idx = vis.nonzero()[:, 0]
        if idx.numel() == 0:
            continue
        sources = run.sources(frame, full, name)
        draw_depth_maps(sources, xyz, radius, run.rasterize, near, far)
        col = model.appearance(xyz[idx], feat[idx], radius[idx], full, sources).clamp(0, 1)
        Y = sh_basis(torch.nn.functional.normalize(xyz[idx] - full.centers[0].to(dev), dim=-1), 1)
        Y = torch.cat([torch.ones_like(Y[:, :1]), Y[:, 1:]], 1)  # colour(d) = c0 + Σ_j Y_j(d) c_j
        A[idx] += Y[:, :, None] * Y[:, None, :]
        b[idx] += Y[:, :, None] * col[:, None, :]
    seen = A[:, 0, 0] > 0
    fallback = torch.sigmoid(model.appearance.base(feat))  # never seen: the model's fallback colour
    # ridge keeps points seen from few directions near their mean colour
    reg = ridge * torch.diag(torch.tensor([0.0, 1.0, 1.0, 1.0], device=dev)) + 1e-6 * torch.eye(4, device=dev)
    coef = torch.linalg.solve(A + reg, b)
    coef[~seen] = 0
    coef[~seen, 0] = fallback[~seen]
    return coef if sh else coef[:, :1]


@torch.no_grad()
def bake_frame(run, frame: int, views: list[str], sh: bool, fit_views: list[str] | None = None,
               ridge_sh: float = 0.1, iters: int = 15, smooth: float = 1.0) -> BakedFrame:
    """One frame: geometry from the model, appearance from :func:`per_point_colors` refined by the
    image-space fit against the capture's images of ``fit_views`` (all training cameras by default;
    an empty list skips the fit)."""
    model = run.model
    xyz, feat, radius, density = model.geometry_at(model.slot(frame))
    coef = per_point_colors(run, frame, xyz, feat, radius, views, sh)
    fit_views = run.train_cams if fit_views is None else fit_views
    if fit_views:
        degree = 1 if sh else 0
        systems, held = [], 0
        # the training resolution, and as many views (spread over the rig) as FIT_BYTES holds: every
        # view's (pixel, splat, weight) rows stay in memory for the solve — at DNA-Rendering's native
        # sizes all 56 views would need ~18 GB
        for name in _spread(run.video.cameras_at(frame, fit_views), len(fit_views), mix=True):
            tgt = run.target(frame, name, crop=True, scale=run.cfg.image_scale)
            need = tgt.image.shape[0] * tgt.image.shape[1] * (run.cfg.K * 12 + 12)
            if systems and held + need > FIT_BYTES:
                break
            held += need
            frags = run.rasterize(xyz, radius, tgt.camera, run.settings_for(run.cfg.K))
            systems.append(view_system(frags, xyz, radius, density, tgt.camera, tgt.image, run.background, degree))
        graph = neighbours(xyz) if smooth > 0 else None
        coef = fit_colors(systems, coef, ridge_sh=ridge_sh, iters=iters, smooth=smooth, graph=graph)
    rgb = coef[:, 0].clamp(0, 1)
    residual = coef[:, 1:] if sh else None
    return BakedFrame(xyz.float().cpu(), radius.float().cpu(), density.float().cpu(), rgb.float().cpu(),
                      None if residual is None else residual.float().cpu())


@torch.no_grad()
def bake_frame_views(run, frame: int) -> BakedFrame:
    """One frame with the model's exact appearance: per training camera, the point's colour there,
    whether that camera sees it and the learned blend logit (what
    :meth:`~fourd.model.appearance.Appearance.source_terms` computes for a render), plus the
    fallback colour and the SH residual's coefficients."""
    model = run.model
    app = model.appearance
    if app.view_input:
        raise FourdError("this run's blend weights depend on the viewing direction, so its blend cannot be tabulated",
                         run.path, "bake it with --appearance compact (or retrain with this fourd)")
    if app.mode == "sh":
        raise FourdError("an SH-only model has no image blend to tabulate", run.path,
                         "bake it with --appearance compact")
    xyz, feat, radius, density = model.geometry_at(model.slot(frame))
    rgb, vis, logit = [], [], []
    for name in run.train_cams:
        if not run.video.has(frame, name):  # a camera that dropped the frame: it sees no point of it
            N = xyz.shape[0]
            rgb.append(torch.zeros(N, 3))
            vis.append(torch.zeros(N, dtype=torch.bool))
            logit.append(torch.zeros(N))
            continue
        s = run.source(frame, name)
        draw_depth_maps([s], xyz, radius, run.rasterize, run.settings.near, run.settings.far)
        r, v, lg, _ = app.source_terms(xyz, feat, radius, [s])
        rgb.append(r[0].cpu())
        vis.append(v[0].cpu())
        logit.append(lg[0].cpu())
    rgb, vis, logit = torch.stack(rgb), torch.stack(vis), torch.stack(logit)
    fallback = torch.sigmoid(app.base(feat)).cpu()
    sh = app.sh_head(feat).reshape(-1, app.n_sh, 3).cpu() if app.mode == "hybrid" else None
    seen = vis.float().sum(0)
    mean = torch.where(seen[:, None] > 0, (rgb * vis[..., None]).sum(0) / seen.clamp_min(1)[:, None], fallback)
    tables = ViewTables(run.sampler.centers.float().cpu(), rgb, vis, logit, fallback, sh,
                        model.cfg.source_views, app.direction_prior, app.sh_scale, list(run.train_cams))
    return BakedFrame(xyz.float().cpu(), radius.float().cpu(), density.float().cpu(), mean.clamp(0, 1), None, tables)


def bake_run(run, out: str | Path, views: int = 8, sh: bool = True, fit: bool = True,
             frames: list[int] | None = None, appearance: str = "compact", smooth: float = 1.0) -> Path:
    """Bake a trained run (a :class:`~fourd.train.run.Run`, or a run folder, loaded without side
    effects). ``views``: training cameras of the per-point estimate; ``fit``: refine the appearance
    against every training image (see the module docstring); ``frames``: a subset of the capture's
    frames (all by default); ``appearance``: compact (fitted colour + degree-1 SH) or views (the
    model's exact blend tables); ``smooth``: weight of the fit's tie between neighbouring points
    (compact)."""
    if appearance not in ("compact", "views"):
        raise FourdError(f"unknown appearance '{appearance}'", fix="use compact or views")
    if isinstance(run, (str, Path)):
        from fourd.train.run import load_run

        run = load_run(run)
    chosen = _spread(run.train_cams, views)
    ids = list(run.video.frames) if frames is None else [int(f) for f in frames]
    missing = [f for f in ids if f not in run.video.frames]
    if missing:
        raise FourdError(f"frames {missing} are not in the capture", run.path, f"pick from {run.video.frames}")
    writer = BakeWriter(out, run.points.meta["bounds"])  # frame by frame: memory holds one frame
    try:
        with progress("baking", len(ids)) as advance:
            for f in ids:
                writer.add(bake_frame_views(run, f) if appearance == "views"
                           else bake_frame(run, f, chosen, sh, None if fit else [], smooth=smooth))
                run.video.release_images()  # each frame's images are read once: keep none of them
                advance()
    except BaseException:
        writer.abort()
        raise
    meta = {**run.cameras.to_dict(), "held_out": run.eval_cams, "near": run.settings.near, "far": run.settings.far,
            "points_per_pixel": int(run.cfg.K)}  # the viewer and fourd render draw it as trained
    path = writer.close(ids, meta, run.video.fps, tuple(run.cfg.background))
    n = sum(writer.counts)
    log(f"baked {len(ids)} frames, {n} points, {path.stat().st_size / n:.1f} bytes/point → {path}")
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


def export_ply_frames(baked: str | Path, folder: str | Path, gaussians: bool = False) -> Path:
    """Every frame of a .fourd file as a PLY in ``folder``: coloured points with radius and density,
    or (``gaussians``) 3D Gaussian Splatting attributes."""
    from fourd.bake.format import BakedSequence
    from fourd.structures.points import write_ply

    seq, folder = BakedSequence(baked), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for t, fid in enumerate(seq.frames):
        f = seq.frame(t)
        attrs = gaussian_splat_attributes(f) if gaussians else {"colors": f.rgb, "radius": f.radius,
                                                                 "density": f.density}
        write_ply(folder / f"{fid:06d}.ply", f.xyz, attrs)
    return folder
