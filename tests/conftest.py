"""Shared fixtures: tiny synthetic captures rendered once per test session (EGL on llvmpipe here)."""

from __future__ import annotations

import os

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")  # the GL tests share one headless context

import pytest  # noqa: E402

from fourd.datasets.synth import SynthRecipe  # noqa: E402

TINY = SynthRecipe(asset="Fox.glb", animation="Walk", rings=[(4, 5.0), (4, 40.0)], frames=3, width=96, height=80,
                   held_out=2)


@pytest.fixture(scope="session")
def tiny_ev(tmp_path_factory):
    from fourd.datasets.synth import synthesize

    return synthesize(TINY, tmp_path_factory.mktemp("tiny_ev"), "easyvolcap")


@pytest.fixture(scope="session")
def tiny_smc(tmp_path_factory):
    from fourd.datasets.synth import synthesize

    return synthesize(TINY, tmp_path_factory.mktemp("tiny_smc"), "smc")
