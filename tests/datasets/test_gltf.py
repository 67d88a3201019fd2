"""Animated glTF: keyframes are hit exactly, skinning is rigid where one joint rules, motion is smooth."""

import numpy as np
import pytest

from fourd.datasets.gltf import AnimatedAsset, _quat_to_mat, _slerp
from fourd.datasets.synth import resolve_asset
from fourd.errors import DataError


@pytest.fixture(scope="module")
def fox():
    return AnimatedAsset(resolve_asset("Fox.glb"), "Walk")


def test_fox_metadata(fox):
    assert fox.animation_names == ["Survey", "Walk", "Run"]
    assert len(fox.primitives) == 1
    p = fox.primitives[0]
    assert p.texture is not None and p.texture.shape[2] in (3, 4) and p.uvs is not None
    assert p.joints.shape == (len(p.positions), 4) and p.joints.max() < 24
    assert 0.5 < fox.duration < 2.0


def test_keyframes_are_reproduced_exactly(fox):
    a = fox.g.animations[fox.animation]
    ch = next(c for c in a.channels if c.target.path == "rotation")
    times = fox.accessor(a.samplers[ch.sampler].input)[:, 0]
    vals = fox.accessor(a.samplers[ch.sampler].output).reshape(len(times), 4)
    node = ch.target.node
    for k in (1, len(times) // 2):
        local, _ = fox._local_trs(float(times[k]))
        R = local[node][:3, :3] / np.linalg.norm(local[node][:3, 0])
        np.testing.assert_allclose(R, _quat_to_mat(vals[k].astype(np.float64)), atol=1e-5)


def test_skinning_is_rigid_for_single_joint_vertices(fox):
    """Vertices bound fully to one joint move rigidly: pairwise distances are preserved."""
    p = fox.primitives[0]
    w = p.weights / p.weights.sum(1, keepdims=True)
    j = np.bincount(p.joints[w[:, 0] > 0.999, 0]).argmax()
    sel = np.nonzero((w[:, 0] > 0.999) & (p.joints[:, 0] == j))[0][:30]
    assert len(sel) >= 4
    a, b = fox.pose(0.1)[0][sel], fox.pose(0.6)[0][sel]
    da = np.linalg.norm(a[:, None] - a[None], axis=-1)
    db = np.linalg.norm(b[:, None] - b[None], axis=-1)
    np.testing.assert_allclose(da, db, rtol=1e-3, atol=1e-3)
    assert np.abs(a - b).max() > 1e-2  # and they did move


def test_motion_is_continuous_and_finite(fox):
    v0, v1, v2 = (fox.pose(t)[0] for t in (0.3, 0.301, 0.6))
    assert np.isfinite(v0).all()
    step, far = np.abs(v1 - v0).max(), np.abs(v2 - v0).max()
    assert step < far / 20 and far > 0


def test_slerp_midpoint_is_unit_and_between():
    a = np.array([0, 0, 0, 1.0])
    b = np.array([0, np.sin(0.5), 0, np.cos(0.5)])  # 1 rad about y
    q = _slerp(a, b, 0.5)
    np.testing.assert_allclose(np.linalg.norm(q), 1.0)
    np.testing.assert_allclose(q, [0, np.sin(0.25), 0, np.cos(0.25)], atol=1e-9)


def test_bad_assets(tmp_path):
    with pytest.raises(DataError, match="not found"):
        AnimatedAsset(tmp_path / "nope.glb")
    p = tmp_path / "bad.glb"
    p.write_bytes(resolve_asset("Fox.glb").read_bytes()[:5000])
    with pytest.raises(DataError):
        AnimatedAsset(p)
    with pytest.raises(DataError, match="no animation named"):
        AnimatedAsset(resolve_asset("Fox.glb"), "Dance")


def test_default_clip_falls_back_to_the_first():
    """`fourd data synth --asset CesiumMan.glb` without --animation: CesiumMan's one clip has no
    name, so the default 'Walk' plays that clip instead of failing; a named clip that is missing
    still fails."""
    from fourd.datasets.synth import DEFAULT_CLIP, open_asset

    cm = open_asset("CesiumMan.glb", DEFAULT_CLIP)
    assert cm.animation == 0 and cm.duration > 0
    fox = open_asset("Fox.glb", DEFAULT_CLIP)
    assert fox.animation_names[fox.animation] == "Walk"
    with pytest.raises(DataError, match=r"no animation named 'Walk' \(have: #0\)"):
        AnimatedAsset(resolve_asset("CesiumMan.glb"), "Walk")
