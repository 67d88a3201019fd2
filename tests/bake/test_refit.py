"""Image-space colour fit: recovers known colours and view-dependence, never worse than its start."""

import math

import torch

from fourd.bake.refit import fit_colors, view_system
from fourd.model.sh import sh_basis
from fourd.render.compositor import composite
from fourd.render.rasterize import rasterize_points
from fourd.structures.cameras import Cameras
from fourd.structures.fragments import RasterSettings


def scene(seed=0, P=400, views=8):
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(P, 3, generator=g)
    pts = 0.5 * d / d.norm(dim=1, keepdim=True)  # a sphere of splats
    radii = torch.full((P,), 0.09)
    dens = torch.full((P,), 0.8)
    cams = []
    for i in range(views):
        a = 2 * math.pi * i / views
        cams.append(Cameras.look_at([[2.5 * math.cos(a), 0.6 * (i % 2) - 0.3, 2.5 * math.sin(a)]], [0, 0, 0],
                                    H=48, W=48, fov_y_deg=40))
    return pts, radii, dens, cams


def render(pts, radii, dens, C, cam, bg):
    frags = rasterize_points(pts, radii, cam, RasterSettings(K=8, near=0.1, far=10), backend="torch")
    Y = sh_basis(torch.nn.functional.normalize(pts - cam.centers[0], dim=-1), 1)
    Y = torch.cat([torch.ones_like(Y[:, :1]), Y[:, 1:]], 1)
    cols = torch.einsum("nb,nbc->nc", Y[:, :C.shape[1]], C)
    return frags, composite(frags, pts, radii, dens, cols, cam, bg).rgb


def systems_for(pts, radii, dens, cams, C_true, bg, degree):
    out = []
    for cam in cams:
        frags, img = render(pts, radii, dens, C_true, cam, bg)
        out.append(view_system(frags, pts, radii, dens, cam, img, bg, degree))
    return out


def objective(systems, C):
    return sum(float(((s.apply(C) - s.target) ** 2).sum()) for s in systems)


def test_recovers_the_images_of_known_colours_with_view_dependence():
    pts, radii, dens, cams = scene()
    bg = torch.tensor([0.2, 0.3, 0.1])
    g = torch.Generator().manual_seed(3)
    C_true = torch.cat([torch.rand(len(pts), 1, 3, generator=g) * 0.6 + 0.2,
                        (torch.rand(len(pts), 3, 3, generator=g) - 0.5) * 0.3], 1)
    systems = systems_for(pts, radii, dens, cams, C_true, bg, 1)
    init = torch.full_like(C_true, 0.5)
    init[:, 1:] = 0
    C = fit_colors(systems, init, ridge_sh=1e-4, iters=200)
    start, end = objective(systems, init), objective(systems, C)
    assert end < 1e-4 * start
    # a held-out view of the fitted colours matches the truth
    cam = Cameras.look_at([[2.5 * math.cos(0.4), 0.1, 2.5 * math.sin(0.4)]], [0, 0, 0], H=48, W=48, fov_y_deg=40)
    _, want = render(pts, radii, dens, C_true, cam, bg)
    _, got = render(pts, radii, dens, C, cam, bg)
    assert float(((want - got) ** 2).mean()) < 1e-4


def test_colour_only_fit_and_unseen_points_keep_their_start():
    pts, radii, dens, cams = scene(P=300)
    hidden = torch.tensor([[0.0, 0.0, 0.0]])  # a point inside the sphere: no camera sees it
    pts = torch.cat([pts, hidden])
    radii, dens = torch.cat([radii, radii[:1] * 0.2]), torch.cat([dens, dens[:1]])
    bg = torch.zeros(3)
    C_true = torch.rand(len(pts), 1, 3, generator=torch.Generator().manual_seed(5))
    systems = systems_for(pts, radii, dens, cams, C_true, bg, 0)
    init = torch.full_like(C_true, 0.5)
    init[-1] = torch.tensor([0.9, 0.1, 0.4])
    C = fit_colors(systems, init, iters=100)
    assert objective(systems, C) < 1e-3 * objective(systems, init)
    assert torch.allclose(C[-1], init[-1], atol=1e-5)


