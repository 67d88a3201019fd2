"""Training end to end on a tiny capture: the loss falls, runs resume exactly after a kill,
two gloo processes train together, the DNA-Rendering preset starts, bad input gets clear errors."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from fourd.config import TrainConfig, apply_overrides, preset, to_json
from fourd.errors import FourdError

pytestmark = pytest.mark.slow


def tiny_cfg(data, out, **kw) -> TrainConfig:
    cfg = apply_overrides(preset("demo"), {
        "dataset": str(data), "out": str(out), "steps": 40, "K": 4, "source_size": 48, "eval_every": 0,
        "eval_frames": 1, "ckpt_every": 10, "log_every": 5, "lr": 1e-2,
        "carve": {"points": 1500, "resolution": 64},
        "model": {"grid": {"levels": 1, "spatial_min": 16, "spatial_max": 16, "time_max": 3}, "source_views": 3},
    })
    return apply_overrides(cfg, kw)


def test_tiny_scene_trains_and_loss_falls(tiny_ev, tmp_path):
    """SH-only appearance starts grey, so everything must be learned: colour through the grid and
    SH head, coverage through radius and density."""
    from fourd.train.trainer import Trainer

    cfg = tiny_cfg(tiny_ev, tmp_path / "run", steps=150, lr=2e-2, K=8, w_mask=0.0,
                   carve={"points": 3000, "resolution": 96},
                   model={"grid": {"levels": 1, "spatial_min": 32, "spatial_max": 32, "time_max": 3},
                          "source_views": 3, "appearance": "sh"})
    tr = Trainer(cfg)
    losses = [tr.train_step()["loss"] for _ in range(cfg.steps)]
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < first / 5, (first, last)


def test_run_folder_and_eval(tiny_ev, tmp_path):
    from fourd.cli import main
    from fourd.config import from_json

    run = tmp_path / "run"
    assert main(["--quiet", "train", "--dataset", str(tiny_ev), "--out", str(run), "--steps", "12",
                 "--K", "4", "--source-size", "48", "--eval-every", "0", "--eval-frames", "1",
                 "--carve.points", "1500", "--carve.resolution", "64", "--model.grid.levels", "1",
                 "--model.grid.spatial-min", "16", "--model.grid.spatial-max", "16"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["steps"] == 12 and saved["carve"]["points"] == 1500
    # a capture path has no preset: the saved config is the defaults with exactly the options given
    assert from_json(TrainConfig, (run / "config.json").read_text()) == apply_overrides(TrainConfig(), {
        "dataset": str(tiny_ev), "out": str(run), "steps": 12, "K": 4, "source_size": 48, "eval_every": 0,
        "eval_frames": 1, "carve": {"points": 1500, "resolution": 64},
        "model": {"grid": {"levels": 1, "spatial_min": 16, "spatial_max": 16}}})
    assert (run / "carve" / "points.safetensors").is_file() and (run / "tb").is_dir()
    assert (run / "checkpoints" / "latest.txt").is_file()
    out = tmp_path / "ev"
    assert main(["--quiet", "eval", str(run), "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert {"psnr", "ssim", "lpips", "per_frame"} <= set(m) and m["psnr"] > 15
    assert len(m["per_frame"]) == 3 * 2  # every frame × both held-out cameras
    assert (out / m["cameras"][0] / "000002.png").is_file()


def _train_cmd(cfg: TrainConfig, *extra):
    return [sys.executable, "-m", "fourd.cli", "--quiet", "train", "--dataset", cfg.dataset, "--out", cfg.out,
            "--steps", str(cfg.steps), "--K", "4", "--source-size", "48", "--eval-every", "0", "--eval-frames", "1",
            "--ckpt-every", str(cfg.ckpt_every), "--carve.points", "1500", "--carve.resolution", "64",
            "--model.grid.levels", "1", "--model.grid.spatial-min", "16", "--model.grid.spatial-max", "16",
            "--model.grid.time-max", "3", "--model.source-views", "3", "--lr", "0.01",
            "--visibility-refresh", str(cfg.visibility_refresh), *extra]


def test_resume_after_kill_matches_uninterrupted(tiny_ev, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # bitwise-repeatable CPU reductions
    # the source views' visibility maps reused across steps are not in checkpoints (a resumed run
    # draws them afresh): redraw them every step so the two runs see the same ones
    a = tiny_cfg(tiny_ev, tmp_path / "a", steps=30, ckpt_every=10, visibility_refresh=1)
    b = tiny_cfg(tiny_ev, tmp_path / "b", steps=30, ckpt_every=10, visibility_refresh=1)
    subprocess.run(_train_cmd(a), check=True, env=env, timeout=900)
    p = subprocess.Popen(_train_cmd(b), env=env)
    ckpt = tmp_path / "b" / "checkpoints" / "latest.txt"
    t0 = time.time()
    while not (ckpt.is_file() and ckpt.read_text().strip() >= "step_0000020.pt"):
        assert time.time() - t0 < 900 and p.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    subprocess.run(_train_cmd(b, "--resume"), check=True, env=env, timeout=900)
    ma = json.loads((tmp_path / "a" / "eval" / "final" / "metrics.json").read_text())
    mb = json.loads((tmp_path / "b" / "eval" / "final" / "metrics.json").read_text())
    assert ma["step"] == mb["step"] == 30
    assert abs(ma["psnr"] - mb["psnr"]) < 0.05, (ma["psnr"], mb["psnr"])


def test_two_process_gloo(tiny_ev, tmp_path):
    from fourd.carve.run import carve_sequence
    from fourd.config import CarveConfig
    from fourd.datasets import open_dataset

    seq, _ = carve_sequence(open_dataset(tiny_ev), CarveConfig(points=1500, resolution=64), tmp_path / "carve")
    cfg = tiny_cfg(tiny_ev, tmp_path / "ddp", steps=6, ckpt_every=3)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m"] + _train_cmd(cfg, "--points-file", str(tmp_path / "carve" / "points.safetensors"))[2:]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "ddp" / "checkpoints" / "step_0000006.pt").is_file()
    assert (tmp_path / "ddp" / "eval" / "final" / "metrics.json").is_file()


def test_dna_rendering_preset_runs_on_a_tiny_smc(tiny_smc, tmp_path):
    from fourd.train.trainer import Trainer

    cfg = apply_overrides(preset("dna_rendering"), {
        "dataset": "dna_rendering", "data_root": str(tiny_smc), "out": str(tmp_path / "dna"), "steps": 3,
        "eval_every": 0, "source_size": 48, "carve": {"points": 2000, "resolution": 48}})
    assert cfg.K == 15 and cfg.model.source_views == 4 and cfg.model.grid.spatial_max == 512
    tr = Trainer(cfg)
    for _ in range(3):
        assert torch.isfinite(torch.tensor(tr.train_step()["loss"]))


def test_checkpoint_from_another_config_is_refused(tiny_ev, tmp_path):
    from fourd.train.trainer import Trainer

    cfg = tiny_cfg(tiny_ev, tmp_path / "r", steps=2, ckpt_every=1)
    tr = Trainer(cfg)
    tr.train_step()
    tr.save()
    other = apply_overrides(cfg, {"model": {"grid": {"levels": 1, "spatial_min": 16, "spatial_max": 16, "time_max": 3},
                                            "cnn_channels": 4}})
    before = (tmp_path / "r" / "config.json").read_text()
    with pytest.raises(FourdError, match="different configuration.*model"):
        Trainer(other).resume()
    assert (tmp_path / "r" / "config.json").read_text() == before  # refused before the run's config was touched


def test_the_train_command_keeps_a_trained_run_and_resumes_a_moved_capture(tiny_ev, tmp_path):
    """`fourd train` into a folder that holds a trained run is refused unless --resume or
    --restart; a run whose capture moved resumes with --dataset at its new place (and says so
    without it); a refused resume leaves the run's config.json as it was."""
    import shutil

    from fourd.cli import main

    cap = shutil.copytree(tiny_ev, tmp_path / "cap")
    out = tmp_path / "run"
    args = ["--quiet", "train", "--dataset", str(cap), "--out", str(out), "--steps", "2", "--ckpt-every", "1",
            "--carve.points", "1500", "--carve.resolution", "64", "--source-size", "48", "--eval-every", "0",
            "--eval-frames", "1", "--model.grid.levels", "1", "--model.grid.spatial-min", "16",
            "--model.grid.spatial-max", "16", "--model.grid.time-max", "3", "--K", "4"]
    assert main(args) == 0
    first = (out / "checkpoints" / "latest.txt").read_text()
    assert main(args) == 2  # refused: nothing replaced
    assert (out / "checkpoints" / "latest.txt").read_text() == first
    assert main(args + ["--restart", "--resume"]) == 2
    (out / "notes.txt").write_text("mine")
    # a restart may change any setting (the model's, the carve's): nothing of the old run is reused
    assert main(args + ["--restart", "--K", "3", "--carve.points", "1000"]) == 0
    assert json.loads((out / "config.json").read_text())["K"] == 3
    assert json.loads((out / "carve" / "carve.json").read_text())["config"]["points"] == 1000
    assert (out / "notes.txt").read_text() == "mine"  # what the run did not write stays
    assert main(args + ["--restart"]) == 0
    config = (out / "config.json").read_text()
    assert main(args + ["--resume", "--steps", "3", "--model.cnn-channels", "4"]) == 2
    assert (out / "config.json").read_text() == config
    cap.rename(tmp_path / "moved")
    assert main(["--quiet", "train", "--out", str(out), "--resume", "--steps", "3"]) == 2
    assert main(["--quiet", "train", "--out", str(out), "--resume", "--steps", "3", "--dataset", str(tmp_path / "moved")]) == 0
    assert json.loads((out / "config.json").read_text())["dataset"] == str(tmp_path / "moved")
    assert (out / "checkpoints" / "latest.txt").read_text().strip() == "step_0000003.pt"


