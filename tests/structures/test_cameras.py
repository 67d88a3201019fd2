import math

import numpy as np
import pytest
import torch

from fourd.structures.cameras import Cameras, K_from_opencv, K_to_opencv, distort_points, undistort_points


def random_cameras(B=5, seed=0, distortion=False) -> Cameras:
    g = torch.Generator().manual_seed(seed)
    eye = torch.randn(B, 3, generator=g) * 3 + torch.tensor([0, 0, -6.0])
    cams = Cameras.look_at(eye, torch.randn(3, generator=g) * 0.2, fov_y_deg=45, H=120, W=160)
    K = cams.K.clone()
    K[:, 0, 0] *= 1 + 0.1 * torch.rand(B, generator=g)
    K[:, 0, 2] += torch.rand(B, generator=g) * 4 - 2
    D = torch.zeros(B, 5)
    if distortion:
        D = torch.tensor([-0.12, 0.03, 0.001, -0.002, 0.0]).expand(B, 5) * (1 + torch.rand(B, 1, generator=g))
    return Cameras(K, cams.R, cams.T, cams.H, cams.W, D)


@pytest.mark.parametrize("distortion", [False, True])
def test_project_unproject_round_trip(distortion):
    cams = random_cameras(distortion=distortion)
    X = torch.randn(200, 3) * 0.5
    uv, z = cams.project(X)
    assert uv.shape == (5, 200, 2) and z.shape == (5, 200)
    assert (z > 0).all()
    back = cams.unproject(uv, z)
    torch.testing.assert_close(back, X.expand(5, -1, -1), atol=1e-4, rtol=0)


def test_distortion_inverse():
    D = torch.tensor([[-0.2, 0.05, 0.002, -0.001, 0.01]])
    xy = torch.rand(1, 500, 2) * 0.8 - 0.4
    torch.testing.assert_close(undistort_points(distort_points(xy, D), D), xy, atol=1e-6, rtol=0)


def test_look_at_orientation():
    cams = Cameras.look_at([[0.0, 0.5, -4.0]], [0, 0.5, 0], up=(0, 1, 0), H=100, W=200)
    uv, z = cams.project(torch.tensor([[0, 0.5, 0.0], [0, 1.0, 0.0], [1.0, 0.5, 0.0]]))
    torch.testing.assert_close(uv[0, 0], torch.tensor([100.0, 50.0]))  # target at the image centre
    assert uv[0, 1, 1] < 50  # world up is image up (v decreases)
    # camera at -z looking toward +z with y up: world +x is on the image's left
    assert uv[0, 2, 0] < 100
    torch.testing.assert_close(cams.centers[0], torch.tensor([0, 0.5, -4.0]))


def test_ring_is_a_circle_looking_inward():
    cams = Cameras.ring(8, radius=3.0, height=1.0, target=(0, 0, 0))
    C = cams.centers
    torch.testing.assert_close(C[:, 1], torch.ones(8))
    torch.testing.assert_close(torch.hypot(C[:, 0], C[:, 2]), torch.full((8,), 3.0))
    uv, _ = cams.project(torch.zeros(1, 3))
    torch.testing.assert_close(uv[:, 0], torch.tensor([256.0, 256.0]).expand(8, 2), atol=1e-3, rtol=0)


def test_resize_and_crop_match_image_operations():
    cams = random_cameras()
    X = torch.randn(50, 3) * 0.3
    uv, _ = cams.project(X)
    uv2, _ = cams.resize(60, 80).project(X)
    torch.testing.assert_close(uv2, uv * 0.5, atol=1e-4, rtol=0)  # exact with pixel centres at +0.5
    uv3, _ = cams.crop(10, 7, 50, 40).project(X)
    torch.testing.assert_close(uv3, uv - torch.tensor([10.0, 7.0]), atol=1e-4, rtol=0)
    c = cams.crop(10, 7, 50, 40)
    assert c.W.tolist() == [50] * 5 and c.H.tolist() == [40] * 5


def test_gl_matrices_reproduce_projection():
    cams = random_cameras()
    X = torch.randn(100, 3) * 0.5
    uv, z = cams.project(X)
    near, far = 0.1, 50.0
    Xh = torch.cat([X, torch.ones(100, 1)], 1)
    clip = Xh @ (cams.gl_projection(near, far) @ cams.gl_view()).transpose(1, 2)
    ndc = clip[..., :3] / clip[..., 3:]
    u = (ndc[..., 0] + 1) / 2 * cams.W[:, None]
    v = cams.H[:, None] - (ndc[..., 1] + 1) / 2 * cams.H[:, None]  # GL window y is up
    torch.testing.assert_close(torch.stack([u, v], -1), uv, atol=1e-3, rtol=0)
    torch.testing.assert_close(clip[..., 3], z, atol=1e-4, rtol=0)  # w_clip is the camera depth
    assert (ndc[..., 2].abs() <= 1).all()


