"""Benchmark point rendering side by side in one run: the GL one-pass K-buffer and GL K-pass depth
peeling (its reference twin) vs the torch reference
(vs pytorch3d when importable), forward (rasterize + composite) and backward (composite), and a
single plain GL point pass (no peeling, no read-back) as the fill-rate limit.

    python scripts/bench_render.py --out bench_render.json [--sizes 512x512 1920x1080] [--points 100000 250000]

The scene imitates a capture: points on the surface of a body-sized ellipsoid filling about a
third of the frame, radii a little above the point spacing.
"""

from __future__ import annotations

import argparse
import json
import math
import platform

import torch
from timing import best_of


def scene(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=1)
    axes = torch.tensor([0.35, 0.9, 0.25])
    pts = d * axes
    area = 4 * math.pi * ((0.35 * 0.9) ** 1.6 + (0.35 * 0.25) ** 1.6 + (0.9 * 0.25) ** 1.6) ** (1 / 1.6) / 3
    radii = torch.full((n,), 1.5 * math.sqrt(area / n))
    return pts, radii, torch.full((n,), 0.8), torch.rand(n, 3, generator=g)


def timed(fn, repeat):
    """(best milliseconds, result)."""
    best, out = best_of(fn, repeat)
    return best * 1000, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["512x512", "1920x1080"])
    ap.add_argument("--points", type=int, nargs="+", default=[100_000, 250_000])
    ap.add_argument("-K", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--torch-repeat", type=int, default=1)
    ap.add_argument("--skip-torch-above", type=int, default=10**12,
                    help="skip the torch reference above this many pixels×points")
    ap.add_argument("--out", default="bench_render.json")
    args = ap.parse_args()
    torch.set_flush_denormal(True)

    from rich.console import Console
    from rich.table import Table

    from fourd.gl.kbuffer import KBufferRasterizer
    from fourd.render.compositor import composite
    from fourd.render.rasterize import rasterize_points
    from fourd.structures.cameras import Cameras
    from fourd.structures.fragments import RasterSettings

    try:
        import pytorch3d  # noqa: F401

        have_p3d = True
    except ImportError:
        have_p3d = False
    rows = []
    s = RasterSettings(K=args.K, near=0.1, far=20)
    for size in args.sizes:
        W, H = (int(x) for x in size.split("x"))
        cam = Cameras.look_at([[0.0, 0.2, -3.2]], [0, 0, 0], H=H, W=W, fov_y_deg=45)
        peeler = KBufferRasterizer(W, H)  # method="peel" runs the K-pass reference on the same buffers
        for n in args.points:
            pts, radii, dens, cols = scene(n)
            peeler.upload(pts, radii)

            def single_pass():
                from OpenGL import GL

                peeler.begin(cam, s)
                peeler.draw_layer()
                GL.glFinish()

            t_single, _ = timed(single_pass, args.repeat)
            rows.append(dict(backend="gl_single_pass", points=n, width=W, height=H, K=1, forward_ms=t_single,
                             backward_ms=None))
            backends = ["gl-kbuffer", "gl-peel"] + (["pytorch3d"] if have_p3d else [])
            if W * H * n <= args.skip_torch_above:
                backends.append("torch")
            for b in backends:
                gl = b.startswith("gl-")
                rep = args.repeat if gl else args.torch_repeat

                def fwd():
                    if gl:
                        frags = peeler.rasterize(cam, s, method=b[3:])
                    else:
                        frags = rasterize_points(pts, radii, cam, s, backend=b)
                    p = pts.clone().requires_grad_()
                    return composite(frags, p, radii, dens, cols, cam), p, frags

                t_f, (out, p, frags) = timed(fwd, rep)
                t_r, _ = timed(lambda: peeler.rasterize(cam, s, method=b[3:]) if gl else
                               rasterize_points(pts, radii, cam, s, backend=b), 1)
                t_b, _ = timed(lambda: out.rgb.sum().backward(retain_graph=True), rep)
                rows.append(dict(backend=b, points=n, width=W, height=H, K=args.K, forward_ms=t_f, backward_ms=t_b,
                                 rasterize_ms=t_r, coverage=float((frags.idx[..., 0] >= 0).float().mean())))
        peeler.release()
    for r in rows:
        if r["backend"].startswith("gl-"):
            limit = next(x["forward_ms"] for x in rows if x["backend"] == "gl_single_pass" and x["points"] == r["points"]
                         and x["width"] == r["width"])
            r["peel_over_K_single_passes"] = r["rasterize_ms"] / (r["K"] * limit)
            ref = [x for x in rows if x["backend"] == "torch" and x["points"] == r["points"] and x["width"] == r["width"]]
            if ref:
                r["speedup_vs_torch"] = (ref[0]["forward_ms"] + ref[0]["backward_ms"]) / (r["forward_ms"] + r["backward_ms"])
            if r["backend"] == "gl-kbuffer":
                peel = next(x for x in rows if x["backend"] == "gl-peel" and x["points"] == r["points"]
                            and x["width"] == r["width"])
                r["rasterize_speedup_vs_peel"] = peel["rasterize_ms"] / r["rasterize_ms"]
    con = Console()
    t = Table(title=f"point rendering, K={args.K}, {platform.machine()} {torch.get_num_threads()} threads")
    for c in ("backend", "size", "points", "fwd ms", "bwd ms", "raster ms", "raster/(K·single)", "× vs torch",
              "raster × vs peel"):
        t.add_column(c)
    for r in rows:
        t.add_row(r["backend"], f"{r['width']}×{r['height']}", str(r["points"]), f"{r['forward_ms']:.1f}",
                  "" if r["backward_ms"] is None else f"{r['backward_ms']:.1f}",
                  f"{r.get('rasterize_ms', r['forward_ms']):.1f}",
                  f"{r['peel_over_K_single_passes']:.2f}" if "peel_over_K_single_passes" in r else "",
                  f"{r['speedup_vs_torch']:.1f}" if "speedup_vs_torch" in r else "",
                  f"{r['rasterize_speedup_vs_peel']:.2f}" if "rasterize_speedup_vs_peel" in r else "")
    con.print(t)
    if not have_p3d:
        con.print("pytorch3d: not importable here (no Linux/Python 3.11 wheel), so no pytorch3d rows")
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=2)
    con.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
