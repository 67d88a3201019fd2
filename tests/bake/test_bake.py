"""Baked files: round trip, checksums, versions, truncation; a baked frame renders like the model."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fourd.bake.format import BakedFrame, BakedSequence, write_baked
from fourd.errors import DataError


def frames(n=2, N=500, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [BakedFrame(torch.rand(N, 3, generator=g) * 2 - 1, torch.rand(N, generator=g) * 0.02 + 0.001,
                       torch.rand(N, generator=g), torch.rand(N, 3, generator=g),
                       (torch.rand(N, 3, 3, generator=g) - 0.5) * 0.4) for _ in range(n)]


def test_round_trip_within_quantization(tmp_path):
    fr = frames()
    p = write_baked(tmp_path / "s.fourd", fr, [3, 4], ([-1, -1, -1], [1, 1, 1]), {"names": []}, 25.0)
    seq = BakedSequence(p)
    assert seq.frames == [3, 4] and seq.counts == [500, 500] and seq.fps == 25.0 and seq.has_sh
    g = seq.frame(1)
    assert (g.xyz - fr[1].xyz).abs().max() < 2 / 65535
    assert (g.rgb - fr[1].rgb).abs().max() <= 0.5 / 255 + 1e-6
    assert (g.density - fr[1].density).abs().max() <= 0.5 / 255 + 1e-6
    assert (g.radius - fr[1].radius).abs().max() < 1e-5
    scale = seq.sh_scales[1]
    assert 0 < scale <= fr[1].sh.abs().max() + 1e-6
    within = fr[1].sh.abs() <= scale
    assert within.float().mean() >= 0.998  # only the largest 0.1 % are clipped
    assert (g.sh - fr[1].sh)[within].abs().max() <= 0.5 * scale / 7 + 1e-6  # 4-bit levels
    assert (g.sh - fr[1].sh.clamp(-scale, scale)).abs().max() <= 0.5 * scale / 7 + 1e-6
    assert seq.bytes_per_point < 20  # 6 + 2 + 1 + 3 + 5 bytes and a small header


def test_sh_nibbles_round_trip_every_level():
    from fourd.bake.format import pack_sh4, unpack_sh4

    levels = torch.arange(-7, 8).float()
    sh = levels[torch.randint(15, (64, 9), generator=torch.Generator().manual_seed(1))].reshape(64, 3, 3) * 0.1 / 7
    packed = pack_sh4(sh, 0.1)
    assert packed.dtype == torch.uint8 and packed.shape == (64, 5)
    assert torch.allclose(unpack_sh4(packed, 0.1), sh, atol=1e-7)


def view_frames(n=2, N=300, S=5, B=16, seed=0):
    from fourd.bake.format import ViewTables

    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(S, 3, generator=g) * 3  # the training cameras: one set per file
    out = []
    for f in frames(n, N, seed):
        v = ViewTables(centers, torch.rand(S, N, 3, generator=g),
                       torch.rand(S, N, generator=g) > 0.3, torch.randn(S, N, generator=g) * 4,
                       torch.rand(N, 3, generator=g), torch.randn(N, B, 3, generator=g) * 0.5, select=3,
                       names=[f"c{i}" for i in range(S)])
        out.append(BakedFrame(f.xyz, f.radius, f.density, f.rgb, None, v))
    return out


def test_view_tables_round_trip(tmp_path):
    from fourd.bake.render import baked_colors

    fr = view_frames(N=3000)
    p = write_baked(tmp_path / "v.fourd", fr, [0, 1], ([-1] * 3, [1] * 3), {}, 30.0)
    seq = BakedSequence(p)
    assert seq.version == 3 and seq.appearance == "views" and seq.views["names"] == [f"c{i}" for i in range(5)]
    g, f = seq.frame(1), fr[1]
    v, w = g.views, f.views
    assert v.select == 3 and v.prior == w.prior and v.sh_scale == w.sh_scale
    assert torch.equal(v.visible, w.visible)
    assert (v.rgb - w.rgb).abs().max() <= 0.5 / 255 + 1e-6 and (v.fallback - w.fallback).abs().max() <= 0.5 / 255 + 1e-6
    assert (v.logit - w.logit)[w.visible].abs().max() <= w.logit.abs().max() * 2 ** -11
    step = w.sh.abs().amax(dim=(0, 2)) / 127
    assert ((v.sh - w.sh).abs() <= 0.5 * step[None, :, None] + 1e-6).all()
    assert seq.bytes_per_point < 6 * 5 + 3 * 16 + 15 + 2  # the layout in format.py and a small header
    # colours from the file match the unquantized tables from any eye
    for eye in (torch.tensor([0.0, 0, 4]), torch.tensor([3.0, -2, 1])):
        assert (baked_colors(g, eye) - baked_colors(f, eye)).abs().max() < 0.02
    from fourd.viewer.scene import BakedScene

    assert "exact view tables (5 cameras, 3 blended)" in BakedScene(p).describe()  # the viewer's panel
    # the compact layout is still written as version 2, which older fourd reads
    assert BakedSequence(write_baked(tmp_path / "c.fourd", frames(), [0, 1], ([-1] * 3, [1] * 3), {}, 30.0)).version == 2


def test_view_tables_follow_the_nearest_cameras():
    """The blend uses the `select` sources nearest the eye: moving the eye onto a camera that alone
    sees every point with a strong logit gives that camera's colours."""
    from fourd.bake.render import baked_colors

    f = view_frames(1, S=4)[0]
    v = f.views
    v.sh = None
    v.visible[:] = True
    v.select = 1
    for s in range(4):
        assert torch.allclose(baked_colors(f, v.centers[s] * 1.001), v.rgb[s])


