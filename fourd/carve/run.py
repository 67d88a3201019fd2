"""Carve a whole capture: find the volume once, then per frame hull → surface points → colours.

Outputs (in ``out``): ``<frame:06d>.ply`` per frame, ``points.safetensors`` (the packed
:class:`PointSequence` the trainer reads) and ``carve.json`` (config, volume, per-frame stats).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from fourd.carve.hull import Grid, HullSettings, MaskStack, carve_coarse_to_fine, levels_for
from fourd.carve.metrics import edge_offset, mask_disagreement, point_spacing, silhouette_iou, splat_masks
from fourd.carve.surface import hull_mesh, surface_points
from fourd.carve.volume import centroid_rays, check_convention, find_bounds
from fourd.config import CarveConfig
from fourd.console import log, progress
from fourd.datasets.base import MultiViewVideo
from fourd.errors import DataError
from fourd.io import atomic_write_text
from fourd.structures.cameras import Cameras
from fourd.structures.points import PointSequence


def mask_scale(video: MultiViewVideo, names: list[str], max_side: int) -> dict[str, float]:
    """The size :func:`frame_views` reads each camera's masks at, relative to full resolution."""
    out = {}
    for n in names:
        i = video.cameras.index(n)
        out[n] = min(1.0, max_side / max(int(video.cameras.H[i]), int(video.cameras.W[i])))
    return out


def calibration_file(video: MultiViewVideo) -> Path:
    """The file an error about the cameras' calibration names: extri.yml of an EasyVolcap capture,
    else the capture itself."""
    cal = getattr(video, "calibration", None)  # the folder of intri/extri.yml (EasyVolcap)
    return Path(cal) / "extri.yml" if cal is not None else Path(video.path)


def frame_views(video: MultiViewVideo, frame: int, names: list[str], max_side: int, images: bool = False):
    """Undistorted (optionally downscaled) masks — and images — of one frame with their cameras."""
    scale = mask_scale(video, names, max_side)
    views = [video.view(frame, n, scale=scale[n], image=images) for n in names]
    masks = [v.mask for v in views]
    if any(m is None for m in masks):
        fix = (f"cut them with `fourd data masks {video.path} --background PLATES` (a video of the empty scene "
               "per camera), `--key auto` (a plain backdrop: a green screen, a render's black) or `--model "
               "SEGMENTER`, or put a matting tool's masks in masks/<camera>/"
               if video.layout == "easyvolcap" else
               "add the masks to the capture (DNA-Rendering: the annotations file's Mask group), or convert it with "
               "`fourd data convert` and cut them with `fourd data masks`")
        raise DataError("the capture has no masks; carving needs foreground masks", video.path, fix)
    return Cameras.cat([v.camera for v in views]), masks, [v.image for v in views]


def check_frame_masks(masks: list[np.ndarray], names: list[str], frame: int, where) -> None:
    empty = [n for n, m in zip(names, masks) if not m.any()]
    if len(empty) == len(names):
        raise DataError(f"every mask of frame {frame} is empty", where,
                        "check the mask folder for this frame, or leave it out with --frames "
                        "(e.g. --frames 12: starts at frame 12)")
    if len(empty) > (1 - 0.9) * len(names) + 1:
        log(f"[yellow]warning:[/] frame {frame}: empty masks for cameras {empty[:8]} — they vote 'outside'")


def check_cameras_see_volume(cams: Cameras, lo: np.ndarray, hi: np.ndarray, where) -> None:
    corners = torch.tensor([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])] +
                           [list((lo + hi) / 2)], dtype=torch.float32)
    uv, z = cams.project(corners)
    W, H = cams.W[:, None].float(), cams.H[:, None].float()
    # the volume's box seen at all: some corner in front, and its projected box overlaps the image
    front = z > 0
    u0 = torch.where(front, uv[..., 0], torch.full_like(uv[..., 0], float("inf"))).min(1).values
    u1 = torch.where(front, uv[..., 0], torch.full_like(uv[..., 0], -float("inf"))).max(1).values
    v0 = torch.where(front, uv[..., 1], torch.full_like(uv[..., 1], float("inf"))).min(1).values
    v1 = torch.where(front, uv[..., 1], torch.full_like(uv[..., 1], -float("inf"))).max(1).values
    sees = front.any(1) & (u1 > 0) & (v1 > 0) & (u0 < W[:, 0]) & (v0 < H[:, 0])
    blind = [n for n, s in zip(cams.names, sees.tolist()) if not s]
    if blind:
        raise DataError(f"camera(s) {blind} see nothing of the working volume", where,
                        "check their calibration, or leave them out with --cameras")