def test_nan_loss_stops_and_keeps_last_checkpoint(tiny_ev, tmp_path):
    from fourd.train.checkpoint import load_checkpoint
    from fourd.train.trainer import Trainer

    cfg = tiny_cfg(tiny_ev, tmp_path / "n", steps=5)
    tr = Trainer(cfg)
    tr.train_step()
    tr.save()
    with torch.no_grad():
        tr.model.appearance.blend[0].weight.fill_(float("nan"))
    with pytest.raises(FourdError, match="loss became nan.*last good checkpoint"):
        tr.train_step()
    d = tmp_path / "n" / "checkpoints"
    state = load_checkpoint(d / (d / "latest.txt").read_text(), to_json(cfg))
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_dataset_without_masks_says_why(tiny_ev, tmp_path):
    import shutil

    from fourd.train.trainer import Trainer

    c = shutil.copytree(tiny_ev, tmp_path / "nomask")
    shutil.rmtree(c / "masks")
    with pytest.raises(FourdError, match="carving needs foreground masks"):
        Trainer(tiny_cfg(c, tmp_path / "r"))


def test_minutes_budget_ends_on_time_and_composes_with_resume(tiny_ev, tmp_path):
    """--minutes sizes the run from the measured step time: it ends within 3 % of the budget,
    carving, final checkpoint and evaluation included, with the learning rate fully decayed; a
    resumed run spends only what is left of it."""
    from fourd.train.trainer import Trainer

    budget = 0.75  # minutes
    cfg = tiny_cfg(tiny_ev, tmp_path / "run", steps=50, minutes=budget, ckpt_every=100)
    t0 = time.perf_counter()
    tr = Trainer(cfg)
    res = tr.fit()
    wall = time.perf_counter() - t0
    assert abs(wall - budget * 60) <= 0.03 * budget * 60, (wall, res["budget"])
    assert res["steps"] > 50  # the budget, not --steps, decided the length
    lr = tr.scheduler.get_last_lr()[1]
    # decayed (nearly) to the end of the plan: a slower last stretch stops it a few steps early
    assert cfg.lr * cfg.lr_decay * 0.99 <= lr < 2 * cfg.lr * cfg.lr_decay, lr
    assert res["eval"]["step"] == res["steps"]
    tr.run.release()
    # a longer budget on the same run: the resumed session takes what is left
    more = tiny_cfg(tiny_ev, tmp_path / "run", steps=50, minutes=2 * budget, ckpt_every=100)
    t0 = time.perf_counter()
    tr2 = Trainer(more)
    res2 = tr2.fit(resume=True)
    wall2 = time.perf_counter() - t0
    spent = res["budget"]["elapsed_s"]
    assert abs(wall2 - (2 * budget * 60 - spent)) <= 0.03 * budget * 60, (wall2, spent, res2["budget"])
    assert res2["steps"] > res["steps"]
    tr2.run.release()