def test_view_tables_need_a_view_independent_blend():
    from types import SimpleNamespace

    from fourd.bake.bake import bake_frame_views
    from fourd.errors import FourdError
    from fourd.model.appearance import Appearance

    run = SimpleNamespace(model=SimpleNamespace(appearance=Appearance(8, view_input=True)), path="run")
    with pytest.raises(FourdError, match="compact"):
        bake_frame_views(run, 0)


def test_old_configs_keep_the_direction_input():
    from fourd.config import TrainConfig, from_json, to_json

    d = json.loads(to_json(TrainConfig()))
    assert d["model"]["blend_view_input"] is False
    del d["model"]["blend_view_input"]
    assert from_json(TrainConfig, json.dumps(d)).model.blend_view_input is True


def test_densities_above_one_round_trip_as_version_4(tmp_path):
    fr = frames()
    fr[1].density = fr[1].density * 3.5  # a model with --model.density-max above 1
    seq = BakedSequence(write_baked(tmp_path / "d.fourd", fr, [0, 1], ([-1] * 3, [1] * 3), {}, 30.0))
    assert seq.version == 4 and seq.density_scales[0] == 1.0
    assert seq.density_scales[1] == pytest.approx(float(fr[1].density.max()))
    for t in (0, 1):  # each frame quantized over its own range
        err = (seq.frame(t).density - fr[t].density).abs().max()
        assert err <= 0.5 * seq.density_scales[t] / 255 + 1e-6


def test_old_configs_keep_densities_at_most_one():
    from fourd.config import TrainConfig, from_json, to_json
    from fourd.model.geometry import GeometryHead

    d = json.loads(to_json(TrainConfig()))
    del d["model"]["density_max"]
    assert from_json(TrainConfig, json.dumps(d)).model.density_max == 1.0
    head = GeometryHead(8, 16, 0.1, 2.0, 1.0, density_init=0.9, density_max=4.0)
    with torch.no_grad():
        head.mlp[-1].bias[1] = 20.0
    assert torch.allclose(head(torch.zeros(3, 8))[1], torch.full((3,), 4.0))
    # starts at density-init, up to what the small random last-layer weights add (seeded: the
    # hidden activations at a zero input are the random first-layer biases)
    torch.manual_seed(0)
    head = GeometryHead(8, 16, 0.1, 2.0, 1.0, density_init=0.9, density_max=4.0)
    assert torch.allclose(head(torch.zeros(3, 8))[1], torch.full((3,), 0.9), atol=1e-2)


