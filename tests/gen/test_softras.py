import pytest
import torch

from fourd.gen.softras import MeshRasterSettings, interpolate, rasterize_mesh
from fourd.structures.cameras import Cameras
from fourd.structures.mesh import icosphere


def _blob(level=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = icosphere(level, 1.0)
    return m.with_verts(m.verts * torch.tensor([1.0, 0.7, 0.85]) + 0.08 * torch.randn(m.verts.shape, generator=g))


def test_gradcheck_float64_on_a_tiny_mesh():
    """Soft silhouette and barycentric interpolation are differentiable in the vertex positions."""
    v = torch.tensor([[-0.6, -0.5, 0.1], [0.7, -0.4, 0.0], [0.0, 0.6, -0.1], [0.5, 0.5, 0.3]], dtype=torch.float64)
    f = torch.tensor([[0, 1, 2], [1, 3, 2]])
    cam = Cameras.look_at([0.1, 0.2, 3.0], [0, 0, 0], fov_y_deg=40, H=10, W=12).to(dtype=torch.float64)
    attr = torch.tensor([[[1.0], [0.2], [0.5]], [[0.2], [-0.4], [0.5]]], dtype=torch.float64)
    s = MeshRasterSettings(sigma=2.0, eps=1e-4)

    def fn(verts):
        fr = rasterize_mesh(verts, f, cam, s)
        return fr.alpha, interpolate(fr, attr)[..., 0], fr.depth

    assert torch.autograd.gradcheck(fn, (v.clone().requires_grad_(),), eps=1e-6, atol=1e-5)


def test_soft_silhouette_tends_to_hard_coverage():
    m = _blob()
    cam = Cameras.look_at([0.4, 0.6, 3.2], [0, 0, 0], H=64, W=80)
    hard = rasterize_mesh(m.verts, m.faces, cam, MeshRasterSettings(sigma=0.0))
    assert torch.equal(hard.alpha > 0.5, hard.covered)
    prev = None
    for sigma in (2.0, 0.2, 0.01, 1e-4):
        soft = rasterize_mesh(m.verts, m.faces, cam, MeshRasterSettings(sigma=sigma))
        err = float((soft.alpha - hard.alpha).abs().mean())
        assert prev is None or err < prev
        prev = err
    assert float(((soft.alpha > 0.5) == hard.covered).float().mean()) > 0.999


def test_chunking_does_not_change_the_result():
    m = _blob(3)
    cam = Cameras.look_at([0.0, 0.3, 3.0], [0, 0, 0], H=48, W=48)
    a = rasterize_mesh(m.verts, m.faces, cam, MeshRasterSettings(sigma=0.5))
    b = rasterize_mesh(m.verts, m.faces, cam, MeshRasterSettings(sigma=0.5, max_pairs=500))
    assert torch.allclose(a.alpha, b.alpha, atol=1e-5) and torch.equal(a.face, b.face)
    assert torch.allclose(a.bary, b.bary, atol=1e-6)
    # barycentrics sum to one on covered pixels; depth lies within the mesh's depth range
    assert torch.allclose(a.bary[a.covered].sum(-1), torch.ones(int(a.covered.sum())), atol=1e-5)
    z = cam.world_to_camera(m.verts)[0, :, 2]
    d = a.depth[a.covered]
    assert bool((d >= z.min() - 1e-4).all() and (d <= z.max() + 1e-4).all()), (float(d.min()), float(d.max()))
    # and it is the depth of the reported face at the pixel (perspective-correct barycentrics), so with
    # the face test against GL below, the depth of the nearest surface
    zf = z[m.faces[a.face[a.covered]]]  # [M, 3]
    assert torch.allclose(d, (a.bary[a.covered] * zf).sum(-1), atol=1e-4)


@pytest.mark.gl
def test_hard_limit_agrees_with_gl_rasterization():
    from fourd.gl.face_ids import GLFaceIds

    m = _blob(3, seed=1)
    gl = GLFaceIds(m.faces)
    try:
        for eye, (H, W) in (([0.4, 0.6, 3.2], (96, 128)), ([-2.5, 1.0, 1.5], (80, 80))):
            cam = Cameras.look_at(eye, [0, 0, 0], H=H, W=W)
            ids = gl(m.verts, cam)
            fr = rasterize_mesh(m.verts, m.faces, cam, MeshRasterSettings(sigma=0.0))
            assert float(((ids >= 0) == fr.covered).float().mean()) >= 0.995
            assert float((ids[fr.covered] == fr.face[fr.covered]).float().mean()) >= 0.99
            # GL visibility feeds the torch barycentrics: same pixels, same interpolation
            fr2 = rasterize_mesh(m.verts, m.faces, cam, MeshRasterSettings(sigma=0.0), face_ids=ids)
            same = (ids == fr.face) & fr.covered
            assert torch.allclose(fr2.bary[same], fr.bary[same], atol=1e-5)
    finally:
        gl.release()
