"""Synthetic multi-view captures rendered from animated glTF assets, with exact masks and the
posed mesh of every frame as ground truth (``gt/verts_<frame:06d>.npy``, ``gt/faces.npy``).

The asset is normalized so the subject stands on y = 0, centred on the y axis, ``subject_height``
tall over the whole clip; cameras sit on rings around it (OpenCV convention, world y up).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from fourd.console import log, progress
from fourd.datasets.base import MultiViewVideo
from fourd.datasets.codecs import encode_image
from fourd.errors import DataError
from fourd.io import atomic_write_text
from fourd.structures.cameras import Cameras

DEFAULT_CLIP = "Walk"  # the Fox's walk cycle; assets without a clip of that name play their first


@dataclass
class SynthRecipe:
    asset: str = "Fox.glb"
    """glTF/GLB file; a bare name is looked up among the shipped assets (fourd.assets)."""
    animation: str | None = DEFAULT_CLIP
    """animation clip name (None: the first clip; the default, 'Walk', falls back to the first clip
    on an asset without one)."""
    rings: list[tuple] = field(default_factory=lambda: [(12, 5.0), (12, 35.0)])
    """camera rings as (number of cameras, elevation in degrees above the subject centre), or
    (number, elevation, width, height) for a ring with its own image size."""
    frames: int = 30
    """number of frames."""
    fps: float = 30.0
    """capture frame rate; frame i shows the clip at time start + i / fps (looping)."""
    start: float = 0.0
    """clip time of frame 0, seconds."""
    width: int = 512
    """image width, pixels."""
    height: int = 512
    """image height, pixels."""
    fov_deg: float = 40.0
    """vertical field of view, degrees."""
    fill: float = 0.9
    """how far toward the image border the subject's bounding box may reach (1 = touching it)."""
    held_out: int = 4
    """cameras held out for evaluation, spread evenly over the rig."""
    subject_height: float = 1.0
    """height of the subject in world units after normalization."""
    image_format: str = "jpg"
    """jpg or png."""
    jpeg_quality: int = 95
    """JPEG quality, 1–100."""
    lens: bool = False
    """give every camera radial lens distortion (k1 in −0.12…−0.02, k2 in 0…0.04): rendered into
    the images and masks and written into D, as real captures are stored."""
    colour_calibration: bool = False
    """give every camera a DNA-Rendering Color_Calibration (a mild quadratic per channel): images are
    stored with its inverse applied, so the calibration applied on load gives back the rendered
    colours (SMC layout only)."""
    seed: int = 0
    """seed of the lens and colour parameters."""
    supersample: int = 1
    """render each image at N× its size and average every N×N block into a pixel: edges come out
    anti-aliased, as a camera (optical blur, sensor area) or a production renderer makes them, and
    the masks hold each pixel's coverage (0–255) instead of a hard 0/255 cut. 1: one sample per pixel."""


def open_asset(name: str, animation: str | None):
    """The asset ``name`` posed by clip ``animation``; the default clip name falls back to the
    asset's first clip when it has none of that name (CesiumMan's one clip is unnamed)."""
    from fourd.datasets.gltf import AnimatedAsset

    path = resolve_asset(name)
    if animation == DEFAULT_CLIP:
        probe = AnimatedAsset(path, None)
        if DEFAULT_CLIP not in probe.animation_names:
            if probe.animation_names:
                log(f"{Path(path).name} has no '{DEFAULT_CLIP}' clip: playing its first ({probe.animation_names[0]})")
            return probe
    return AnimatedAsset(path, animation)