def test_version_1_files_still_read(tmp_path):
    """v1 stored the residual as int8 [N, 3, 3] with one scale for the file."""
    from safetensors.torch import save

    from fourd.bake.format import _crc

    n = 10
    enc = {"xyz": torch.zeros(n, 3, dtype=torch.int16), "radius": torch.full((n,), 0.01, dtype=torch.float16),
           "density": torch.full((n,), 255, dtype=torch.uint8), "rgb": torch.full((n, 3), 128, dtype=torch.uint8),
           "sh": torch.full((n, 3, 3), 127, dtype=torch.int8)}
    meta = {"format": "fourd.baked", "version": "1", "frames": "[0]", "counts": json.dumps([n]),
            "bounds": json.dumps([[0, 0, 0], [1, 1, 1]]), "cameras": "{}", "fps": "30", "background": "[0, 0, 0]",
            "sh_scale": "0.5", "crc32": json.dumps([_crc(enc)]), "has_sh": "true"}
    p = tmp_path / "v1.fourd"
    p.write_bytes(save({f"t000000.{k}": v for k, v in enc.items()}, metadata=meta))
    g = BakedSequence(p).frame(0)
    assert torch.allclose(g.sh, torch.full((n, 3, 3), 0.5)) and torch.allclose(g.rgb, torch.full((n, 3), 128 / 255))


def test_tampered_frame_fails_its_checksum(tmp_path):
    p = write_baked(tmp_path / "s.fourd", frames(), [0, 1], ([-1] * 3, [1] * 3), {}, 30.0)
    data = bytearray(p.read_bytes())
    data[-10] ^= 0xFF  # a byte of the last tensor
    p.write_bytes(bytes(data))
    seq = BakedSequence(p)
    seq.frame(0)
    with pytest.raises(DataError, match="checksum"):
        seq.frame(1)


def test_truncated_file(tmp_path):
    p = write_baked(tmp_path / "s.fourd", frames(), [0, 1], ([-1] * 3, [1] * 3), {}, 30.0)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated|damaged"):
        BakedSequence(p)


def test_newer_version_is_refused(tmp_path):
    p = write_baked(tmp_path / "s.fourd", frames(1), [0], ([-1] * 3, [1] * 3), {}, 30.0)
    raw = p.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    header["__metadata__"]["version"] = "9"
    new = json.dumps(header).encode()
    new += b" " * (n - len(new))  # keep the header length so the offsets stay valid
    p.write_bytes(raw[:8] + new + raw[8 + n:])
    with pytest.raises(DataError, match="newer"):
        BakedSequence(p)


