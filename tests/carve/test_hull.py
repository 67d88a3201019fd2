"""Carving analytic shapes: a sphere's hull matches the analytic cone intersection and contains
the sphere; a cube's corners come back; the coarse-to-fine path equals the dense reference."""

import math

import numpy as np
import pytest
import torch

from fourd.carve.hull import Grid, HullSettings, MaskStack, carve_coarse_to_fine, carve_dense
from fourd.carve.surface import surface_points
from fourd.structures.cameras import Cameras


def rig(n_per_ring=8, size=96):
    rings = [Cameras.ring(n_per_ring, 3.0, h, fov_y_deg=40, H=size, W=size, phase_deg=p)
             for h, p in ((0.0, 0.0), (1.5, 22.5), (-1.2, 10.0))]
    return Cameras.cat(rings)


def pixel_centres(cam):
    H, W = int(cam.H[0]), int(cam.W[0])
    o, d = cam.rays(0)
    return o.reshape(-1, 3), d.reshape(-1, 3), H, W


def sphere_masks(cams, c, r):
    masks = []
    for i in range(len(cams)):
        o, d, H, W = pixel_centres(cams[i])
        oc = o - torch.tensor(c)
        b = (oc * d).sum(1)
        disc = b * b - ((oc * oc).sum(1) - r * r)
        masks.append((disc >= 0).reshape(H, W).numpy())
    return masks


def test_sphere_hull_matches_analytic_cones_and_contains_sphere():
    cams = rig()
    c, r = np.array([0.1, -0.05, 0.05]), 0.6
    masks = sphere_masks(cams, c, r)
    grid = Grid.from_bounds(c - 1.0, c + 1.0, 64)
    occ = carve_dense(grid, MaskStack.build(cams, masks), HullSettings(vote=1.0))
    X = grid.centers(grid.all_indices()).double()
    # analytic visual hull: inside every camera's cone tangent to the sphere
    C = cams.centers.double()
    v = X[None] - C[:, None]
    axis = torch.tensor(c)[None] - C
    cosang = (v * axis[:, None]).sum(-1) / (v.norm(dim=-1) * axis.norm(dim=-1)[:, None])
    half = torch.asin(r / axis.norm(dim=-1))
    margin = lambda px: torch.atan(px / cams.K[:, 0, 0].double())[:, None]  # noqa: E731
    hull_in = (torch.acos(cosang.clamp(-1, 1)) <= half[:, None] - margin(1.0)).all(0)
    hull_out = (torch.acos(cosang.clamp(-1, 1)) <= half[:, None] + margin(1.0)).all(0)
    occ_flat = occ.reshape(-1)
    assert occ_flat[hull_in].all(), "a voxel well inside every cone was carved away"
    assert not occ_flat[~hull_out].any(), "a voxel well outside some cone survived"
    vox = grid.size ** 3
    # masks sample pixel centres, so the silhouette is exact only to a pixel: one pixel's footprint
    # at the sphere's distance is the tolerance
    pixel = float((cams.centers.double() - torch.tensor(c)).norm(dim=1).max() / cams.K[:, 0, 0].min())
    assert occ.sum() * vox >= 4 / 3 * math.pi * (r - pixel) ** 3
    assert hull_in.sum() * vox <= occ.sum() * vox <= hull_out.sum() * vox
    inside_sphere = ((X - torch.tensor(c)).norm(dim=1) < r - pixel)
    assert occ_flat[inside_sphere].all()


def cube_masks(cams, lo, hi):
    import cv2

    corners = torch.tensor([[x, y, z] for x in (lo, hi) for y in (lo, hi) for z in (lo, hi)], dtype=torch.float32)
    uv, _ = cams.project(corners)
    out = []
    for i in range(len(cams)):
        H, W = int(cams.H[i]), int(cams.W[i])
        hull = cv2.convexHull(uv[i].numpy().astype(np.float32))[:, 0]
        yy, xx = np.mgrid[0:H, 0:W] + 0.5
        inside = np.ones((H, W), bool)
        n = len(hull)
        area = sum(hull[k, 0] * hull[(k + 1) % n, 1] - hull[(k + 1) % n, 0] * hull[k, 1] for k in range(n))
        sgn = 1 if area > 0 else -1
        for k in range(n):
            (x0, y0), (x1, y1) = hull[k], hull[(k + 1) % n]
            inside &= sgn * ((x1 - x0) * (yy - y0) - (y1 - y0) * (xx - x0)) >= 0
        out.append(inside)
    return out