def test_sparse_rows_match_the_compositor():
    """A_v C reproduces the compositor's image of the same colours (minus the background)."""
    pts, radii, dens, cams = scene(P=300, views=2)
    bg = torch.tensor([0.3, 0.2, 0.1])
    C = torch.rand(len(pts), 4, 3, generator=torch.Generator().manual_seed(2)) * 0.3
    frags, img = render(pts, radii, dens, C, cams[0], bg)
    s = view_system(frags, pts, radii, dens, cams[0], img, bg, 1)
    assert float((s.apply(C) - s.target).abs().max()) < 1e-5


def test_a_few_iterations_never_increase_the_error():
    """Conjugate gradients decrease the quadratic objective at every step, so even a short fit
    (as `fourd bake` runs) is at least as good as the per-point estimate it starts from."""
    pts, radii, dens, cams = scene(P=250, views=5)
    bg = torch.zeros(3)
    g = torch.Generator().manual_seed(7)
    C_true = torch.cat([torch.rand(len(pts), 1, 3, generator=g), torch.randn(len(pts), 3, 3, generator=g) * 0.1], 1)
    systems = systems_for(pts, radii, dens, cams, C_true, bg, 1)
    init = C_true + 0.2 * torch.randn(C_true.shape, generator=g)
    last = objective(systems, init)
    for iters in (1, 2, 4, 8):
        e = objective(systems, fit_colors(systems, init, ridge=1e-6, ridge_sh=1e-6, iters=iters))
        assert e <= last * (1 + 1e-6)
        last = e


def test_neighbour_graph_laplacian_is_the_dense_one():
    from fourd.bake.refit import neighbours

    g = torch.Generator().manual_seed(0)
    pts = torch.rand(60, 3, generator=g)
    pts[:5] += 10  # a far cluster: its edges to the rest are dropped, not smoothed across
    nb = neighbours(pts, k=4)
    assert nb.idx.shape == (60, 4)
    L = torch.zeros(60, 60)
    for i in range(60):
        for j, m in zip(nb.idx[i].tolist(), nb.mask[i].tolist()):
            L[i, i] += m
            L[j, j] += m
            L[i, j] -= m
            L[j, i] -= m
    C = torch.randn(60, 2, 3, generator=g)
    torch.testing.assert_close(nb.laplacian(C), torch.einsum("ij,jbc->ibc", L, C))
    torch.testing.assert_close(nb.degree(), L.diagonal())
    far = nb.idx[:5][nb.mask[:5] > 0]
    assert (far < 5).all()  # the far cluster keeps only edges among itself


def test_smoothing_fills_unseen_points_from_their_neighbours():
    """A point no view constrains keeps its start without smoothing and takes its neighbours'
    colour with it; the seen points still reproduce their images."""
    from fourd.bake.refit import neighbours

    pts, radii, dens, cams = scene()
    bg = torch.tensor([0.0, 0.0, 0.0])
    C_true = torch.full((len(pts), 1, 3), 0.6)
    systems = systems_for(pts, radii, dens, cams, C_true, bg, 0)
    hidden = torch.zeros(len(pts), dtype=torch.bool)
    hidden[0] = True
    for s in systems:  # as if no view saw point 0
        s.w[s.idx == 0] = 0
    init = torch.full_like(C_true, 0.1)
    graph = neighbours(pts)
    plain = fit_colors(systems, init, iters=100)
    smooth = fit_colors(systems, init, iters=100, smooth=0.5, graph=graph)
    assert abs(float(plain[0, 0, 0]) - 0.1) < 0.02
    around = smooth[graph.idx[0], 0, 0]  # (they also make up for the hidden point's share of the image)
    assert around.min() > 0.5 and abs(float(smooth[0, 0, 0]) - float(around.mean())) < 0.05
    assert objective(systems, smooth) < 0.05 * objective(systems, init)