@pytest.mark.slow
def test_bake_a_trained_run_and_view_it(tiny_ev, tmp_path, monkeypatch):
    import cv2

    from fourd.bake.bake import bake_run
    from fourd.bake.render import render_baked
    from fourd.cli import main
    from fourd.config import apply_overrides, preset
    from fourd.train.losses import psnr
    from fourd.train.trainer import Trainer

    cfg = apply_overrides(preset("demo"), {
        "dataset": str(tiny_ev), "out": str(tmp_path / "run"), "steps": 10, "K": 6, "source_size": 48,
        "eval_every": 0, "eval_frames": 1, "ckpt_every": 10, "carve": {"points": 2000, "resolution": 64},
        "model": {"grid": {"levels": 1, "spatial_min": 16, "spatial_max": 16, "time_max": 3}, "source_views": 3}})
    tr = Trainer(cfg)
    for _ in range(10):
        tr.train_step()
    tr.save()
    path = bake_run(tmp_path / "run", tmp_path / "s.fourd", views=6)
    seq = BakedSequence(path)
    assert seq.frames == [0, 1, 2] and seq.counts[0] == 2000
    # the bake records the K the model was trained with; the viewer and fourd render draw it so
    # (a run folder: from its config), unless --K says otherwise
    import fourd.offline.video as video
    from fourd.viewer.scene import open_scene

    sc = open_scene(path)
    assert seq.cameras["points_per_pixel"] == 6 and sc.K() == 6 and sc.K(3) == 3
    jobs = []
    monkeypatch.setattr(video, "render_job", lambda job, out, *a: jobs.append(job) or (out, [np.zeros((8, 8, 3))]))
    for src, K, want in ((path, None, 6), (tmp_path / "run", None, 6), (path, 9, 9)):
        video.render_request(src, tmp_path / "o.mp4", orbit=True, frames=2, K=K)
        assert jobs[-1].K == want, (src, K)
    # the baked frame looks like the model from a held-out camera
    cam_name = tr.eval_cams[0]
    tgt = tr.sampler.target(1, cam_name, crop=False, scale=1.0)
    with torch.no_grad():
        model_img = tr.render(1, tgt.camera, None).image.rgb.clamp(0, 1)
    baked_img = render_baked(seq.frame(1), tgt.camera, K=6, near=tr.settings.near, far=tr.settings.far)
    assert psnr(baked_img, model_img) > 25
    # the fit holds at most FIT_BYTES of rows: with room for one view it fits against one (the first
    # of the spread order), and the bake still looks like the model
    import fourd.bake.bake as bake_mod

    used = []
    real = bake_mod.view_system
    monkeypatch.setattr(bake_mod, "view_system", lambda *a, **k: used.append(a[4]) or real(*a, **k))
    from fourd.train.run import load_run

    run = load_run(tmp_path / "run")
    bake_mod.bake_frame(run, 1, tr.train_cams[:2], True)
    assert len(used) == len(tr.train_cams)  # the demo-sized default holds every view
    used.clear()
    monkeypatch.setattr(bake_mod, "FIT_BYTES", 1)
    small = bake_mod.bake_frame(run, 1, tr.train_cams[:2], True)
    assert len(used) == 1
    assert psnr(render_baked(small, tgt.camera, K=6, near=tr.settings.near, far=tr.settings.far), model_img) > 20
    shot = tmp_path / "shot.png"
    assert main(["--quiet", "view", str(path), "--headless", "--camera", cam_name, "--frame", "1",
                 "--screenshot", str(shot), "--size", "64x48"]) == 0
    img = cv2.imread(str(shot))
    assert img.shape == (48, 64, 3) and img.max() > 50
    # the run folder itself: baked once into RUN/scene.fourd (the same picture), reused while no newer
    # checkpoint exists, baked again after one
    run_shot = tmp_path / "run_shot.png"
    view_run = ["--quiet", "view", str(tmp_path / "run"), "--headless", "--camera", cam_name, "--frame", "1",
                "--screenshot", str(run_shot), "--size", "64x48"]
    assert main(view_run) == 0
    baked = tmp_path / "run" / "scene.fourd"
    assert BakedSequence(baked).frames == [0, 1, 2]
    ref, ref_shot = tmp_path / "ref.fourd", tmp_path / "ref_shot.png"  # what `fourd bake RUN` writes
    assert main(["--quiet", "bake", str(tmp_path / "run"), "--out", str(ref)]) == 0
    assert main([str(ref) if a == str(tmp_path / "run") else str(ref_shot) if a == str(run_shot) else a
                 for a in view_run]) == 0
    assert np.abs(cv2.imread(str(run_shot)).astype(int) - cv2.imread(str(ref_shot))).max() <= 1
    assert cv2.imread(str(run_shot)).max() > 50
    first = baked.stat().st_mtime_ns
    assert main(view_run) == 0 and baked.stat().st_mtime_ns == first
    import os

    from fourd.train.run import latest_checkpoint

    ck = latest_checkpoint(tmp_path / "run")
    os.utime(ck, ns=(first + 10**9, first + 10**9))
    assert main(view_run) == 0 and baked.stat().st_mtime_ns > first
    # a run folder fourd may not write to (shared, read-only): baked into the cache folder instead
    # (root may write anywhere, so the refusal is what os.access says)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if Path(p) == tmp_path / "run" else real_access(p, m))
    monkeypatch.setenv("FOURD_CACHE", str(tmp_path / "cache"))
    assert main(view_run) == 0
    cached = list((tmp_path / "cache" / "viewed_runs").glob("run_*.fourd"))
    assert len(cached) == 1 and BakedSequence(cached[0]).frames == [0, 1, 2]
    monkeypatch.setattr(os, "access", real_access)
    from fourd.errors import FourdError
    from fourd.viewer.cli import view

    with pytest.raises(FourdError, match="--dataset is for a run folder"):
        view(path, headless=True, dataset=tiny_ev)
    # the exact bake: the viewer's image (GL, as `fourd view` draws it) and the torch renderer's
    # image of the baked tables both match the trained model's own render
    from fourd.gl.baked_renderer import BakedRenderer

    assert main(["--quiet", "bake", str(tmp_path / "run"), "--appearance", "views", "--out", str(tmp_path / "v.fourd")]) == 0
    views = BakedSequence(tmp_path / "v.fourd")
    assert views.appearance == "views" and views.views["names"] == tr.train_cams
    r = BakedRenderer(int(tgt.camera.W[0]), int(tgt.camera.H[0]))
    for t, frame in enumerate(views.frames):
        for cam in tr.eval_cams:
            c = tr.sampler.target(frame, cam, crop=False, scale=1.0).camera
            with torch.no_grad():
                model_img = tr.render(frame, c, None).image.rgb.clamp(0, 1)
            f = views.frame(t)
            torch_img = render_baked(f, c, K=6, near=tr.settings.near, far=tr.settings.far)
            r.upload(f)
            r.render(c, 6, tr.cfg.background, near=tr.settings.near, far=tr.settings.far)
            gl_img = torch.from_numpy(r.read()).float() / 255
            assert psnr(torch_img, model_img) > 50 and psnr(gl_img, model_img) > 45, (frame, cam)
    r.release()


