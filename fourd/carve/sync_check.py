"""Cameras out of step with the rest: a video whose frame numbers are off by a frame or more.

A rig assembled from separately started recorders (or a capture whose per-camera folders were
trimmed by hand) can have one camera's frame ``f`` show the moment the others show at ``f + s``.
Its masks then disagree with the hull every frame the subject moves — the carve report flags it
like a bad matte — and its images teach the model the wrong pose. The carved hull of frame ``f``
is made by all the cameras together, so it is a clock: each camera's masks of the frames around
``f`` are compared with the hull's silhouette in that camera (IoU), and a camera whose masks match
best ``s`` frames away, clearly and in most of the sampled frames, is named with ``s``. A subject
that does not move says nothing (every shift matches alike), and is left alone.
"""

from __future__ import annotations

import numpy as np

from fourd.console import log

MIN_GAIN = 0.01  # IoU gained at the best shift, on the average over the sampled frames
MIN_SHARE = 0.7  # ... and better than in step in this share of them


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int((a | b).sum())
    return float((a & b).sum() / union) if union else 1.0


def out_of_step(video, names: list[str], frames: list[int], points: list, spacings: list[float], max_side: int,
                max_shift: int = 3, samples: int = 6) -> list[dict]:
    """The cameras of ``names`` whose masks match the carved hull best ``shift`` frames away from
    their own numbering (see the module docstring): ``[{"camera", "shift", "at_least",
    "iou_in_step", "iou_shifted", "frames_checked"}]``, where the camera's frame ``f + shift``
    shows what the others show at ``f`` (``at_least``: the shift is the end of the ±``max_shift``
    searched, the camera may be further off). ``points[i]``/``spacings[i]``: the carve of ``frames[i]``. Frames are
    steps of the list (a capture numbered 0, 2, 4 … counts one step per entry)."""
    from fourd.carve.metrics import splat_masks
    from fourd.carve.run import frame_views

    n = len(frames)
    if n < 2 * max_shift + 1 or not names:
        return []
    picks = np.unique(np.linspace(max_shift, n - 1 - max_shift, samples).round().astype(int))
    shifts = list(range(-max_shift, max_shift + 1))
    cache: dict[int, tuple] = {}

    def views_of(i: int) -> tuple:  # (cameras of the names that have frame i, their masks by name)
        if i not in cache:
            here = video.cameras_at(frames[i], names)
            cams, masks, _ = frame_views(video, frames[i], here, max_side)
            cache[i] = cams.to("cpu"), {n: np.asarray(m, bool) for n, m in zip(here, masks)}
        return cache[i]

    # NaN where a camera lacks the frame (or the shifted one): it is judged on the frames it has
    iou = np.full((len(picks), len(names), len(shifts)), np.nan)
    for a, i in enumerate(picks):
        cams, own = views_of(i)
        sil = dict(zip(own, splat_masks(points[i], cams, spacings[i])))
        for b, s in enumerate(shifts):
            for c, name in enumerate(names):
                m = views_of(i + s)[1].get(name)
                if name in sil and m is not None:
                    iou[a, c, b] = _iou(sil[name], m)
        for j in [j for j in cache if j < i + 1 - max_shift]:  # windows only move forward
            del cache[j]
    zero = shifts.index(0)
    out = []
    for c, name in enumerate(names):
        rows = iou[:, c][~np.isnan(iou[:, c]).any(1)]  # the picked frames where every shift is there
        if not len(rows):
            continue
        mean = rows.mean(0)
        best = int(np.argmax(mean))
        if best == zero:
            continue
        gain = float(mean[best] - mean[zero])
        share = float((rows[:, best] > rows[:, zero]).mean())
        if gain >= MIN_GAIN and share >= MIN_SHARE:
            # at the end of the searched range the camera may be further off than that
            out.append({"camera": name, "shift": shifts[best], "at_least": abs(shifts[best]) == max_shift,
                        "iou_in_step": float(mean[zero]), "iou_shifted": float(mean[best]),
                        "frames_checked": [int(frames[i]) for i in picks]})
    for o in out:
        s = o["shift"]
        more = " or more" if o["at_least"] else ""
        log(f"[yellow]camera {o['camera']} looks out of step with the others: its frame f{s:+d}{more} matches "
            f"their frame f (silhouette IoU {o['iou_in_step']:.3f} → {o['iou_shifted']:.3f}); renumber its images "
            f"and masks by {-s:+d}{more} (or sync its video again: `fourd data sync`) — carve.json lists it "
            f"(cameras_out_of_step)[/]")
    return out
