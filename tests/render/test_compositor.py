"""The compositor: float64 gradcheck, gradients identical whichever rasterizer chose the points,
and the gradients are good enough to fit points to an image."""

import pytest
import torch

from fourd.render.compositor import composite
from fourd.render.rasterize import GLRasterizer, rasterize_points
from fourd.structures.cameras import Cameras
from fourd.structures.fragments import RasterSettings


def tiny(seed=0, P=12, H=10, W=12):
    g = torch.Generator().manual_seed(seed)
    cam = Cameras.look_at([[0.0, 0.0, -2.0]], [0, 0, 0], H=H, W=W, fov_y_deg=40)
    pts = (torch.rand(P, 3, generator=g) - 0.5) * torch.tensor([0.5, 0.4, 0.5])
    radii = 0.08 + 0.05 * torch.rand(P, generator=g)
    dens = 0.2 + 0.6 * torch.rand(P, generator=g)
    cols = torch.rand(P, 3, generator=g)
    return cam, pts, radii, dens, cols


def test_values_by_hand():
    """One pixel, two points: C = a1 c1 + (1 − a1) a2 c2 + (1 − a1)(1 − a2) bg."""
    cam = Cameras.look_at([[0.0, 0.0, -2.0]], [0, 0, 0], H=1, W=1, fov_y_deg=40)
    pts = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.5]])
    radii = torch.tensor([0.2, 0.3])
    dens = torch.tensor([0.6, 0.5])
    cols = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    f = rasterize_points(pts, radii, cam, RasterSettings(K=2), backend="torch")
    assert f.idx[0, 0].tolist() == [0, 1]
    out = composite(f, pts, radii, dens, cols, cam, background=(0, 0, 1.0))
    a1, a2 = 0.6, 0.5  # both centred on the pixel: d² = 0
    torch.testing.assert_close(out.rgb[0, 0], torch.tensor([a1, (1 - a1) * a2, (1 - a1) * (1 - a2)]))
    torch.testing.assert_close(out.alpha[0, 0], torch.tensor(1 - (1 - a1) * (1 - a2)))
    torch.testing.assert_close(out.depth[0, 0], torch.tensor(a1 * 2.0 + (1 - a1) * a2 * 2.5))


def test_gradcheck_float64():
    cam, pts, radii, dens, cols = tiny()
    f = rasterize_points(pts, radii, cam, RasterSettings(K=4), backend="torch")
    assert (f.idx >= 0).sum() > 20
    cam64 = cam.to(dtype=torch.float64)
    args = [t.double().requires_grad_() for t in (pts, radii, dens, cols)]

    def fn(p, r, d, c):
        out = composite(f, p, r, d, c, cam64, background=(0.1, 0.2, 0.3))
        return out.rgb, out.alpha, out.depth

    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-5)


@pytest.mark.gl
def test_gradients_same_through_gl_and_torch_fragments():
    cam, pts, radii, dens, cols = tiny(1, P=300, H=40, W=48)
    s = RasterSettings(K=6)
    grads = []
    for frags in (rasterize_points(pts, radii, cam, s, backend="torch"), GLRasterizer()(pts, radii, cam, s)):
        args = [t.clone().requires_grad_() for t in (pts, radii, dens, cols)]
        out = composite(frags, *args, cam)
        w = torch.linspace(0, 1, out.rgb.numel()).reshape(out.rgb.shape)  # a fixed random-looking cotangent
        (out.rgb * w).sum().backward()
        grads.append([a.grad for a in args])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("backend", ["torch", pytest.param("gl", marks=pytest.mark.gl)])
def test_fitting_points_to_an_image(backend):
    """Perturbed points pulled back by image error alone: the error falls by ≥ 10×."""
    g = torch.Generator().manual_seed(0)
    cam = Cameras.look_at([[0.0, 0.0, -2.0]], [0, 0, 0], H=40, W=40, fov_y_deg=40)
    n = 36
    grid = torch.stack(torch.meshgrid(torch.linspace(-0.25, 0.25, 6), torch.linspace(-0.25, 0.25, 6),
                                      indexing="ij"), -1).reshape(-1, 2)
    target_pts = torch.cat([grid, torch.zeros(n, 1)], 1)
    radii = torch.full((n,), 0.06)
    dens = torch.full((n,), 0.9)
    cols = torch.rand(n, 3, generator=g)
    s = RasterSettings(K=4)
    target = composite(rasterize_points(target_pts, radii, cam, s, backend=backend), target_pts, radii, dens, cols,
                       cam).rgb
    pts = (target_pts + torch.randn(n, 3, generator=g) * torch.tensor([0.02, 0.02, 0.0])).requires_grad_()
    opt = torch.optim.Adam([pts], lr=2e-3)
    errs = []
    for _ in range(150):
        frags = rasterize_points(pts.detach(), radii, cam, s, backend=backend)
        loss = ((composite(frags, pts, radii, dens, cols, cam).rgb - target) ** 2).mean()
        errs.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert errs[0] > 1e-3
    assert errs[-1] < errs[0] / 10, (errs[0], errs[-1])