def test_gaussian_splat_ply_export(tmp_path):
    import open3d as o3d  # noqa: F401  (a reader that knows nothing of fourd)

    from fourd.bake.bake import gaussian_splat_attributes
    from fourd.model.sh import C0
    from fourd.structures.points import write_ply

    f = frames(1, N=64)[0]
    p = write_ply(tmp_path / "g.ply", f.xyz, gaussian_splat_attributes(f))
    raw = p.read_bytes()
    head, body = raw.split(b"end_header\n", 1)
    names = [l.split()[-1].decode() for l in head.splitlines() if l.startswith(b"property")]
    assert names[:6] == ["x", "y", "z", "nx", "ny", "nz"] and "f_rest_8" in names and names[-4:] == [
        "rot_0", "rot_1", "rot_2", "rot_3"]
    import numpy as np

    rec = np.frombuffer(body, dtype=np.dtype([(n, "<f4") for n in names]))
    torch.testing.assert_close(torch.from_numpy(rec["f_dc_0"] * C0 + 0.5), f.rgb[:, 0], atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.sigmoid(torch.from_numpy(rec["opacity"].copy())), f.density.clamp(1e-4, 1 - 1e-4),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.from_numpy(rec["f_rest_3"].copy()), f.sh[:, 0, 1])  # channel g, coefficient 0


def test_written_frame_by_frame_as_a_valid_safetensors_file(tmp_path):
    """The streaming writer's output is plain safetensors (any safetensors reader opens it), holds
    the same tensors as encoding the frames, and needs one frame in memory at a time."""
    from safetensors import safe_open

    from fourd.bake.format import BakeWriter, encode_frame

    fr = frames(3)
    w = BakeWriter(tmp_path / "s.fourd", ([-1] * 3, [1] * 3))
    for f in fr:
        w.add(f)
        assert not (tmp_path / "s.fourd").exists()  # nothing at the destination until it is whole
    p = w.close([0, 1, 2], {}, 30.0)
    assert [q.name for q in tmp_path.iterdir()] == ["s.fourd"]  # no temporary files left
    with safe_open(str(p), framework="pt") as st:
        assert st.metadata()["format"] == "fourd.baked"
        enc = encode_frame(fr[2], w.lo, w.hi, w.scales[2])
        for k, v in enc.items():
            assert torch.equal(st.get_tensor(f"t{2:06d}.{k}"), v)
    assert BakedSequence(p).counts == [500] * 3


def test_a_disk_that_fills_while_baking_leaves_no_file(tmp_path, monkeypatch):
    import errno

    from fourd.bake.format import BakeWriter
    from fourd.errors import FourdError

    w = BakeWriter(tmp_path / "s.fourd", ([-1] * 3, [1] * 3))
    w.add(frames(1)[0])

    class Full:
        def write(self, _):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            pass

    w._data.close()
    monkeypatch.setattr(w, "_data", Full())
    with pytest.raises(FourdError, match="disk filled while baking") as e:
        w.add(frames(1, seed=1)[0])
    assert "fix:" in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_a_bake_keeps_no_frame_images_between_frames(tiny_run, tmp_path, monkeypatch):
    """Each frame's images are read once by a bake: released after every frame (and the C heap
    trimmed), so resident memory does not grow with the sequence."""
    from fourd.bake.bake import bake_run
    from fourd.datasets.base import MultiViewVideo
    from fourd.train.run import load_run

    run = load_run(tiny_run)
    held = []
    real = MultiViewVideo.release_images

    def spy(self):
        held.append(self._cache.used)
        real(self)
        assert self._cache.used == 0

    monkeypatch.setattr(MultiViewVideo, "release_images", spy)
    frames = run.video.frames[:2]
    bake_run(run, tmp_path / "r.fourd", frames=frames, appearance="views")
    assert len(held) == 2 and all(h > 0 for h in held)  # each frame's images were cached, then let go
    run.release()