def test_cube_corners_are_recovered():
    cams = rig(n_per_ring=10, size=128)
    lo, hi = -0.5, 0.5
    masks = cube_masks(cams, lo, hi)
    grid = Grid.from_bounds(np.full(3, -0.8), np.full(3, 0.8), 96)
    occ = carve_coarse_to_fine(grid, MaskStack.build(cams, masks), HullSettings(vote=1.0))
    pts, _ = surface_points(occ, grid, 20000, outliers=False)
    corners = np.array([[x, y, z] for x in (lo, hi) for y in (lo, hi) for z in (lo, hi)])
    d = np.linalg.norm(pts[None] - corners[:, None], axis=-1).min(1)
    assert d.max() < 3 * grid.size, d / grid.size
    # and the faces are flat: most points lie near a face plane
    face_dist = np.abs(np.abs(pts) - 0.5).min(1)
    assert np.median(face_dist) < grid.size


@pytest.mark.parametrize("vote, factor, levels", [(1.0, 4, 1), (0.9, 2, 2), (0.9, 2, None)])
def test_coarse_to_fine_equals_dense(vote, factor, levels):
    cams = rig()
    masks = sphere_masks(cams, np.zeros(3), 0.5)
    # punch a notch in a few masks so the vote matters
    for m in masks[:3]:
        m[40:60, 40:60] = False
    grid = Grid.from_bounds(np.full(3, -0.9), np.full(3, 0.9), 72)
    stack = MaskStack.build(cams, masks)
    s = HullSettings(vote=vote)
    dense = carve_dense(grid, stack, s)
    fast = carve_coarse_to_fine(grid, stack, s, factor=factor, levels=levels)
    agree = (dense == fast).float().mean()
    assert agree >= 0.999, agree
    assert dense.sum() > 1000


def test_voxels_seen_by_too_few_cameras_are_dropped():
    cams = rig()
    masks = [np.ones((96, 96), bool) for _ in range(len(cams))]  # everything is "inside"
    grid = Grid.from_bounds(np.full(3, -20.0), np.full(3, 20.0), 40)
    occ = carve_dense(grid, MaskStack.build(cams, masks), HullSettings(vote=1.0, min_views=3))
    X = grid.centers(grid.all_indices())
    uv, z = cams.project(X)
    seen = ((z > 0) & (uv[..., 0] >= 0) & (uv[..., 0] < 96) & (uv[..., 1] >= 0) & (uv[..., 1] < 96)).sum(0)
    torch.testing.assert_close(occ.reshape(-1), seen >= 3)


def test_open3d_rule_coarse_to_fine_equals_dense():
    cams = rig()
    masks = sphere_masks(cams, np.zeros(3), 0.5)
    grid = Grid.from_bounds(np.full(3, -0.9), np.full(3, 0.9), 48)
    stack = MaskStack.build(cams, masks)
    s = HullSettings(vote=1.0, min_views=1, sample="open3d")
    dense, fast = carve_dense(grid, stack, s), carve_coarse_to_fine(grid, stack, s)
    assert (dense == fast).float().mean() >= 0.999
    # the corner rule keeps a fatter hull than the centre rule
    assert dense.sum() > carve_dense(grid, stack, HullSettings(vote=1.0, min_views=1)).sum()


def test_popcount():
    from fourd.carve.hull import _popcount

    x = torch.randint(0, 2 ** 62, (1000,), dtype=torch.long)
    want = torch.tensor([bin(v).count("1") for v in x.tolist()])
    assert torch.equal(_popcount(x).long(), want)


def test_open3d_rule_matches_open3d_itself():
    import open3d as o3d

    from fourd.structures.cameras import K_to_opencv

    cams = rig(n_per_ring=4, size=64)
    masks = sphere_masks(cams, np.array([0.05, 0.0, -0.05]), 0.45)
    grid = Grid.from_bounds(np.full(3, -0.7), np.full(3, 0.7), 28)
    vg = o3d.geometry.VoxelGrid.create_dense(grid.lo.double().numpy(), np.zeros(3), grid.size,
                                            *(float(n) * grid.size for n in grid.shape))
    for i, m in enumerate(masks):
        p = o3d.camera.PinholeCameraParameters()
        K = K_to_opencv(cams.K[i].numpy())
        p.intrinsic = o3d.camera.PinholeCameraIntrinsic(64, 64, K[0, 0], K[1, 1], K[0, 2], K[1, 2])
        E = np.eye(4)
        E[:3, :3], E[:3, 3] = cams.R[i].double().numpy(), cams.T[i].double().numpy()
        p.extrinsic = E
        vg.carve_silhouette(o3d.geometry.Image(m.astype(np.float32)), p, keep_voxels_outside_image=False)
    theirs = {tuple(v.grid_index) for v in vg.get_voxels()}
    occ = carve_coarse_to_fine(grid, MaskStack.build(cams, masks), HullSettings(vote=1.0, min_views=1, sample="open3d"))
    ours = {tuple(x) for x in occ.nonzero().tolist()}
    assert len(theirs) > 500
    assert len(theirs ^ ours) <= 0.001 * len(theirs) + 1
