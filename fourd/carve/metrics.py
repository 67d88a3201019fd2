"""Carving quality: silhouette IoU of re-projected points, Chamfer distance to a ground-truth mesh."""

from __future__ import annotations

import numpy as np
import torch

from fourd.structures.cameras import Cameras


def splat_masks(points: torch.Tensor, cams: Cameras, spacing: float) -> list[np.ndarray]:
    """Per camera, the silhouette of the points: the pixels they land on, with gaps narrower than
    their projected spacing closed (morphological closing, which fills holes without growing the
    outline)."""
    import cv2

    uv, z = cams.project(points)
    out = []
    for i in range(len(cams)):
        H, W = int(cams.H[i]), int(cams.W[i])
        ok = z[i] > 0
        ij = torch.floor(uv[i][ok]).long()
        inb = (ij[:, 0] >= 0) & (ij[:, 1] >= 0) & (ij[:, 0] < W) & (ij[:, 1] < H)
        hit = np.zeros((H, W), np.uint8)
        ij = ij[inb].cpu().numpy()
        hit[ij[:, 1], ij[:, 0]] = 1
        r = float(cams.K[i, 0, 0]) * spacing / float(z[i][ok].median()) if ok.any() else 1.0
        k = max(1, int(round(r)))
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
        out.append(cv2.morphologyEx(np.pad(hit, k), cv2.MORPH_CLOSE, disk)[k:-k, k:-k] > 0)
    return out


def silhouette_iou(points: torch.Tensor, cams: Cameras, masks: list[np.ndarray], spacing: float) -> list[float]:
    ious = []
    for s, m in zip(splat_masks(points, cams, spacing), masks):
        union = (s | m).sum()
        ious.append(float((s & m).sum() / union) if union else 1.0)
    return ious


def mask_disagreement(points: torch.Tensor, cams: Cameras, masks: list[np.ndarray], spacing: float,
                      tolerance: int = 2, silhouettes: list[np.ndarray] | None = None) -> list[float]:
    """Per camera, the fraction of its mask the carved hull contradicts: foreground where the hull's
    projection is empty (a stray blob: the other cameras carved that space away) plus enclosed holes
    in the mask that the hull fills (the vote kept the space the hole would have cut). The hull of
    a few views is fatter than the subject, so the other direction (hull beyond the mask) says
    nothing; ``tolerance`` pixels absorb the splat outline's roughness. ``silhouettes``: the
    points' :func:`splat_masks`, when the caller has them already."""
    out = []
    for s, m in zip(silhouettes if silhouettes is not None else splat_masks(points, cams, spacing), masks):
        m = np.asarray(m, bool)
        area = int(m.sum())
        if not area:
            out.append(0.0)
            continue
        stray, holes = hull_contradictions(s, m, tolerance)
        out.append(float((stray.sum() + holes.sum()) / area))
    return out


