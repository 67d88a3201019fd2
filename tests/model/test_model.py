"""Model pieces: the 4D grid, SH, the geometry head, the appearance blend and the composed model."""

import math

import pytest
import torch

from fourd.model.appearance import Appearance, SourceView
from fourd.model.geometry import GeometryHead
from fourd.model.grid4d import Grid4D, Grid4DConfig
from fourd.model.model import FourDModel, ModelConfig
from fourd.model.sh import sh_basis
from fourd.render.rasterize import rasterize_points
from fourd.structures.cameras import Cameras
from fourd.structures.fragments import RasterSettings
from fourd.structures.points import PointSequence


@pytest.mark.parametrize("combine", ["sum", "product"])
def test_grid4d_shapes_and_gradients(combine):
    cfg = Grid4DConfig(levels=3, features=4, spatial_min=8, spatial_max=32, time_max=8, combine=combine)
    g = Grid4D(cfg, torch.tensor([-1.0, -1, -1]), torch.tensor([1.0, 1, 1]), n_frames=5)
    x = torch.rand(50, 3) * 2 - 1
    f = g(x, 2.0)
    assert f.shape == (50, 12) and g.out_dim == 12
    f.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.planes)
    # coordinates: the volume's corners map to ±1, frames to [−1, 1]
    q = g.normalize(torch.tensor([[-1.0, -1, -1], [1.0, 1, 1]]), 4.0)
    torch.testing.assert_close(q, torch.tensor([[-1.0, -1, -1, 1], [1.0, 1, 1, 1]]))


def test_grid4d_features_vary_in_space_and_time():
    g = Grid4D(Grid4DConfig(levels=1, features=4, spatial_min=16, spatial_max=16), torch.zeros(3), torch.ones(3), 10)
    x = torch.rand(20, 3)
    assert not torch.allclose(g(x, 0.0), g(x, 9.0))
    assert not torch.allclose(g(x, 3.0), g(x.flip(0), 3.0))


def _walk(turn: torch.Tensor | None = None) -> torch.Tensor:
    """A subject's points over a walk: a 0.5 × 1.0 × 0.3 body moving 2 along x (optionally turned)."""
    g = torch.Generator().manual_seed(0)
    body = torch.rand(4000, 3, generator=g) * torch.tensor([0.5, 1.0, 0.3])
    p = torch.cat([body + torch.tensor([2.0 * f / 9, 0.0, 0.0]) for f in range(10)])
    return p if turn is None else p @ turn.T


def test_the_grid_box_follows_the_subject_not_the_worlds_axes():
    """A capture whose world is turned against the subject's path (a z-up rig, structure from
    motion, a walk across the room's diagonal) left most of the axis-aligned box empty; the box is
    taken along the points' principal axes then, and is the box of the untouched capture. A world
    box that already fits is kept exactly."""
    from fourd.model.grid4d import principal_axes
    from fourd.model.model import principal_box

    a = math.radians(35)
    turn = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1.0, 0], [-math.sin(a), 0, math.cos(a)]]) @ \
        torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # y → z, then 35° about y
    for pts in (_walk(), _walk(turn)):
        axes = principal_axes(pts)
        torch.testing.assert_close(axes @ axes.T, torch.eye(3), atol=1e-5, rtol=0)
        assert abs(float(torch.det(axes)) - 1) < 1e-5
    straight, turned = _walk(), _walk(turn)
    lo, hi = straight.min(0).values, straight.max(0).values
    assert principal_box(straight, lo, hi)[0] is None  # the world box fits: kept, as before
    tlo, thi = turned.min(0).values, turned.max(0).values
    axes, plo, phi = principal_box(turned, tlo, thi, margin=0.0)
    assert axes is not None
    torch.testing.assert_close((phi - plo).sort().values, (hi - lo).sort().values, atol=0.02, rtol=0)
    assert float((phi - plo).prod()) < 0.6 * float((thi - tlo).prod())
    g = Grid4D(Grid4DConfig(levels=1, features=2, spatial_min=8, spatial_max=8), plo, phi, 4, axes)
    q = g.normalize(turned, 0.0)[:, :3]
    assert float(q.min()) >= -1 - 1e-5 and float(q.max()) <= 1 + 1e-5 and float(q.abs().amax(0).min()) > 0.99


def test_tv_loss_penalizes_roughness():
    g = Grid4D(Grid4DConfig(levels=1, features=2, spatial_min=8, spatial_max=8), torch.zeros(3), torch.ones(3), 4)
    rough = float(g.tv_loss().detach())
    with torch.no_grad():
        for p in g.planes:
            p.copy_(p.mean())
    assert float(g.tv_loss()) < 1e-12 < rough


def test_sh_basis_is_orthonormal():
    d = torch.nn.functional.normalize(torch.randn(400_000, 3, dtype=torch.float64), dim=1)
    Y = sh_basis(d, 3)
    gram = Y.t() @ Y / d.shape[0] * 4 * math.pi
    torch.testing.assert_close(gram, torch.eye(16, dtype=torch.float64), atol=0.02, rtol=0)


def test_geometry_head_ranges_and_init():
    h = GeometryHead(8, 16, r_min=0.01, r_max=0.1, r_init=0.03, density_init=0.9)
    r, d = h(torch.randn(100, 8))
    assert ((r > 0.01) & (r < 0.1)).all()
    torch.testing.assert_close(r.mean(), torch.tensor(0.03), atol=3e-3, rtol=0)
    torch.testing.assert_close(d.mean(), torch.tensor(0.9), atol=0.02, rtol=0)
    with pytest.raises(ValueError):
        GeometryHead(8, 16, r_min=0.1, r_max=0.01, r_init=0.05)