def test_opencv_K_convention_round_trip():
    K = np.array([[500.0, 0, 319.5], [0, 500, 239.5], [0, 0, 1]])
    ours = K_from_opencv(K)
    assert ours[0, 2] == 320 and ours[1, 2] == 240
    np.testing.assert_array_equal(K_to_opencv(ours), K)


def test_undistort_image_moves_a_dot_to_its_undistorted_place():
    cams = random_cameras(B=1, distortion=True)
    X = torch.tensor([[0.25, -0.2, 0.1]])
    uv_d, _ = cams.project(X, distort=True)
    uv_u, _ = cams.project(X, distort=False)
    img = np.zeros((120, 160), np.uint8)
    x, y = uv_d[0, 0].tolist()
    img[int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2] = 255  # 3x3 dot around the distorted pixel
    out = cams.undistort_image(img, 0).astype(np.float64)
    ys, xs = np.nonzero(out > 0)
    w = out[ys, xs]
    cx, cy = (xs * w).sum() / w.sum() + 0.5, (ys * w).sum() / w.sum() + 0.5
    assert math.hypot(cx - uv_u[0, 0, 0].item(), cy - uv_u[0, 0, 1].item()) < 0.75


def test_undistort_image_keeps_a_texture_sharp():
    """A sharp texture seen through a lens (−0.1 / 0.03) and undistorted comes back closer to the
    original than a bilinear resample brings it: bilinear is a blur at fractional offsets."""
    import cv2

    from fourd.structures.cameras import lens_map

    H, W = 160, 200
    K = torch.tensor([[[180.0, 0, 100], [0, 180.0, 80], [0, 0, 1]]])
    cams = Cameras(K, torch.eye(3)[None], torch.tensor([[0.0, 0, 2]]), torch.tensor([H]), torch.tensor([W]),
                   torch.tensor([[-0.1, 0.03, 0, 0, 0]]))
    rng = np.random.default_rng(0)
    tex = cv2.resize(rng.uniform(0, 255, (H // 4, W // 4)), (W, H), interpolation=cv2.INTER_CUBIC)
    tex = np.clip(tex, 0, 255).astype(np.float32)
    seen = cv2.remap(tex, *lens_map(cams.K[0].double().numpy(), cams.D[0].double().numpy(), H, W), cv2.INTER_LANCZOS4)
    inner = (slice(20, H - 20), slice(20, W - 20))

    def psnr(img):
        return -10 * math.log10(float(np.mean(((img - tex)[inner] / 255) ** 2)))

    sharp = psnr(cams.undistort_image(seen, 0))
    blurred = psnr(cams.undistort_image(seen, 0, cv2.INTER_LINEAR))
    assert sharp > blurred + 2, (sharp, blurred)


def test_dict_round_trip_and_indexing():
    cams = random_cameras(distortion=True)
    back = Cameras.from_dict(cams.to_dict())
    for a in ("K", "R", "T", "D", "H", "W"):
        torch.testing.assert_close(getattr(back, a), getattr(cams, a))
    sub = cams[[3, 1]]
    assert sub.names == ["03", "01"] and torch.equal(sub.K[0], cams.K[3])
    assert cams["02"].names == ["02"]
    with pytest.raises(KeyError, match="no camera named"):
        cams.index("nope")


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda d: d["R"][0][0].__setitem__(0, float("nan")), "NaN"),
        (lambda d: d["R"][1][0].__setitem__(0, 1.5), "not a rotation"),
        (lambda d: d.__setitem__("R", (-torch.tensor(d["R"])).tolist()), "not a rotation"),  # det −1
        (lambda d: d.__setitem__("T", [[0.0, 0.0]] * 5), "T must have shape"),
        (lambda d: d["K"][0][0].__setitem__(0, -5.0), "focal"),
        (lambda d: d.__setitem__("H", [0] * 5), "positive"),
    ],
)
def test_validation_errors(edit, match):
    d = random_cameras().to_dict()
    edit(d)
    with pytest.raises(ValueError, match=match):
        Cameras.from_dict(d)


def test_dtype_is_a_setting():
    cams = random_cameras()
    c64 = cams.to(dtype=torch.float64)
    assert c64.K.dtype == torch.float64
    X = torch.randn(10, 3, dtype=torch.float64) * 0.3
    uv64, _ = c64.project(X)
    uv32, _ = cams.project(X.float())
    torch.testing.assert_close(uv64.float(), uv32, atol=1e-3, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here; test_dtype_is_a_setting and the "
                    "CPU tests above run the same code")
def test_cuda_matches_cpu():
    cams = random_cameras()
    X = torch.randn(20, 3) * 0.3
    uv_cpu, _ = cams.project(X)
    uv_gpu, _ = cams.to("cuda").project(X.cuda())
    torch.testing.assert_close(uv_gpu.cpu(), uv_cpu)