def test_a_rig_with_two_image_sizes_trains_and_evaluates(tmp_path):
    """DNA-Rendering mixes camera sizes; held-out cameras of two sizes share one evaluation grid."""
    from PIL import Image

    from fourd.datasets.synth import SynthRecipe, synthesize
    from fourd.train.trainer import Trainer

    cap = synthesize(SynthRecipe(asset="Fox.glb", animation="Walk", rings=[(3, 5.0, 96, 80), (3, 40.0, 64, 72)],
                                 frames=2, held_out=2), tmp_path / "cap")
    tr = Trainer(tiny_cfg(cap, tmp_path / "run", steps=2, ckpt_every=2))
    res = tr.fit()
    tr.run.release()
    sizes = {(int(tr.video.cameras.W[tr.video.cameras.index(c)])) for c in tr.eval_cams}
    assert sizes == {96, 64} and res["eval"]["psnr"] > 0
    grid = Image.open(tmp_path / "run" / "eval" / "final" / "grid.png")
    assert grid.size[0] == 3 * 96


def test_ssim_loss_on_a_moving_window(tiny_ev, tmp_path, monkeypatch):
    from fourd.train import trainer as trainer_mod
    from fourd.train.trainer import Trainer

    seen = []
    real = trainer_mod.dssim_loss
    monkeypatch.setattr(trainer_mod, "dssim_loss", lambda a, b: seen.append((a.shape, b.shape)) or real(a, b))
    tr = Trainer(tiny_cfg(tiny_ev, tmp_path / "s", steps=3, w_ssim=0.01, ssim_window=12))
    for _ in range(3):
        assert torch.isfinite(torch.tensor(tr.train_step()["loss"]))
    assert len(seen) == 3 and all(a == b and a[:2] == (12, 12) for a, b in seen)
