"""The one timing helper of the benchmarks (``from timing import best_of`` inside scripts/)."""

from __future__ import annotations

import time


def best_of(fn, repeat: int = 3, sync=None):
    """(best wall time in seconds over ``repeat`` calls, the last call's result). ``sync`` runs
    after each call inside the timed region (e.g. ``GL.glFinish`` or ``torch.cuda.synchronize``)
    so asynchronous work is counted."""
    best, out = float("inf"), None
    for _ in range(max(1, repeat)):
        t = time.perf_counter()
        out = fn()
        if sync is not None:
            sync()
        best = min(best, time.perf_counter() - t)
    return best, out


STAGES = ("grid", "heads", "peel", "peel_sources", "blend", "composite", "backward", "optimizer")


def stage_breakdown(trainer, steps: int = 10) -> dict:
    """Milliseconds per training step spent in each labelled stage (the ``record_function`` labels
    of :mod:`fourd.train.trainer` and the model), over ``steps`` steps of ``trainer``; ``other`` is
    the rest of the step (data, losses, Python) and ``total`` the wall time per step."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        for _ in range(steps):
            trainer.train_step()
        total = (time.perf_counter() - t) / steps * 1000
    got = {e.key: e.cpu_time_total / 1000 / steps for e in prof.key_averages() if e.key in STAGES}
    out = {k: got.get(k, 0.0) for k in STAGES}
    out["other"] = total - sum(out.values())
    out["total"] = total
    return out
