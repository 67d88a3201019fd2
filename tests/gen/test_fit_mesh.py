import json

import pytest
import torch

from fourd.cli import main
from fourd.errors import DataError, FourdError
from fourd.gen.fit_mesh import fit_mesh, preset_config, smoothing_factor
from fourd.structures.mesh import Meshes, icosphere


def _cfg(tiny_ev, tmp_path, **kw):
    base = dict(dataset=str(tiny_ev), frame=0, size=48, eval_size=48, level=2, texture_size=16, out=tmp_path)
    base.update(kw)
    return preset_config(kw.pop("preset", "fourd"), **{k: v for k, v in base.items() if k != "preset"})


@pytest.mark.slow
def test_fit_improves_the_silhouette_and_writes_a_usable_mesh(tiny_ev, tmp_path):
    start = fit_mesh(_cfg(tiny_ev, tmp_path / "start", iterations=0, coarse_levels=0))
    r = fit_mesh(_cfg(tiny_ev, tmp_path / "fit", iterations=60, coarse_levels=1))
    assert r["iou"] > start["iou"] + 0.1 and r["iou"] > 0.7, (start["iou"], r["iou"])
    assert r["chamfer"] is not None and r["chamfer"] < start["chamfer"]
    assert r["faces"] == 320  # coarse-to-fine ended at the requested level
    out = tmp_path / "fit"
    for name in ("mesh.obj", "mesh.mtl", "mesh.png", "mesh.glb", "renders.png", "metrics.json", "config.json"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["iou"] == pytest.approx(r["iou"]) and len(saved["per_view"]) == 8
    mesh = Meshes.load(out / "mesh.glb")
    assert mesh.n_faces == 320 and mesh.texture is not None  # (the UV seam splits vertices in the file)
    # the fitted mesh goes through the same view / bake / render path as a 4D capture
    assert main(["--quiet", "view", str(out / "mesh.glb"), "--headless", "--screenshot", str(tmp_path / "v.png"),
                 "--size", "64x48"]) == 0
    assert (tmp_path / "v.png").stat().st_size > 100
    assert main(["--quiet", "render", str(out / "mesh.glb"), "--orbit", "--frames", "3", "--size", "64x48",
                 "--out", str(tmp_path / "orbit.mp4")]) == 0
    assert (tmp_path / "orbit.mp4").stat().st_size > 100


def test_pytorch3d_preset_runs_with_vertex_colours(tiny_ev, tmp_path):
    r = fit_mesh(_cfg(tiny_ev, tmp_path, preset="pytorch3d", iterations=3, views=4))
    assert r["views"] == 4 and r["iterations"] == 3
    assert Meshes.load(tmp_path / "mesh.glb").vertex_colors is not None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here; the other fit tests run the same "
                    "code with --device cpu (the default), and test_fit_on_the_cpu_by_setting_its_device below")
def test_fit_on_cuda_matches_cpu(tiny_ev, tmp_path):
    a = fit_mesh(_cfg(tiny_ev, tmp_path / "cpu", iterations=5, coarse_levels=1, device="cpu"))
    b = fit_mesh(_cfg(tiny_ev, tmp_path / "cuda", iterations=5, coarse_levels=1, device="cuda"))
    assert abs(a["iou"] - b["iou"]) < 0.01 and abs(a["psnr"] - b["psnr"]) < 0.5


def test_fit_on_the_cpu_by_setting_its_device(tiny_ev, tmp_path):
    """The device is a setting: the CLI passes it through, and every tensor of the fit lives there."""
    assert main(["--quiet", "fit-mesh", "--dataset", str(tiny_ev), "--out", str(tmp_path), "--iterations", "2",
                 "--size", "48", "--eval-size", "48", "--level", "2", "--texture-size", "16", "--coarse-levels", "0",
                 "--device", "cpu"]) == 0
    assert json.loads((tmp_path / "config.json").read_text())["device"] == "cpu"
    # the setting reaches torch before any work: a malformed name and a device this machine lacks are
    # refused in one line naming --device, and nothing is written
    with pytest.raises(FourdError, match="not a torch device") as e:
        fit_mesh(_cfg(tiny_ev, tmp_path / "bad", iterations=1, device="not-a-device"))
    assert "--device" in e.value.one_line()
    if not torch.cuda.is_available():
        with pytest.raises(FourdError, match="CUDA is not available"):
            fit_mesh(_cfg(tiny_ev, tmp_path / "bad", iterations=1, device="cuda"))
    assert not (tmp_path / "bad").exists()


@pytest.mark.gl
def test_gl_visibility_gives_the_same_fit_step_as_torch(tiny_ev, tmp_path):
    a = fit_mesh(_cfg(tiny_ev, tmp_path / "t", iterations=4, coarse_levels=1, visibility="torch"))
    b = fit_mesh(_cfg(tiny_ev, tmp_path / "g", iterations=4, coarse_levels=1, visibility="gl"))
    assert abs(a["curve"][-1]["total"] - b["curve"][-1]["total"]) < 1e-3 * a["curve"][-1]["total"]


def test_smoothing_factor_solves_the_laplacian_system():
    m = icosphere(1)
    chol = smoothing_factor(m, 5.0)
    u = torch.randn(m.n_verts, 3)
    x = torch.cholesky_solve(u, chol)
    L = -m.laplacian_uniform().to_dense() * 0  # the combinatorial Laplacian D − A:
    e = m.edges()
    A = torch.zeros(m.n_verts, m.n_verts)
    A[e[:, 0], e[:, 1]] = 1
    A[e[:, 1], e[:, 0]] = 1
    L = torch.diag(A.sum(1)) - A
    assert torch.allclose((torch.eye(m.n_verts) + 5.0 * L) @ x, u, atol=1e-4)


def test_fit_mesh_bad_input(tiny_ev, tmp_path):
    with pytest.raises(FourdError, match="frame 99"):
        fit_mesh(_cfg(tiny_ev, tmp_path, frame=99, iterations=1))
    Meshes(torch.eye(3), torch.tensor([[0, 1, 2]])).save(tmp_path / "open.ply")
    with pytest.raises(DataError, match="not a closed manifold"):
        fit_mesh(_cfg(tiny_ev, tmp_path, init=tmp_path / "open.ply", iterations=1))
    assert main(["--quiet", "fit-mesh", "--dataset", str(tiny_ev), "--preset", "blender"]) == 2
    assert main(["--quiet", "fit-mesh", "--dataset", str(tmp_path / "nowhere"), "--iterations", "1"]) == 2


def test_unseen_texels_are_filled_from_seen_neighbours():
    from fourd.gen.fit_mesh import fill_unseen

    tex = torch.full((8, 16, 3), 0.5)
    tex[:, :8] = torch.tensor([1.0, 0.0, 0.0])
    seen = torch.zeros(8, 16, dtype=torch.bool)
    seen[:, :8] = True
    out = fill_unseen(tex, seen)
    assert torch.equal(out[seen], tex[seen])  # seen texels untouched
    assert float(out[:, 8:9, 0].min()) > 0.8  # the hole next to red became red
