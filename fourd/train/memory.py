"""How much memory a training run will hold, estimated before any work, so a capture that cannot
fit is refused in the first second (with the setting to change) rather than hours later.

The estimate adds what grows with the capture and the settings:

- per-frame point positions with their gradient and Adam's two moments (4 × 12 bytes per point);
- the 4D feature planes with gradient and moments (4 × 4 bytes per value);
- the decoded-image cache (bounded by its budget, or the whole decoded capture when smaller);
- one step's activations: the training crop's K fragments per pixel through the renderer, the
  compositor and their gradients (~96 bytes per fragment), and the source views through the CNN;
- the interpreter, torch and GL themselves (a measured constant).
"""

from __future__ import annotations

import os

BASE_BYTES = 700 << 20  # python + torch + GL + the capture's readers, measured on the demo (RSS at step 0)
FRAGMENT_BYTES = 96  # per pixel and layer in one training step (fragments, weights, colours, their gradients)
SOURCE_BYTES = 4 * (3 + 16 + 16 + 8) * 3  # per source pixel: image, the CNN's activations and gradients


def grid_values(cfg, frames: int) -> int:
    from fourd.model.grid4d import level_sizes

    g = cfg.model.grid
    return sum(g.features * (3 * res * res + 3 * t * res) for res, t in level_sizes(g, frames))


def estimate(cfg, video, cache_bytes: int) -> dict:
    """Bytes per part and in all for training ``cfg`` on ``video`` (points from the carve settings,
    or the points file's count)."""
    frames = len(video.frames)
    points = cfg.carve.points
    if cfg.points_file and os.path.isfile(cfg.points_file):
        from fourd.structures.points import PointSequence

        points = max(PointSequence.load(cfg.points_file).counts)
    H, W = int(video.cameras.H.max()), int(video.cameras.W.max())
    decoded = sum(int(h) * int(w) * 4 for h, w in zip(video.cameras.H, video.cameras.W)) * frames
    parts = {
        "points": points * frames * 12 * 4,
        "grid": grid_values(cfg, frames) * 4 * 4,
        "image cache": min(cache_bytes, decoded),
        "step": int(H * W * cfg.image_scale ** 2 * cfg.K * FRAGMENT_BYTES
                    + cfg.model.source_views * cfg.source_size ** 2 * SOURCE_BYTES),
        "base": BASE_BYTES,
    }
    parts["total"] = sum(parts.values())
    return parts


def available_bytes() -> int | None:
    """Memory available to a new allocation now (Linux: MemAvailable; elsewhere psutil when installed)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        return None


def check_fits(cfg, video, cache_bytes: int) -> dict:
    """Refuse (FourdError) a run whose estimate exceeds ``--memory-limit`` (default: what is
    available now), naming the largest part and the setting that shrinks it."""
    from fourd.errors import FourdError

    est = estimate(cfg, video, cache_bytes)
    limit = cfg.memory_limit * (1 << 30) if cfg.memory_limit else available_bytes()
    if limit is None or est["total"] <= limit:
        return est
    gib = lambda b: f"{b / (1 << 30):.2g} GiB"  # noqa: E731
    parts = {k: v for k, v in est.items() if k not in ("total", "base")}
    worst = max(parts, key=parts.get)
    fix = {
        "points": f"carve fewer points (--carve.points, now {cfg.carve.points}) or train fewer frames",
        "grid": "use a smaller feature grid (--model.grid.spatial-max / --model.grid.levels)",
        "image cache": "nothing to change here (the cache shrinks to fit); lower the other parts",
        "step": f"train on smaller crops (--image-scale, now {cfg.image_scale}) or fewer layers (--K, now {cfg.K})",
    }[worst]
    if est["base"] >= limit:
        fix = f"allow more memory: torch and the capture's readers alone take about {gib(est['base'])}"
    detail = ", ".join(f"{k} {gib(v)}" for k, v in est.items() if k != "total")
    raise FourdError(f"training would need about {gib(est['total'])} ({detail}) but "
                     f"{'--memory-limit is' if cfg.memory_limit else 'only'} {gib(limit)}"
                     f"{'' if cfg.memory_limit else ' is available'}", cfg.dataset, fix)
