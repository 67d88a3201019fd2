"""Shared fixtures: tiny synthetic captures rendered once per test session (EGL on llvmpipe here)."""

from __future__ import annotations

import pytest

from fourd.datasets.synth import SynthRecipe

# GL: the tests share one headless context, made by fourd.gl.context (FOURD_GL picks the backend)

TINY = SynthRecipe(asset="Fox.glb", animation="Walk", rings=[(4, 5.0), (4, 40.0)], frames=3, width=96, height=80,
                   held_out=2)


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state, whatever ran before it or in what order: a test
    that passes alone passes in the suite (CI once failed on an unseeded model init)."""
    import random

    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_ev(tmp_path_factory):
    from fourd.datasets.synth import synthesize

    return synthesize(TINY, tmp_path_factory.mktemp("tiny_ev"), "easyvolcap")


@pytest.fixture(scope="session")
def tiny_smc(tmp_path_factory):
    from fourd.datasets.synth import synthesize

    return synthesize(TINY, tmp_path_factory.mktemp("tiny_smc"), "smc")


def tiny_train_config(capture, out, **over):
    """The demo preset shrunk to a tiny capture: a few seconds of training per run."""
    from fourd.config import apply_overrides, preset

    base = {"dataset": str(capture), "out": str(out), "steps": 10, "K": 6, "source_size": 48, "eval_every": 0,
            "eval_frames": 1, "ckpt_every": 10, "carve": {"points": 2000, "resolution": 64},
            "model": {"grid": {"levels": 1, "spatial_min": 16, "spatial_max": 16, "time_max": 3}, "source_views": 3}}
    return apply_overrides(apply_overrides(preset("demo"), base), over)


@pytest.fixture(scope="session")
def tiny_run(tiny_ev, tmp_path_factory):
    """A run folder trained for 10 steps on the tiny capture (checkpoint, config, carved points)."""
    from fourd.train.trainer import Trainer

    out = tmp_path_factory.mktemp("tiny_run") / "run"
    tr = Trainer(tiny_train_config(tiny_ev, out))
    for _ in range(10):
        tr.train_step()
    tr.save()
    tr.run.release()
    return out