def dna_rendering_recipe(asset: str = "CesiumMan.glb", animation: str | None = None, frames: int = 150,
                         scale: float = 1.0, held_out: int = 4, fps: float = 15.0, cameras: int = 60) -> SynthRecipe:
    """DNA-Rendering's rig: 48 cameras at 2448×2048 (two rings of 24) and 12 at 4096×3000 (one ring
    between them), every camera with lens distortion and a Color_Calibration; ``scale`` shrinks the
    image sizes (for tests and quick runs), ``cameras`` thins the rig keeping its 4:1 mix."""
    def size(w, h):
        return max(16, 2 * round(w * scale / 2)), max(16, 2 * round(h * scale / 2))

    small, large = size(2448, 2048), size(4096, 3000)
    n_large = max(1, round(cameras / 5))
    n_low = (cameras - n_large) // 2
    n_high = cameras - n_large - n_low
    return SynthRecipe(asset=asset, animation=animation,
                       rings=[(n_low, 5.0, *small), (n_large, 20.0, *large), (n_high, 35.0, *small)],
                       frames=frames, fps=fps, held_out=held_out, lens=True, colour_calibration=True)


def ring_recipe(asset: str = "Fox.glb", animation: str | None = "Walk", cameras: int = 24, rings: int = 2,
                frames: int = 30, size: int = 512, held_out: int = 4, fps: float = 30.0,
                image_format: str = "jpg", supersample: int = 1) -> SynthRecipe:
    """A rig of ``cameras`` split evenly over ``rings`` rings at elevations from 5° to 50°."""
    for opt, v, lo, hi in (("--cameras", cameras, 2, 512), ("--rings", rings, 1, 64), ("--frames", frames, 1, 100_000),
                           ("--size", size, 16, 8192), ("--held-out", held_out, 0, cameras - 2),
                           ("--supersample", supersample, 1, 8)):
        if not lo <= v <= hi:
            raise DataError(f"{v} is out of range [{lo}, {hi}]", opt, f"give {opt} a value in [{lo}, {hi}]")
    if not 0 < fps <= 1000:
        raise DataError(f"{fps} is out of range (0, 1000]", "--fps", "give a frame rate such as 30")
    if cameras < rings:
        raise DataError(f"{cameras} cameras cannot fill {rings} rings", "--cameras", "use at least one camera per ring")
    per = [cameras // rings + (1 if i < cameras % rings else 0) for i in range(rings)]
    elev = [5.0] if rings == 1 else [5.0 + 45.0 * i / (rings - 1) for i in range(rings)]
    return SynthRecipe(asset=asset, animation=animation, rings=list(zip(per, elev)), frames=frames, fps=fps,
                       width=size, height=size, held_out=held_out, image_format=image_format,
                       supersample=supersample)


def resolve_asset(name: str) -> Path:
    p = Path(name)
    if p.is_file():
        return p
    from fourd.locations import asset_dir

    shipped = asset_dir()
    if (shipped / name).is_file():
        return shipped / name
    have = ", ".join(sorted(q.name for q in shipped.glob("*.gl*")))
    raise DataError(f"asset '{name}' not found", name, f"pass a .glb path or one of: {have}")


def normalization(asset, times: list[float], height: float) -> tuple[float, np.ndarray]:
    """Scale and offset putting the clip's bounding box on y = 0, centred in x and z, ``height`` tall."""
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for t in times:
        v = np.concatenate(asset.pose(t))
        lo, hi = np.minimum(lo, v.min(0)), np.maximum(hi, v.max(0))
    s = height / max(hi[1] - lo[1], 1e-9)
    off = -np.array([(lo[0] + hi[0]) / 2, lo[1], (lo[2] + hi[2]) / 2]) * s
    return s, off


def rig(recipe: SynthRecipe, lo: np.ndarray, hi: np.ndarray) -> Cameras:
    """Rings of cameras around the box [lo, hi], as close as keeps the box inside every image.

    ``fill`` is the largest fraction of the image half-size any box corner may reach."""
    center = (lo + hi) / 2
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    radius = float(np.linalg.norm(hi - lo) / 2)

    def build(d: float) -> Cameras:
        cams, k = [], 0
        for j, ring in enumerate(recipe.rings):
            n, elev = int(ring[0]), float(ring[1])
            W, H = (int(ring[2]), int(ring[3])) if len(ring) >= 4 else (recipe.width, recipe.height)
            e = math.radians(elev)
            names = [f"{k + i:02d}" for i in range(n)]
            k += n
            cams.append(Cameras.ring(n, d * math.cos(e), d * math.sin(e), target=center, up=(0, 1, 0),
                                     fov_y_deg=recipe.fov_deg, H=H, W=W,
                                     phase_deg=j * 180.0 / max(n, 1), names=names))
        return Cameras.cat(cams)

    def fits(cams: Cameras) -> bool:
        uv, z = cams.project(corners)
        half = torch.stack([cams.W, cams.H], -1).double().numpy()[:, None] / 2
        off = np.abs(uv.double().numpy() - half) / half
        return bool((z > 0).all()) and float(off.max()) <= recipe.fill

    d = radius / math.sin(math.radians(recipe.fov_deg) / 2)  # the bounding sphere always fits
    for k in np.linspace(0.4, 1.0, 25):
        if fits(build(d * k)):
            return build(d * k)
    return build(d)


def held_out_names(names: list[str], n: int) -> list[str]:
    if n <= 0:
        return []
    if n >= len(names):
        raise DataError(f"cannot hold out {n} of {len(names)} cameras", None, "hold out fewer cameras")
    step = len(names) / n
    return [names[int(i * step + step / 2)] for i in range(n)]


def inverse_colour_lut(cc: np.ndarray) -> np.ndarray:
    """[256, 1, 3] uint8 RGB table undoing a (monotonic) DNA-Rendering Color_Calibration: stored
    colours x with calibrate(x) ≈ the rendered colour."""
    x = np.arange(256, dtype=np.float64)
    inv = []
    for i in (2, 1, 0):  # calibration rows are B, G, R; the table's channels R, G, B
        y = cc[i, 0] * x ** 2 + cc[i, 1] * x + cc[i, 2]
        inv.append(np.interp(x, y, x))
    return np.clip(np.rint(np.stack(inv, -1)), 0, 255).astype(np.uint8)[:, None, :]


def lens_and_colour(cams: Cameras, seed: int, lens: bool, colour: bool) -> tuple[Cameras, dict]:
    """``cams`` with random radial distortion written into D (``lens``) and a Color_Calibration per
    camera (``colour``; DNA-Rendering's per-BGR-channel quadratic, close to the identity)."""
    from fourd.datasets.degrade import radial_is_monotonic

    rng = np.random.default_rng(seed)
    D = cams.D.clone()
    calib = {}
    for i, n in enumerate(cams.names):
        if lens:
            r_max = float(np.hypot(float(cams.W[i]) / float(cams.K[i, 0, 0]), float(cams.H[i]) / float(cams.K[i, 1, 1])) / 2)
            for _ in range(100):
                k1, k2 = rng.uniform(-0.12, -0.02), rng.uniform(0.0, 0.04)
                if radial_is_monotonic(k1, k2, r_max * 1.05):
                    break
            D[i, :2] = torch.tensor([k1, k2], dtype=D.dtype)
        if colour:
            # a·x² + b·x + c per channel that stays increasing and inside 0–255 over 0–255
            a = rng.uniform(-2e-4, 2e-4, 3)
            b = 1 + rng.uniform(-0.06, 0.06, 3) - a * 255
            c = rng.uniform(-4, 4, 3)
            calib[n] = np.stack([a, b, c], 1)
    out = Cameras(cams.K, cams.R, cams.T, cams.H, cams.W, D, list(cams.names))
    return out, calib


class RenderedCapture(MultiViewVideo):
    """A capture rendered on demand, one frame (every camera) at a time: writers go frame by
    frame, so a capture of any length is written holding one frame's encoded images. Cameras with
    distortion (D) get it rendered in (a pinhole render resampled through the lens model); cameras
    with a ``color_calibration`` are stored with its inverse applied."""

    layout = "rendered"

    def __init__(self, renderer, cams: Cameras, posed: list, near: float, far: float, ext: str, quality: int,
                 gt: Path, held_out: list[str], fps: float, color_calibration: dict | None = None,
                 supersample: int = 1):
        super().__init__(gt.parent, cams, list(range(len(posed))), held_out, fps, cache_bytes=0)
        self._ss = int(supersample)
        self._r, self._posed, self._near, self._far = renderer, posed, near, far
        self._ext, self._quality, self._gt = ext, quality, gt
        self._frame, self._images, self._masks = None, {}, {}
        self.color_calibration = dict(color_calibration or {})  # written into the SMC by write_smc
        self._inverse = {n: inverse_colour_lut(c) for n, c in self.color_calibration.items()}

    def _lens(self, i: int, img: np.ndarray, interpolation: int) -> np.ndarray:
        """A pinhole render seen through camera i's lens (the map is solved per frame, never held)."""
        import cv2

        from fourd.structures.cameras import lens_map

        H, W = img.shape[:2]
        mx, my = lens_map(self.cameras.K[i].double().numpy(), self.cameras.D[i].double().numpy(), H, W)
        return cv2.remap(img, mx, my, interpolation, borderMode=cv2.BORDER_CONSTANT)

    def _render(self, frame: int) -> None:
        if frame == self._frame:
            return
        verts = self._posed[frame]
        self._r.update(verts)
        np.save(self._gt / f"verts_{frame:06d}.npy", np.concatenate(verts).astype(np.float32))
        import cv2

        self._images, self._masks = {}, {}
        pinhole = self.cameras.undistorted() if self.cameras.has_distortion else self.cameras
        for i, name in enumerate(self.cameras.names):
            cam = pinhole[i]
            if self._ss > 1:  # N×N samples per pixel, averaged (the pixel-centre convention keeps K exact)
                cam = cam.resize(cam.H * self._ss, cam.W * self._ss)
            r = self._r.render(cam, self._near, self._far)
            rgb, mask = r.rgb, r.mask.astype(np.uint8) * 255
            if self._ss > 1:
                size = (int(pinhole.W[i]), int(pinhole.H[i]))
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
                mask = cv2.resize(mask, size, interpolation=cv2.INTER_AREA)  # coverage, 0–255
            if bool((self.cameras.D[i] != 0).any()):
                rgb = self._lens(i, rgb, cv2.INTER_LINEAR)
                mask = self._lens(i, mask, cv2.INTER_LINEAR)
                if self._ss == 1:
                    mask = (mask > 127).astype(np.uint8) * 255
            if name in self._inverse:
                rgb = cv2.LUT(np.ascontiguousarray(rgb), self._inverse[name])
            self._images[name] = encode_image(rgb, self._ext, self._quality)
            self._masks[name] = encode_image(mask, ".png")
        self._frame = frame

    @property
    def has_masks(self) -> bool:
        return True

    def image_bytes(self, frame, cam):
        self._render(frame)
        return self._images[cam], f"rendered frame {frame} camera {cam}"

    def mask_bytes(self, frame, cam):
        self._render(frame)
        return self._masks[cam], f"rendered mask {frame} camera {cam}"


def synthesize(recipe: SynthRecipe, out: str | Path, layout: str = "easyvolcap") -> Path:
    """Render the recipe and write it in ``layout`` ('easyvolcap' or 'smc') under ``out``."""
    from fourd.gl.mesh_renderer import MeshPart, MeshRenderer

    if layout not in ("easyvolcap", "smc"):
        raise DataError(f"unknown layout '{layout}'", None, "use easyvolcap or smc")
    ext = "." + recipe.image_format.lower().lstrip(".")
    if ext not in (".jpg", ".png"):
        raise DataError(f"unknown image format '{recipe.image_format}'", None, "use jpg or png")
    out = Path(out)
    asset = open_asset(recipe.asset, recipe.animation)
    dur = asset.duration
    times = [(recipe.start + i / recipe.fps) % dur if dur > 0 else 0.0 for i in range(recipe.frames)]
    s, off = normalization(asset, times, recipe.subject_height)
    posed = [[v * s + off for v in asset.pose(t)] for t in times]
    allv = np.concatenate([np.concatenate(p) for p in posed])
    lo, hi = allv.min(0), allv.max(0)
    center = (lo + hi) / 2
    radius = float(np.linalg.norm(hi - lo) / 2)
    cams = rig(recipe, lo, hi)
    if not 1 <= recipe.supersample <= 8:
        raise DataError(f"{recipe.supersample} is out of range [1, 8]", "--supersample", "give --supersample a value in [1, 8]")
    side = int(max(cams.W.max(), cams.H.max())) * recipe.supersample
    if side > 16384:  # GL's largest framebuffer on Mesa (and most drivers)
        raise DataError(f"--supersample {recipe.supersample} would render {side}-pixel images (16384 at most)",
                        "--supersample", f"use --supersample {max(1, 16384 // (side // recipe.supersample))} or less")
    dists = np.linalg.norm(cams.centers.double().numpy() - center, axis=1)
    near, far = max(0.01 * dists.min(), dists.min() - 1.5 * radius), dists.max() + 1.5 * radius

    parts = [MeshPart(p.faces, p.uvs, p.colors, p.base_color, p.texture) for p in asset.primitives]
    renderer = MeshRenderer(parts, [len(p.positions) for p in asset.primitives])
    gt = out / "gt"
    gt.mkdir(parents=True, exist_ok=True)
    offs = np.cumsum([0] + [len(p.positions) for p in asset.primitives])
    faces = np.concatenate([p.faces + o for p, o in zip(asset.primitives, offs[:-1])]).astype(np.int32)
    np.save(gt / "faces.npy", faces)
    if recipe.colour_calibration and layout != "smc":
        raise DataError("a Color_Calibration can only be stored in the SMC layout", "--layout",
                        "use --layout smc, or leave the colour calibration out")
    cams, calib = lens_and_colour(cams, recipe.seed, recipe.lens, recipe.colour_calibration)
    # rendered frame by frame as the writer asks for them: one frame's images in memory at a time
    video = RenderedCapture(renderer, cams, posed, near, far, ext, recipe.jpeg_quality, gt,
                            held_out_names(cams.names, recipe.held_out), recipe.fps, calib, recipe.supersample)
    try:
        with progress(f"rendering {asset.path.name}", recipe.frames) as advance:
            if layout == "easyvolcap":
                from fourd.datasets.easyvolcap import write_easyvolcap

                write_easyvolcap(video, out, progress=advance)
            else:
                from fourd.datasets.smc import write_smc

                write_smc(video, out, sequence=Path(recipe.asset).stem.lower(), progress=advance)
    finally:
        renderer.release()
    meta = {"recipe": asdict(recipe), "layout": layout, "normalization": {"scale": s, "offset": off.tolist()},
            "near": float(near), "far": float(far)}
    atomic_write_text(out / "synth.json", json.dumps(meta, indent=2))
    sizes = sorted({(int(w), int(h)) for w, h in zip(cams.W, cams.H)})
    log(f"wrote {layout} capture: {len(cams)} cameras × {recipe.frames} frames at "
        f"{', '.join(f'{w}×{h}' for w, h in sizes)} → {out}")
    return out


def load_ground_truth(root: str | Path, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """(vertices [V, 3], faces [F, 3]) of a synthetic capture's posed mesh at ``frame``."""
    gt = Path(root) / "gt"
    vp = gt / f"verts_{int(frame):06d}.npy"
    if not vp.is_file():
        raise DataError("no ground-truth mesh for this frame", vp, "only synthetic captures carry gt/")
    return np.load(vp, allow_pickle=False), np.load(gt / "faces.npy", allow_pickle=False)
