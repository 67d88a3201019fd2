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