def _ring(n=4, size=32):
    return Cameras.ring(n, 3.0, 0.5, H=size, W=size, fov_y_deg=40)


def test_uniform_blend_of_constant_images_is_that_colour():
    cams = _ring()
    colours = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1, 0]])
    src = [SourceView(c[:, None, None].expand(3, 32, 32).clone(), cams[i]) for i, c in enumerate(colours)]
    app = Appearance(feat_dim=4)
    xyz = torch.randn(10, 3) * 0.1
    out = app(xyz, torch.zeros(10, 4), torch.full((10,), 0.05), cams[0], src, uniform=True)
    torch.testing.assert_close(out, colours.mean(0).expand(10, 3), atol=1e-5, rtol=0)
    # a source that cannot see the points (its depth map is in front of them) contributes nothing
    src[3].zfront = torch.full((32, 32), 0.5)
    out = app(xyz, torch.zeros(10, 4), torch.full((10,), 0.05), cams[0], src, uniform=True)
    torch.testing.assert_close(out, colours[:3].mean(0).expand(10, 3), atol=1e-5, rtol=0)


def test_points_no_source_sees_get_the_predicted_colour():
    cams = _ring()
    src = [SourceView(torch.rand(3, 32, 32), cams[i], torch.full((32, 32), 0.1)) for i in range(4)]
    app = Appearance(feat_dim=4, mode="blend")
    feat = torch.randn(6, 4)
    out = app(torch.zeros(6, 3), feat, torch.full((6,), 0.05), cams[0], src)
    torch.testing.assert_close(out, torch.sigmoid(app.base(feat)))


def test_residual_is_what_the_trainer_penalizes():
    torch.manual_seed(0)
    cams = _ring()
    src = [SourceView(torch.rand(3, 32, 32), cams[i]) for i in range(4)]
    app = Appearance(feat_dim=4)
    with torch.no_grad():
        app.sh_head.weight.normal_()  # a residual far from zero
    xyz, feat, rad = torch.randn(12, 3) * 0.1, torch.randn(12, 4), torch.full((12,), 0.05)
    hybrid = app(xyz, feat, rad, cams[0], src)
    residual = app.residual
    app.mode = "blend"
    blend = app(xyz, feat, rad, cams[0], src)
    assert app.residual is None  # no residual to penalize without SH
    torch.testing.assert_close(hybrid - blend, residual)  # the residual is exactly what SH adds
    assert float(residual.abs().max()) <= app.sh_scale and float(residual.abs().mean()) > 0.01
    app.mode = "hybrid"
    with app.without_residual():  # what camera colour fitting compares with: the blend alone
        torch.testing.assert_close(app(xyz, feat, rad, cams[0], src), blend)
        assert app.residual is None
    torch.testing.assert_close(app(xyz, feat, rad, cams[0], src), hybrid)  # back on after the block


def test_model_renders_and_gradients_reach_every_part():
    torch.manual_seed(0)
    pts = [torch.randn(300, 3) * 0.2 for _ in range(2)]
    seq = PointSequence.from_list(pts, [0, 1])
    cfg = ModelConfig(grid=Grid4DConfig(levels=2, features=4, spatial_min=8, spatial_max=16, time_max=2))
    m = FourDModel(cfg, seq, torch.full((3,), -0.8), torch.full((3,), 0.8), spacing=0.03)
    with torch.no_grad():  # the blend's last layer starts at zero (pure directional prior); as after a first step:
        m.appearance.blend[-1].weight.normal_(0, 0.1)
    cams = _ring(5, 40)
    sources = [SourceView(torch.rand(3, 40, 40), cams[i]) for i in range(1, 5)]
    ras = lambda p, r, c, s: rasterize_points(p, r, c, s, backend="torch")  # noqa: E731
    out = m(1, cams[0], sources, RasterSettings(K=4, near=0.5, far=10), ras)
    assert out.image.rgb.shape == (40, 40, 3) and out.visible.numel() > 50
    assert sources[0].zfront is not None  # visibility maps were made
    out.image.rgb.sum().backward()
    assert m.positions.grad[300:].abs().sum() > 0 and m.positions.grad[:300].abs().sum() == 0  # only frame 1
    for name, mod in (("grid", m.grid), ("geometry", m.geometry), ("cnn", m.appearance.cnn),
                      ("blend", m.appearance.blend), ("sh", m.appearance.sh_head)):
        assert sum(float(p.grad.abs().sum()) for p in mod.parameters() if p.grad is not None) > 0, name


def test_a_checkpoint_from_before_the_grids_axes_loads_in_world_axes():
    """Runs saved before the grid had axes of its own were trained in the world's: they load so."""
    from fourd.train.run import load_model_state

    pts = _walk(torch.tensor([[0.6, 0.0, 0.8], [0.0, 1.0, 0.0], [-0.8, 0.0, 0.6]]))
    seq = PointSequence(pts, torch.arange(0, 40001, 4000), list(range(10)))
    cfg = ModelConfig(grid=Grid4DConfig(levels=1, features=2, spatial_min=8, spatial_max=8, time_max=4))
    lo, hi = pts.min(0).values, pts.max(0).values
    m = FourDModel(cfg, seq, lo, hi, spacing=0.03)
    assert not torch.equal(m.grid.axes, torch.eye(3))  # turned against the walk: its own axes
    old = {k: v for k, v in m.state_dict().items() if k != "grid.axes"}
    old["grid.lo"], old["grid.hi"] = lo, hi  # what such a run saved: the world box
    again = FourDModel(cfg, seq, lo, hi, spacing=0.03)
    load_model_state(again, old, "old.pt")
    torch.testing.assert_close(again.grid.axes, torch.eye(3))
    torch.testing.assert_close(again.grid.normalize(lo[None], 0.0)[0, :3], torch.full((3,), -1.0))