def hull_contradictions(silhouette: np.ndarray, mask: np.ndarray, tolerance: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(stray, holes) [H, W] bool: the mask's foreground farther than ``tolerance`` px outside the
    hull's silhouette, and the mask's enclosed holes farther than ``tolerance`` px inside it."""
    import cv2
    from scipy import ndimage

    k = np.ones((2 * tolerance + 1, 2 * tolerance + 1), np.uint8)
    s = np.asarray(silhouette, np.uint8)
    m = np.asarray(mask, bool)
    stray = m & ~(cv2.dilate(s, k) > 0)
    holes = ndimage.binary_fill_holes(m) & ~m & (cv2.erode(s, k) > 0)
    return stray, holes


def edge_offset(silhouette: np.ndarray, mask: np.ndarray, band: int = 3) -> float:
    """How far the mask's outline lies outside the hull's silhouette, in pixels on the average
    (negative: inside): their areas' difference within ``band`` px of the silhouette's outline,
    per pixel of the mask's outline. The band keeps a hole or a blob away from the edge out of it.
    A hull carved with a tolerant vote is fatter than the subject by an amount that depends on the
    view, so the figure means something only against the same camera's other frames
    (:func:`shrunk_or_grown`): there, a mask eroded by one pixel reads 0.3–1.1 lower and a dilated
    one 0.5–1.0 higher, while intact masks stay within ±0.45 (512² test captures)."""
    import cv2

    s = np.asarray(silhouette, np.uint8)
    m = np.asarray(mask, np.uint8)
    outline = int((m - cv2.erode(m, np.ones((3, 3), np.uint8))).sum())
    if not outline or not s.any():
        return 0.0
    inside = cv2.distanceTransform(s, cv2.DIST_L2, 5)
    outside = cv2.distanceTransform(1 - s, cv2.DIST_L2, 5)
    near = np.where(s > 0, inside, outside) <= band + 0.5
    return float((m[near].astype(np.int64).sum() - s[near].astype(np.int64).sum()) / outline)


def grow(mask: np.ndarray, pixels: float) -> np.ndarray:
    """``mask`` dilated (``pixels`` > 0) or eroded (< 0) so that its outline moves by ``pixels`` on
    the average: the area gained or lost, per pixel of the outline, as close to |pixels| as a disk
    of some radius (Euclidean distance ≤ r) gives. On a pixel grid a radius-1 disk is a cross,
    which moves a diagonal stretch of outline by only 0.7 px: a matte one pixel too loose all round
    kept about a quarter of its extra rim after shrinking by it (wrong pixels per fixed mask on the
    512² every-fault captures, cross → the disk that matches the area: Fox 396 → 14, CesiumMan
    436 → 47)."""
    import cv2

    m = np.asarray(mask, np.uint8)
    if not pixels or not m.any() or m.all():
        return m > 0
    want = abs(float(pixels))
    outline = int((m - cv2.erode(m, np.ones((3, 3), np.uint8))).sum())
    # distance of each pixel to the other side (precise Euclidean): the disk of radius r grows
    # (or shrinks) the mask to the pixels within r
    d = cv2.distanceTransform(1 - m if pixels > 0 else m, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    side = d[d > 0]
    radii = np.unique(np.sqrt(np.add.outer(np.arange(int(want) + 3) ** 2, np.arange(int(want) + 3) ** 2)).ravel())
    radii = radii[(radii >= 1) & (radii <= want + 2)]
    moved = np.array([(side <= r + 1e-3).sum() for r in radii]) / max(outline, 1)
    best = float(radii[np.argmin(np.abs(moved - want))])  # the smallest of equally good radii
    if pixels > 0:
        return (m > 0) | ((d > 0) & (d <= best + 1e-3))
    return (m > 0) & (d > best + 1e-3)


def point_spacing(area: float, n: int) -> float:
    """Mean distance between n points spread evenly over a surface of this area."""
    return float(np.sqrt(area / max(n, 1)))


def chamfer_to_mesh(points: np.ndarray, verts: np.ndarray, faces: np.ndarray, samples: int = 200_000,
                    seed: int = 0) -> dict:
    """Distances from the points to the mesh surface (sampled densely) and back, with percentiles."""
    import open3d as o3d

    from fourd.carve.surface import sample_surface

    gt, _ = sample_surface(verts, faces, samples, np.random.default_rng(seed))
    # Open3D's FLANN tree: scipy's cKDTree took minutes when the query points lie far inside a
    # closed sampled surface (a poor mesh fit), Open3D seconds
    cloud = lambda p: o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(p, np.float64)))  # noqa: E731
    a, b = cloud(points), cloud(gt)
    d_pg = np.asarray(a.compute_point_cloud_distance(b))
    d_gp = np.asarray(b.compute_point_cloud_distance(a))
    return {"to_gt_mean": float(d_pg.mean()), "to_gt_p95": float(np.percentile(d_pg, 95)),
            "from_gt_mean": float(d_gp.mean()), "from_gt_p95": float(np.percentile(d_gp, 95)),
            "chamfer": float(d_pg.mean() + d_gp.mean()) / 2}
