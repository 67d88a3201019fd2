import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fourd.cli import main
from fourd.errors import DataError, FourdError
from fourd.gen.importers import Z_UP_TO_Y_UP, import_any, spacing_radius
from fourd.structures.mesh import Meshes, icosphere
from fourd.structures.points import PointSequence, write_ply


@pytest.fixture(scope="module")
def tiny_shap(tmp_path_factory):
    pytest.importorskip("diffusers", reason="Shap-E needs the gen extra (installed by .ci/run)")
    from tiny_models import tiny_shap_e

    return tiny_shap_e(tmp_path_factory.mktemp("tiny_shap_e"))


def test_shap_e_latent_decodes_to_a_y_up_mesh_on_the_zero_level_set(tiny_shap):
    from fourd.gen.shap_e import latent_to_mesh, latent_to_sdf, load_shap_e, text_to_latent

    pipe = load_shap_e(tiny_shap)
    latent = text_to_latent(pipe, "a chair", steps=2, seed=0)
    assert latent.shape == (1, 32, 16)
    mesh = latent_to_mesh(pipe.shap_e_renderer, latent, grid=32)
    assert mesh.n_faces > 100 and mesh.vertex_colors is not None
    assert float(mesh.vertex_colors.min()) >= 0 and float(mesh.vertex_colors.max()) <= 1
    # back to Shap-E's z-up frame, every vertex sits where the sampled SDF crosses zero
    sdf = latent_to_sdf(pipe.shap_e_renderer, latent, grid=32)
    pz = mesh.verts @ Z_UP_TO_Y_UP
    inside = (pz.abs() <= 1).all(1)
    v = F.grid_sample(sdf[None, None], pz[inside][None, None, None, :, [2, 1, 0]], align_corners=True)
    assert float(v.abs().mean()) < 0.01
    # and the y-up mesh is not the z-up one: a z-up vertex (x, y, z) became (x, z, −y)
    assert torch.allclose(pz @ Z_UP_TO_Y_UP.T, mesh.verts, atol=1e-6)


def test_generate_shap_e_command(tiny_shap, tmp_path):
    out = tmp_path / "shap"
    assert main(["--quiet", "generate", "shap-e", "--prompt", "a chair", "--model", str(tiny_shap),
                 "--steps", "2", "--grid", "32", "--points", "2000", "--out", str(out)]) == 0
    for name in ("mesh.obj", "mesh.glb", "mesh.ply", "points.safetensors", "latent.safetensors"):
        assert (out / name).is_file(), name
    assert Meshes.load(out / "mesh.glb").n_faces > 100
    assert main(["--quiet", "generate", "shap-e", "--prompt", "", "--model", str(tiny_shap)]) == 2
    assert main(["--quiet", "generate", "shap-e", "--prompt", "x", "--model", str(tmp_path)]) == 2


def test_load_shap_e_names_missing_parts(tmp_path):
    from fourd.gen.shap_e import load_shap_e

    (tmp_path / "model_index.json").write_text("{}")
    with pytest.raises(FourdError, match="missing: prior, text_encoder"):
        load_shap_e(tmp_path)


def _point_e_npz(path, n=4096):
    g = np.random.default_rng(0)
    d = g.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    coords = (d * [0.3, 0.3, 0.6]).astype(np.float32)  # tall along z (Point-E is z-up)
    np.savez(path, coords=coords, R=np.full(n, 0.9, np.float32), G=np.full(n, 0.2, np.float32),
             B=np.full(n, 0.1, np.float32))
    return coords


def test_point_e_npz_import_turns_z_up_and_sets_radii_from_spacing(tmp_path):
    coords = _point_e_npz(tmp_path / "pe.npz")
    seq = import_any(tmp_path / "pe.npz")
    assert seq.points.shape == (4096, 3)
    ext = seq.points.max(0).values - seq.points.min(0).values
    assert float(ext[1]) > 1.8 * float(ext[2])  # the tall z axis is now y
    assert torch.allclose(seq.attributes["colors"][0], torch.tensor([0.9, 0.2, 0.1]))
    r = seq.attributes["radius"]
    from scipy.spatial import cKDTree

    nn = cKDTree(coords).query(coords, k=2)[0][:, 1]
    assert 0.3 * nn.mean() < float(r.mean()) < 2.0 * nn.mean()
    # --up y keeps the axes
    same = import_any(tmp_path / "pe.npz", up="y")
    assert torch.allclose(same.points, torch.from_numpy(coords))


def test_mesh_and_ply_import_and_the_command(tmp_path):
    icosphere(3, 0.5, texture_size=16).save(tmp_path / "ball.glb")
    seq = import_any(tmp_path / "ball.glb", points=5000)
    assert seq.points.shape == (5000, 3) and "normals" in seq.attributes
    assert torch.allclose(seq.points.norm(dim=1), torch.full((5000,), 0.5), atol=0.02)
    write_ply(tmp_path / "cloud.ply", seq.points, {"colors": seq.attributes["colors"]})
    cloud = import_any(tmp_path / "cloud.ply")
    assert cloud.points.shape == (5000, 3) and "colors" in cloud.attributes and cloud.meta["kind"] == "points"
    out = tmp_path / "imp"
    assert main(["--quiet", "import", str(tmp_path / "ball.glb"), "--points", "3000", "--out", str(out)]) == 0
    loaded = PointSequence.load(out / "points.safetensors")
    assert loaded.points.shape == (3000, 3) and (out / "ply" / "000000.ply").is_file()


def test_import_bad_input(tmp_path):
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(DataError, match="empty.npz"):
        import_any(tmp_path / "empty.npz")
    np.savez(tmp_path / "nocoords.npz", xyz=np.zeros((3, 3)))
    with pytest.raises(DataError, match="coords"):
        import_any(tmp_path / "nocoords.npz")
    np.savez(tmp_path / "nan.npz", coords=np.full((3, 3), np.nan))
    with pytest.raises(DataError, match="NaN"):
        import_any(tmp_path / "nan.npz")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="unsupported file type"):
        import_any(tmp_path / "x.txt")
    assert main(["--quiet", "import", str(tmp_path / "missing.glb")]) == 2
    # a non-manifold mesh still imports (sampling needs no manifold); an empty one does not
    tri = Meshes(torch.eye(3), torch.tensor([[0, 1, 2]]))
    tri.save(tmp_path / "tri.ply")
    assert import_any(tmp_path / "tri.ply", points=10).points.shape == (10, 3)


def test_spacing_radius_scales_with_density():
    g = torch.Generator().manual_seed(0)
    sparse = torch.rand(500, 3, generator=g)
    dense = torch.rand(4000, 3, generator=g)
    assert float(spacing_radius(dense).mean()) < 0.6 * float(spacing_radius(sparse).mean())
