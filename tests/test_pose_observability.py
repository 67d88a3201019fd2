"""scripts/diag_pose_observability.py's fits: a turn and centre shift are recovered from exact image
positions, a turn alone cannot undo a centre shift, and a parallax-shaped bias spoils the rotation."""

import sys
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import diag_pose_observability as dpo


def _scene(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(scale=[0.3, 0.5, 0.3], size=(3000, 3))  # a subject ~1 m tall at the origin
    C = np.array([0.0, 0.2, 3.0])  # 3 m away, looking at it (-z in world)
    R = np.diag([1.0, -1.0, -1.0])  # OpenCV camera: x right, y down, z forward (toward -z world)
    K = np.array([[700.0, 0, 256], [0, 700.0, 256], [0, 0, 1]])
    return K, R, C, X


def _angle(Ra, Rb):
    return float(np.degrees(np.linalg.norm(Rotation.from_matrix(Ra @ Rb.T).as_rotvec())))


def test_six_dof_fit_recovers_the_turn_a_turn_alone_cannot():
    K, Rt, Ct, X = _scene()
    turn = Rotation.from_rotvec(np.radians(0.08) * np.array([0.6, 0.8, 0.0])).as_matrix()
    Rg, Cg = turn @ Rt, Ct + np.array([0.006, -0.004, 0.002])  # the given, wrong, pose
    obs = dpo._project(K, Rt, Ct, X)
    R6, C6 = dpo._fit(K, Rg, Cg, X, obs, 6)
    assert _angle(R6, Rt) < 2e-3 and np.linalg.norm(C6 - Ct) < 1e-4
    R3, C3 = dpo._fit(K, Rg, Cg, X, obs, 3)
    # the turn alone moves the image most of the way back but keeps a rotation error of the order of
    # the centre shift's angle (0.007 / 3 rad ~ 0.14 deg)
    err3 = np.linalg.norm(dpo._project(K, R3, C3, X) - obs, axis=1).mean()
    err0 = np.linalg.norm(dpo._project(K, Rg, Cg, X) - obs, axis=1).mean()
    assert err3 < 0.3 * err0
    assert _angle(R3, Rt) > 0.05


def test_parallax_shaped_bias_spoils_the_rotation_and_noise_does_not():
    K, Rt, Ct, X = _scene(1)
    Rg, Cg = Rt, Ct + np.array([0.005, 0.0, 0.0])
    truth = dpo._project(K, Rt, Ct, X)
    z = ((X - Ct) @ Rt.T)[:, 2]
    bias = truth + 0.1 * ((z - z.mean()) / z.std())[:, None] * np.array([1.0, 0.0])
    noisy = truth + np.random.default_rng(2).normal(scale=0.3, size=truth.shape)
    Rb, _ = dpo._fit(K, Rg, Cg, X, bias, 6)
    Rn, _ = dpo._fit(K, Rg, Cg, X, noisy, 6)
    assert _angle(Rn, Rt) < 0.01
    assert _angle(Rb, Rt) > 5 * _angle(Rn, Rt)
