"""Benchmark playback: frame time of the viewer's GL renderer (EGL, headless; the window's blit and
panels add a few ms) at full quality (camera still: ``full``; turning a little every frame:
``full_moving``; half resolution with every point while turning: ``moving_half_all``), at the
adaptive quality used while the camera moves, and
a single plain point pass of the same points (the fill-rate limit); baked bytes per point per
frame against 4K4D's layout; resident memory while streaming 30 vs 300 frames. Rows with mode
``full_views`` / ``adaptive_views`` time frames with view tables (``fourd bake --appearance
views``, --views training cameras), whose vertex shader blends the nearest cameras as the model does.

    python scripts/bench_viewer.py --out bench_viewer.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
from pathlib import Path

import torch
from timing import best_of

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "4K": (3840, 2160)}


def frame(n: int, seed: int = 0, shift: float = 0.0):
    from fourd.bake.format import BakedFrame

    g = torch.Generator().manual_seed(seed)
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=1) * torch.tensor([0.35, 0.9, 0.25])
    d[:, 0] += shift
    area = 4 * math.pi * 0.3  # roughly the ellipsoid's surface
    r = torch.full((n,), 1.5 * math.sqrt(area / n))
    return BakedFrame(d, r, torch.full((n,), 0.9), (d + 1) / 2, (torch.rand(n, 3, 3, generator=g) - 0.5) * 0.1)


def with_views(f, S: int, seed: int = 0):
    """``f`` with random view tables of S training cameras on a ring (degree-3 SH residual)."""
    from fourd.bake.format import BakedFrame, ViewTables

    g = torch.Generator().manual_seed(seed)
    n = f.xyz.shape[0]
    a = torch.arange(S) * 2 * math.pi / S
    centers = torch.stack([3 * torch.cos(a), torch.full((S,), 0.5), 3 * torch.sin(a)], 1)
    v = ViewTables(centers, f.rgb[None].expand(S, n, 3).clone(), torch.rand(S, n, generator=g) > 0.2,
                   torch.randn(S, n, generator=g), f.rgb, torch.randn(n, 16, 3, generator=g) * 0.2)
    return BakedFrame(f.xyz, f.radius, f.density, f.rgb, None, v)


def adaptive(r, oc, W: int, H: int, K: int, target_fps: float) -> dict:
    """Let the viewer's quality controller settle while the camera moves (it turns a little every
    frame, so view-dependent work such as the sorted pass's depth order is redone), then time that
    quality on moving frames."""
    from fourd.viewer.state import OrbitCamera, ViewerState

    st = ViewerState(K=K, target_fps=target_fps, moving=True, one_pass=r.method != "peel")
    cam = OrbitCamera(oc.target.copy(), oc.yaw, oc.pitch, oc.distance, oc.fov_y, oc.up.copy())

    def moving_frame(w, h, K, frac):
        cam.yaw += 0.01
        r.render(cam.cameras(w, h), K, near=0.1, far=10.0, fraction=frac)

    for _ in range(25):
        K, scale, frac = st.effective_quality()
        w, h = max(1, int(W * scale)), max(1, int(H * scale))
        ms = timed(lambda: moving_frame(w, h, K, frac), 1)
        st.frame_ms = ms
        st.adapt(ms)
    K, scale, frac = st.effective_quality()
    w, h = max(1, int(W * scale)), max(1, int(H * scale))
    ms = timed(lambda: moving_frame(w, h, K, frac))
    r.resize(W, H)
    return {"K": K, "ms_per_frame": ms, "scale": scale, "fraction": frac}


def timed(fn, repeat=3):
    """Best milliseconds of a GL render, finished (glFinish) inside the timed region."""
    from OpenGL import GL

    return best_of(fn, repeat, GL.glFinish)[0] * 1000


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=list(SIZES))
    ap.add_argument("--points", type=int, nargs="+", default=[100_000, 250_000])
    ap.add_argument("--Ks", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--target-fps", type=float, default=15.0, help="the viewer's frame-rate target while moving")
    ap.add_argument("--out", default="bench_viewer.json")
    ap.add_argument("--work", default="outputs/bench_viewer")
    ap.add_argument("--run", default=None, help="a trained run: bake it with and without SH and compare held-out "
                                              "PSNR of baked vs unbaked renders")
    ap.add_argument("--quality-frames", type=int, default=5)
    ap.add_argument("--quality-only", action="store_true", help="only the --run comparison (no frame timing)")
    ap.add_argument("--methods", nargs="+", default=["sorted", "kbuffer", "peel"],
                    help="renderers side by side: sorted (one pass in depth order, K counted in the stencil), "
                         "kbuffer (one pass into fragment lists), peel (K passes, the reference)")
    ap.add_argument("--views", type=int, default=16, help="training cameras of the view-table rows (0: none)")
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    from fourd.bake.format import BakedSequence, write_baked
    from fourd.gl.baked_renderer import BakedRenderer
    from fourd.gl.peeler import DepthPeeler
    from fourd.structures.fragments import RasterSettings
    from fourd.viewer.state import OrbitCamera

    con = Console()
    rows, agree = [], []
    oc = OrbitCamera(target=torch.zeros(3).numpy(), distance=3.2, pitch=0.15)
    for size in ([] if args.quality_only else args.sizes):
        W, H = SIZES[size]
        cam = oc.cameras(W, H)
        renderers = {m: BakedRenderer(W, H, method=m) for m in args.methods}
        peeler = DepthPeeler(W, H)
        for n in args.points:
            f = frame(n)
            images = {}
            for m, r in renderers.items():
                r.upload(f)
                for K in args.Ks:
                    ms = timed(lambda: (r.render(cam, K, near=0.1, far=10.0), r.read()))
                    rows.append({"method": m, "points": n, "width": W, "height": H, "K": K, "mode": "full",
                                 "ms_per_frame": ms})
                images[m] = torch.from_numpy(r.read()).float() / 255  # the largest K
                K = max(args.Ks)
                turning = OrbitCamera(oc.target.copy(), oc.yaw, oc.pitch, oc.distance, oc.fov_y, oc.up.copy())

                def turn():  # full quality while the camera turns: a new view (and depth order) every frame
                    turning.yaw += 0.01
                    r.render(turning.cameras(W, H), K, near=0.1, far=10.0)
                    r.read()

                rows.append({"method": m, "points": n, "width": W, "height": H, "K": K, "mode": "full_moving",
                             "ms_per_frame": timed(turn)})

                def turn_half():  # while moving at half resolution (the viewer's floor) with every point
                    turning.yaw += 0.01
                    r.render(turning.cameras(W // 2, H // 2), K, near=0.1, far=10.0)
                    r.read()

                rows.append({"method": m, "points": n, "width": W, "height": H, "K": K, "mode": "moving_half_all",
                             "ms_per_frame": timed(turn_half), "scale": 0.5, "fraction": 1.0})
                r.resize(W, H)
                rows.append({"method": m, "points": n, "width": W, "height": H, "mode": "adaptive",
                             **adaptive(r, oc, W, H, max(args.Ks), args.target_fps)})
                if args.views:
                    r.upload(with_views(f, args.views))
                    K = max(args.Ks)
                    rows.append({"method": m, "points": n, "width": W, "height": H, "K": K, "mode": "full_views",
                                 "ms_per_frame": timed(lambda: (r.render(cam, K, near=0.1, far=10.0), r.read()))})
                    rows.append({"method": m, "points": n, "width": W, "height": H, "mode": "adaptive_views",
                                 **adaptive(r, oc, W, H, K, args.target_fps)})
            if "peel" in images:
                from fourd.train.losses import psnr

                for m in images:
                    if m != "peel":
                        agree.append({"method": m, "points": n, "width": W, "height": H, "K": max(args.Ks),
                                      "vs_peel_psnr": psnr(images[m], images["peel"])})
            peeler.upload(f.xyz, f.radius)

            def single():
                peeler.begin(cam, RasterSettings(K=1, near=0.1, far=10.0))
                peeler.draw_layer()

            rows.append({"method": "plain", "points": n, "width": W, "height": H, "K": 1, "mode": "single_pass",
                         "ms_per_frame": timed(single)})
        for r in renderers.values():
            r.release()
        peeler.release()

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.quality_only:
        quality = baked_quality(args.run, work, args.quality_frames)
        con.print(quality)
        with open(args.out, "w") as fh:
            json.dump({"baked_quality": quality}, fh, indent=2)
        return
    # baked size and streaming memory
    n, frames = 20_000, 300
    path = write_baked(work / "long.fourd", [frame(n, s, 0.001 * s) for s in range(frames)], list(range(frames)),
                       ([-1.5] * 3, [1.5] * 3), {}, 30.0)
    seq = BakedSequence(path)
    bpp = path.stat().st_size / (n * frames)
    r = BakedRenderer(640, 360)
    cam = oc.cameras(640, 360)
    mem = {}
    base = rss_mb()
    for t in range(frames):
        r.upload(seq.frame(t))
        r.render(cam, 4, near=0.1, far=10.0)
        if t + 1 in (30, 300):
            mem[t + 1] = rss_mb() - base
    r.release()
    size = {"bytes_per_point_per_frame": bpp, "4k4d_bytes_at_60_views": 580.0, "ratio": bpp / 580.0,
            "rss_growth_mb_after_30_frames": mem[30], "rss_growth_mb_after_300_frames": mem[300]}
    if args.views:  # the exact (view-table) layout at the same number of training cameras as 4K4D's
        for S in (args.views, 60):
            path = write_baked(work / "views.fourd", [with_views(frame(n), S)], [0], ([-1.5] * 3, [1.5] * 3), {}, 30.0)
            size[f"views_bytes_per_point_at_{S}_views"] = path.stat().st_size / n
            size[f"4k4d_bytes_at_{S}_views"] = 2.0 * (4 * S + 48 + 2)
    quality = baked_quality(args.run, work, args.quality_frames) if args.run else None
    t = Table(title=f"viewer renderer, Mesa llvmpipe ({platform.machine()}, {torch.get_num_threads()} threads)")
    for c in ("method", "points", "size", "K", "mode", "ms/frame", "FPS"):
        t.add_column(c)
    for row in rows:
        t.add_row(row["method"], str(row["points"]), f"{row['width']}×{row['height']}", str(row["K"]), row["mode"],
                  f"{row['ms_per_frame']:.1f}", f"{1000 / row['ms_per_frame']:.1f}")
    con.print(t)
    con.print(size)
    for a in agree:
        con.print(f"{a['width']}×{a['height']}, {a['points']} points, K={a['K']}: {a['method']} image vs K-pass "
                  f"reference PSNR {a['vs_peel_psnr']:.1f} dB")
    if quality:
        con.print(quality)
    with open(args.out, "w") as fh:
        json.dump({"rows": rows, "agreement": agree, "size_and_memory": size, "baked_quality": quality,
                   "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, Mesa llvmpipe"}, fh, indent=2)
    con.print(f"wrote {args.out}")


def baked_quality(run: str, work: Path, n_frames: int) -> dict:
    """Held-out PSNR against the ground truth: unbaked model vs baked (the exact view tables; the
    compact image-space fit with and without the SH residual, and the per-point estimate alone),
    and each baked render against the model's render of the same camera."""
    import numpy as np

    from fourd.bake.bake import bake_run
    from fourd.bake.format import BakedSequence
    from fourd.train.evaluate import pick_frames
    from fourd.train.losses import psnr
    from fourd.train.run import load_run

    tr = load_run(run)
    frames = pick_frames(tr.video.frames, n_frames)
    out = {"frames": frames, "cameras": tr.eval_cams}
    seqs = {"baked_views": BakedSequence(bake_run(run, work / "views.fourd", frames=frames, appearance="views")),
            "baked_sh": BakedSequence(bake_run(run, work / "sh.fourd", sh=True, frames=frames)),
            "baked_no_sh": BakedSequence(bake_run(run, work / "nosh.fourd", sh=False, frames=frames)),
            "baked_sh_per_point_only": BakedSequence(bake_run(run, work / "pp.fourd", sh=True, fit=False,
                                                              frames=frames))}
    renderer = None
    scores = {k: [] for k in ("model", *seqs, *(f"{k}_vs_model" for k in seqs))}
    from fourd.gl.baked_renderer import BakedRenderer

    for f in frames:
        for cam in tr.eval_cams:
            tgt = tr.sampler.target(f, cam, crop=False, scale=1.0)
            with torch.no_grad():
                model_img = tr.render(f, tgt.camera, None).image.rgb.clamp(0, 1)
            scores["model"].append(psnr(model_img, tgt.image))
            W, H = int(tgt.camera.W[0]), int(tgt.camera.H[0])
            renderer = renderer or BakedRenderer(W, H)
            for k, seq in seqs.items():
                renderer.upload(seq.frame(seq.frames.index(f)))
                renderer.render(tgt.camera, tr.cfg.K, tr.cfg.background, near=tr.settings.near, far=tr.settings.far)
                img = torch.from_numpy(renderer.read()).float() / 255
                scores[k].append(psnr(img, tgt.image))
                scores[f"{k}_vs_model"].append(psnr(img, model_img))
    for k, v in scores.items():
        out[f"psnr_{k}"] = float(np.mean(v))
    for k, seq in seqs.items():
        out[f"bytes_per_point_{k}"] = seq.bytes_per_point
    return out


if __name__ == "__main__":
    main()