def front(uv: torch.Tensor, z: torch.Tensor, focal: float, spacing: float, H: int, W: int) -> torch.Tensor:
    """Which of the points projected to ``uv`` [N, 2] at depth ``z`` [N] (one camera of focal
    length ``focal``) are the nearest to it where they land: a coarse z-buffer whose cells hold one
    front point or more, a point visible within two spacings of its cell's nearest."""
    cell = max(1.0, 2.0 * focal * spacing / float(z[z > 0].median())) if (z > 0).any() else 1.0
    gx, gy = int(math.ceil(W / cell)), int(math.ceil(H / cell))
    cx, cy = (uv[:, 0] / cell).floor().long(), (uv[:, 1] / cell).floor().long()
    ok = (z > 0) & (cx >= 0) & (cy >= 0) & (cx < gx) & (cy < gy)
    flat = (cy.clamp(0, gy - 1) * gx + cx.clamp(0, gx - 1))
    zbuf = torch.full((gx * gy,), float("inf"), dtype=z.dtype).scatter_reduce(0, flat[ok], z[ok], "amin")
    return ok & (z <= zbuf[flat] + 2 * spacing)


def pixel_of(uv: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """The pixel [N, 2] (x, y) each point projected to ``uv`` lands on, clamped to the image."""
    px = uv.floor().long()
    px[:, 0].clamp_(0, W - 1)
    px[:, 1].clamp_(0, H - 1)
    return px


def colorize(points: torch.Tensor, normals: torch.Tensor, cams: Cameras, images: list[np.ndarray],
             spacing: float) -> torch.Tensor:
    """Colour per point: the average over cameras that see it (coarse z-buffer), weighted by facing."""
    acc = torch.zeros(points.shape[0], 3, dtype=torch.float64)
    wsum = torch.zeros(points.shape[0], dtype=torch.float64)
    uv, z = cams.project(points)
    for i in range(len(cams)):
        H, W = images[i].shape[:2]
        vis = front(uv[i], z[i], float(cams.K[i, 0, 0]), spacing, H, W)
        to_cam = cams.centers[i] - points
        facing = (torch.nn.functional.normalize(to_cam, dim=1) * normals).sum(1).clamp_min(0)
        w = (facing ** 2) * vis
        px = pixel_of(uv[i], H, W)
        col = torch.from_numpy(images[i][px[:, 1].numpy(), px[:, 0].numpy()]).double() / 255
        acc += w[:, None].double() * col
        wsum += w.double()
    return (acc / wsum.clamp_min(1e-9)[:, None]).float()


FLAG_FLOOR, FLAG_RATIO = 0.015, 4.0  # a mask is an outlier above both: this fraction, this × the frame's median


def outlier_masks(disagreement: dict[str, float], floor: float = FLAG_FLOOR, ratio: float = FLAG_RATIO) -> list[str]:
    """The cameras of one frame whose masks the hull contradicts far more than the others'."""
    med = float(np.median(list(disagreement.values())))
    return [n for n, v in disagreement.items() if v > max(floor, ratio * med)]


def tolerant(masks: list[np.ndarray], pixels: int) -> list[np.ndarray]:
    """Masks grown by ``pixels``: a voxel must project that far outside to be voted out."""
    if pixels <= 0:
        return masks
    import cv2

    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return [cv2.dilate(np.asarray(m, np.uint8), k) > 0 for m in masks]


OFFSET_FLAG, OFFSET_PER_PX = 0.5, 0.9  # an outline this far off its camera's usual; ≈ offset per pixel of erosion


def shrunk_or_grown(stats: list[dict], names: list[str], scale: dict[str, float] | None = None,
                    flag: float = OFFSET_FLAG) -> list[dict]:
    """The masks whose outline sits off where the same camera's masks usually sit against the
    hull (:func:`~fourd.carve.metrics.edge_offset`, per frame in ``stats``): a matte eroded or
    dilated by a pixel or more. Each with ``pixels``, the growth that puts it back at the camera's
    full resolution (negative: shrink; ``scale``: the size the carve read each camera's masks at,
    relative to full). A camera needs three frames for its usual to mean anything."""
    out = []
    for n in names:
        got = [(s["frame"], s["edge_offset"][n]) for s in stats if n in s.get("edge_offset", {})]
        if len(got) < 3:
            continue
        usual = float(np.median([o for _, o in got]))
        for f, o in got:
            d = o - usual
            if abs(d) >= flag:
                px = max(1, int(round(abs(d) / OFFSET_PER_PX / (scale or {}).get(n, 1.0))))
                out.append({"frame": f, "camera": n, "offset": d, "pixels": -int(np.sign(d)) * px})
    if out:
        log(f"[yellow]masks eroded or dilated against their camera's others: {len(out)} "
            f"({sum(o['pixels'] > 0 for o in out)} to grow, {sum(o['pixels'] < 0 for o in out)} to shrink); "
            f"carve.json lists them (masks_offset)[/]")
    return sorted(out, key=lambda o: (o["frame"], o["camera"]))


def mask_consistency(stats: list[dict], names: list[str], floor: float = FLAG_FLOOR, ratio: float = FLAG_RATIO) -> dict:
    """Which masks the carved hull contradicts (:func:`~fourd.carve.metrics.mask_disagreement`: a
    stray blob the other cameras carved away, a hole the vote filled): per frame, a camera whose
    disagreement exceeds ``floor`` and ``ratio`` × the frame's median; and the cameras ranked by
    their mean disagreement, worst first."""
    flagged = []
    for s in stats:
        med = float(np.median(list(s["disagreement"].values())))
        flagged += [{"frame": s["frame"], "camera": n, "disagreement": s["disagreement"][n], "frame_median": med}
                    for n in outlier_masks(s["disagreement"], floor, ratio)]
    mean = {n: float(np.mean([s["disagreement"][n] for s in stats if n in s["disagreement"]] or [0.0]))
            for n in names}
    worst = sorted(mean, key=mean.get, reverse=True)
    if flagged:
        per_cam: dict[str, int] = {}
        for f in flagged:
            per_cam[f["camera"]] = per_cam.get(f["camera"], 0) + 1
        top = sorted(per_cam, key=lambda n: (-per_cam[n], -mean[n]))[:5]
        log(f"[yellow]masks the hull contradicts: {len(flagged)} (camera: frames) "
            f"{', '.join(f'{n}: {per_cam[n]}' for n in top)}; carve.json lists them[/]")
    return {"masks_flagged": flagged,
            "cameras_by_mask_disagreement": [{"camera": n, "disagreement_mean": mean[n]} for n in worst]}


def _try_unanimous(grid: Grid, cams: Cameras, votes, masks, hs: HullSettings, cfg: CarveConfig, frame: int, dev, where,
                   ious: list[float]):
    """The frame carved with every camera required to agree, if its silhouettes match the masks
    better than the tolerant hull's (``ious``): (occupancy, points, normals, spacing, ious,
    disagreement), else None."""
    try:
        occ, p, n, spacing = _carve_frame(grid, cams, votes, dataclasses.replace(hs, vote=1.0), cfg, frame, dev, where)
    except DataError:  # a mask with a hole through the subject: the unanimous hull collapses
        return None
    tight = silhouette_iou(p, cams.to("cpu"), masks, spacing)
    if float(np.mean(tight)) <= float(np.mean(ious)):
        return None
    return occ, p, n, spacing, tight, mask_disagreement(p, cams.to("cpu"), masks, spacing)


def _carve_frame(grid: Grid, cams: Cameras, masks: list[np.ndarray], hs: HullSettings, cfg: CarveConfig, frame: int,
                 dev, where) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """One frame's hull and surface points: (occupancy, points, normals, point spacing)."""
    stack = MaskStack.build(cams, masks, dev)
    occ = carve_coarse_to_fine(grid, stack, hs, levels=levels_for(grid, cfg.coarse_resolution))
    if not occ.any():
        raise DataError(f"frame {frame}: the hull collapsed to zero voxels", where,
                        f"lower --vote (now {cfg.vote}) or check this frame's masks")
    verts, faces = hull_mesh(occ, grid)
    area = float(np.linalg.norm(np.cross(verts[faces[:, 1]] - verts[faces[:, 0]],
                                         verts[faces[:, 2]] - verts[faces[:, 0]]), axis=1).sum() / 2)
    p, n = surface_points(occ, grid, cfg.points, cfg.seed + frame, cfg.outlier_removal)
    return occ, torch.from_numpy(p), torch.from_numpy(n), point_spacing(area, cfg.points)


def _frame(video: MultiViewVideo, f: int, names: list[str], grid: Grid, hs: HullSettings, cfg: CarveConfig, dev,
           lo, hi, first: bool = False, grow: dict[str, int] | None = None):
    """Frame ``f`` carved: (points, normals, colours, its carve.json entry). ``grow``: masks
    grown (> 0) or shrunk by that many pixels before they vote (camera name → pixels)."""
    from fourd.carve.metrics import grow as grown

    tf = time.perf_counter()
    names = video.cameras_at(f, names)  # (a camera that dropped this frame sits it out)
    cams, masks, images = frame_views(video, f, names, cfg.mask_max_side, images=True)
    check_frame_masks(masks, names, f, video.path)
    if first:
        check_cameras_see_volume(cams, lo, hi, video.path)
    if grow:
        masks = [grown(m, grow.get(nm, 0)) for nm, m in zip(names, masks)]
    votes = tolerant(masks, cfg.mask_tolerance)
    occ, p, n, spacing = _carve_frame(grid, cams, votes, hs, cfg, f, dev, video.path)
    sil = splat_masks(p, cams.to("cpu"), spacing)  # once: disagreement and outline offsets
    disagree = mask_disagreement(p, cams.to("cpu"), masks, spacing, silhouettes=sil)
    offsets = [edge_offset(si, m) for si, m in zip(sil, masks)]
    dropped = outlier_masks(dict(zip(names, disagree))) if cfg.drop_outlier_masks else []
    if dropped:  # carve again with those masks abstaining (inside everywhere)
        votes = [np.ones_like(v) if nm in dropped else v for nm, v in zip(names, votes)]
        occ, p, n, spacing = _carve_frame(grid, cams, votes, hs, cfg, f, dev, video.path)
    ious = silhouette_iou(p, cams.to("cpu"), masks, spacing)
    vote = hs.vote
    suspect = outlier_masks(dict(zip(names, disagree)))  # masks the hull contradicts
    if cfg.try_unanimous and hs.vote < 1 and not dropped:
        # every camera agreeing, but the masks the hull contradicts (a hole would cut a
        # tunnel the others cannot see) abstaining: the tight hull of the masks that agree
        held = [np.ones_like(v) if nm in suspect else v for nm, v in zip(names, votes)]
        tight = _try_unanimous(grid, cams, held, masks, hs, cfg, f, dev, video.path, ious)
        if tight is not None:
            occ, p, n, spacing, ious, tight_disagree = tight
            vote = 1.0
            dropped = suspect
            if not suspect:  # the flags stay those the tolerant hull raised (the report's job)
                disagree = tight_disagree
    col = colorize(p, n, cams.to("cpu"), images, spacing)
    return p, n, col, {"frame": f, "voxels": int(occ.sum()), "iou_mean": float(np.mean(ious)),
                       "iou_min": float(np.min(ious)), "spacing": spacing,
                       "iou": {n: float(v) for n, v in zip(names, ious)},
                       "disagreement": {n: float(v) for n, v in zip(names, disagree)},
                       "masks_not_voting": dropped, "vote": vote,
                       "edge_offset": {n: float(v) for n, v in zip(names, offsets)},
                       "seconds": time.perf_counter() - tf}


def carve_sequence(video: MultiViewVideo, cfg: CarveConfig, out: str | Path | None = None,
                   frames: list[int] | None = None) -> tuple[PointSequence, dict]:
    torch.set_flush_denormal(True)
    from fourd.config import resolve_device

    dev = resolve_device(cfg.device)
    frames = list(frames or video.frames)
    names = video.camera_names if cfg.include_held_out else video.train_cameras
    blind = set(video.empty_mask_cameras(names))
    names = [n for n in names if n not in blind]
    hs = HullSettings(vote=cfg.vote, min_views=min(cfg.min_views, len(names)))
    t0 = time.perf_counter()
    if cfg.bounds is not None:
        lo, hi = np.asarray(cfg.bounds[:3], np.float64), np.asarray(cfg.bounds[3:], np.float64)
        if not (hi > lo).all():
            raise DataError(f"--bounds max must exceed min on every axis, got {cfg.bounds}", None, "fix --bounds")
        # the calibration's convention is checked here too (the working volume's search does it otherwise):
        # with the wrong one every voxel of the given box would be carved away, named only as an empty hull
        cams, masks, _ = frame_views(video, frames[0], video.cameras_at(frames[0], names), min(cfg.mask_max_side, 512))
        O, D, used = centroid_rays(cams, masks)
        if len(used) >= 2:
            check_convention(cams, masks, O, D, calibration_file(video))
    else:
        sample = frames[:: max(1, len(frames) // cfg.bounds_frames)][: cfg.bounds_frames]
        fm = []
        for f in sample:
            here = video.cameras_at(f, names)
            cams, masks, _ = frame_views(video, f, here, min(cfg.mask_max_side, 512))
            check_frame_masks(masks, here, f, video.path)
            fm.append((cams, tolerant(masks, cfg.mask_tolerance)))
        lo, hi = find_bounds(fm, settings=hs, margin=cfg.margin, device=dev, where=calibration_file(video))
    grid = Grid.from_bounds(lo, hi, cfg.resolution)
    log(f"working volume {np.round(lo, 3).tolist()} → {np.round(hi, 3).tolist()}, "
        f"grid {grid.shape} of {grid.size:.4g}, {levels_for(grid, cfg.coarse_resolution)} coarse levels")
    pts_list, nrm_list, col_list, stats = [], [], [], []
    with progress("carving", len(frames)) as advance:
        for f in frames:
            p, n, col, st = _frame(video, f, names, grid, hs, cfg, dev, lo, hi, first=f == frames[0])
            pts_list.append(p)
            nrm_list.append(n)
            col_list.append(col)
            stats.append(st)
            advance()
    scale = mask_scale(video, names, cfg.mask_max_side)
    offset = shrunk_or_grown(stats, names, scale)
    if cfg.fix_outlines and offset:
        # the frames with a matte eroded or dilated by a pixel carved again with it put back: an
        # eroded mask in the unanimous pass shaves the hull where only it disagrees
        fixes: dict[int, dict[str, int]] = {}
        for o in offset:
            px = int(np.sign(o["pixels"])) * max(1, round(abs(o["pixels"]) * scale.get(o["camera"], 1.0)))
            fixes.setdefault(int(o["frame"]), {})[o["camera"]] = px
        with progress("carving again with mask outlines put back", len(fixes)) as advance:
            for i, f in enumerate(frames):
                if f in fixes:
                    pts_list[i], nrm_list[i], col_list[i], st = _frame(video, f, names, grid, hs, cfg, dev, lo, hi,
                                                                       grow=fixes[f])
                    # the report keeps the masks as recorded (what training reads them against)
                    st["edge_offset"], st["disagreement"] = stats[i]["edge_offset"], stats[i]["disagreement"]
                    st["masks_grown"] = fixes[f]
                    stats[i] = st
                    advance()
    out_of_step = []
    if cfg.check_sync:
        from fourd.carve.sync_check import out_of_step as check_sync

        out_of_step = check_sync(video, names, frames, pts_list, [s["spacing"] for s in stats], cfg.mask_max_side)
    seq = PointSequence.from_list(pts_list, frames, {"normals": nrm_list, "colors": col_list},
                                  meta={"bounds": [lo.tolist(), hi.tolist()], "source": str(video.path)})
    report = {"config": dataclasses.asdict(cfg), "bounds": [lo.tolist(), hi.tolist()], "grid": list(grid.shape),
              "voxel_size": grid.size, "cameras": names, "frames": stats,
              "iou_mean": float(np.mean([s["iou_mean"] for s in stats])),
              "frames_unanimous": sum(s["vote"] == 1.0 for s in stats),
              **mask_consistency(stats, names),
              "masks_offset": offset,
              "cameras_out_of_step": out_of_step,
              "seconds": time.perf_counter() - t0}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        seq.write_ply_frames(out)
        seq.save(out / "points.safetensors")
        atomic_write_text(out / "carve.json", json.dumps(report, indent=2))
    return seq, report
