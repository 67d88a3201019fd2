import math

import numpy as np
import pytest
import torch

from fourd.errors import DataError
from fourd.structures.isosurface import marching_cubes, marching_tets, tet_grid
from fourd.structures.mesh import Meshes, icosphere


def test_icosphere_is_closed_and_subdivision_keeps_the_surface():
    m = icosphere(2, 2.0, center=(1.0, 0.0, 0.0), texture_size=8)
    assert (m.n_verts, m.n_faces) == (162, 320) and m.is_watertight_manifold()
    assert torch.allclose((m.verts - torch.tensor([1.0, 0, 0])).norm(dim=1), torch.full((162,), 2.0), atol=1e-5)
    s = m.subdivide()
    assert (s.n_verts, s.n_faces) == (642, 1280) and s.is_watertight_manifold()
    assert s.face_uvs.shape == (1280, 3, 2)
    # midpoints lie on the old flat triangles: same area, same volume
    assert torch.allclose(s.face_areas().sum(), m.face_areas().sum(), rtol=1e-5)
    # wrapped seam UVs stay within one period per face
    assert float((s.face_uvs[..., 0].max(1).values - s.face_uvs[..., 0].min(1).values).max()) < 0.5


def test_uniform_laplacian_of_a_regular_grid_is_zero_inside():
    # a flat 3x3-vertex grid: the centre vertex is the mean of its neighbours
    v = torch.tensor([[x, y, 0.0] for y in range(3) for x in range(3)])
    f = torch.tensor([[0, 1, 4], [0, 4, 3], [1, 2, 5], [1, 5, 4], [3, 4, 7], [3, 7, 6], [4, 5, 8], [4, 8, 7]])
    L = Meshes(v, f).laplacian_uniform()
    lv = torch.sparse.mm(L, v)
    assert lv[4].abs().max() < 1e-6 and lv[0].abs().max() > 0.1


def test_area_weighted_sampling_and_colours():
    # two triangles, the second 6× larger (area 3 vs 0.5); the first red, the second blue (vertex colours)
    v = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 0, 0], [8, 0, 0], [5, 2, 0]], dtype=torch.float32)
    f = torch.tensor([[0, 1, 2], [3, 4, 5]])
    col = torch.tensor([[1, 0, 0]] * 3 + [[0, 0, 1]] * 3, dtype=torch.float32)
    seq = Meshes(v, f, vertex_colors=col).sample_points(20000, seed=1)
    pts, c = seq.points, seq.attributes["colors"]
    big = pts[:, 0] >= 5
    assert abs(float(big.float().mean()) - 6 / 7) < 0.02
    assert torch.allclose(c[big].mean(0), torch.tensor([0.0, 0, 1]), atol=1e-5)
    assert torch.allclose(seq.attributes["normals"].abs(), torch.tensor([0.0, 0, 1]).expand(20000, 3))
    assert bool((pts[~big].sum(1) <= 1 + 1e-5).all())  # inside the first triangle


@pytest.mark.parametrize("suffix", [".obj", ".glb", ".ply"])
def test_save_load_round_trip_keeps_geometry_and_colour(tmp_path, suffix):
    m = icosphere(3, 1.0, texture_size=32)
    m.texture[:, :16] = torch.tensor([1.0, 0.0, 0.0])  # a quarter of the width red
    p = m.save(tmp_path / f"ball{suffix}")
    back = Meshes.load(p)
    assert back.n_faces == m.n_faces
    assert torch.allclose(back.face_areas().sum(), m.face_areas().sum(), rtol=1e-4)
    before = m.sample_points(20000).attributes["colors"].mean(0)
    after = back.sample_points(20000).attributes["colors"].mean(0)
    assert torch.allclose(before, after, atol=0.02), (before, after)
    if suffix == ".obj":
        assert (tmp_path / "ball.mtl").is_file() and (tmp_path / "ball.png").is_file()


def test_marching_cubes_and_marching_tets_recover_a_sphere():
    g = torch.linspace(-1, 1, 33)
    X = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1)
    mc = marching_cubes(X.norm(dim=-1) - 0.6, (-1, -1, -1), (1, 1, 1))
    r = mc.verts.norm(dim=1)
    assert abs(float(r.mean()) - 0.6) < 0.01 and mc.is_watertight_manifold()
    v, t = tet_grid(16)
    assert t.shape == (6 * 16 ** 3, 4)
    sdf = (v.norm(dim=1) - 0.6).requires_grad_()
    mt = marching_tets(v, t, sdf)
    assert mt.is_watertight_manifold()
    assert float((mt.verts.detach().norm(dim=1) - 0.6).abs().max()) < 0.03
    # faces point outward (towards positive SDF) and the extraction is differentiable in the SDF
    out = (mt.face_normals() * mt.verts[mt.faces].mean(1)).sum(1)
    assert bool((out > 0).all())
    mt.verts.norm(dim=1).sum().backward()
    assert sdf.grad is not None and float(sdf.grad.abs().sum()) > 0


def test_tet_grid_tets_fill_the_cube():
    v, t = tet_grid(3)
    p = v[t]
    vol = torch.linalg.det(torch.stack([p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], p[:, 3] - p[:, 0]], 1)).abs() / 6
    assert math.isclose(float(vol.sum()), 8.0, rel_tol=1e-5) and bool((vol > 0).all())


def test_bad_meshes_give_clear_errors(tmp_path):
    with pytest.raises(DataError, match="empty"):
        Meshes(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long)).validate()
    # an open mesh (one triangle) is not a closed manifold
    tri = Meshes(torch.eye(3), torch.tensor([[0, 1, 2]]))
    with pytest.raises(DataError, match="not a closed manifold"):
        tri.validate(manifold=True)
    with pytest.raises(DataError, match="NaN"):
        Meshes(torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, float("nan"), 0]]), torch.tensor([[0, 1, 2]])).validate()
    bad = tmp_path / "broken.obj"
    bad.write_text("this is not an obj\n")
    with pytest.raises(DataError, match="broken.obj"):
        Meshes.load(bad)
    with pytest.raises(DataError, match="not found"):
        Meshes.load(tmp_path / "missing.glb")
    with pytest.raises(ValueError, match="refers to a vertex"):
        Meshes(torch.zeros(3, 3), torch.tensor([[0, 1, 3]]))
    with pytest.raises(ValueError, match="no zero crossing"):
        marching_cubes(np.ones((4, 4, 4)), (0, 0, 0), (1, 1, 1))
