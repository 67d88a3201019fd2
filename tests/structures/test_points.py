"""PLY frames: what write_ply writes, read_ply (and the viewer) read back; bad files are refused."""

import pytest
import torch


def test_ply_frames_read_back_with_every_attribute(tmp_path):
    from fourd.structures.points import read_ply, write_ply
    from fourd.viewer.scene import open_scene

    g = torch.Generator().manual_seed(3)
    xyz = torch.randn(50, 3, generator=g)
    attrs = {"colors": torch.rand(50, 3, generator=g), "normals": torch.nn.functional.normalize(torch.randn(50, 3)),
             "radius": torch.rand(50, generator=g) * 0.1 + 0.01, "density": torch.rand(50, generator=g),
             "sh": torch.randn(50, 4, generator=g)}
    write_ply(tmp_path / "000000.ply", xyz, attrs)
    pts, back = read_ply(tmp_path / "000000.ply")
    assert torch.equal(pts, xyz)
    assert (back["colors"] - attrs["colors"]).abs().max() <= 0.5 / 255 + 1e-6  # uchar colours
    for k in ("normals", "radius", "density", "sh"):
        torch.testing.assert_close(back[k], attrs[k].reshape(back[k].shape), rtol=0, atol=1e-7)
    # the viewer draws them with the radius and density that were written, not a guess
    frame = open_scene(tmp_path).frame(0)
    assert torch.equal(frame.radius, attrs["radius"]) and torch.equal(frame.density, attrs["density"])


def test_ply_reader_refuses_truncated_and_nan(tmp_path):
    from fourd.errors import DataError
    from fourd.structures.points import read_ply, write_ply

    p = write_ply(tmp_path / "a.ply", torch.rand(20, 3), {"radius": torch.rand(20)})
    raw = p.read_bytes()
    (tmp_path / "cut.ply").write_bytes(raw[:-30])
    with pytest.raises(DataError, match="truncated"):
        read_ply(tmp_path / "cut.ply")
    bad = torch.rand(20, 3)
    bad[3, 1] = float("nan")
    write_ply(tmp_path / "nan.ply", bad)
    with pytest.raises(DataError, match="NaN"):
        read_ply(tmp_path / "nan.ply")
    (tmp_path / "ascii.ply").write_text("ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\n"
                                        "property float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\n"
                                        "end_header\n0 0 0 255 0 0\n1 2 3 0 255 0\n")
    pts, attrs = read_ply(tmp_path / "ascii.ply")
    assert pts.tolist() == [[0, 0, 0], [1, 2, 3]] and attrs["colors"][1].tolist() == [0, 1, 0]
