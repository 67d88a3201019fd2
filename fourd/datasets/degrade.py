"""``fourd data degrade``: a capture with the faults of a real rig, made from a clean one.

Applied to the training cameras only — held-out cameras stay exact and clean, so evaluation keeps
its ground truth. Each fault can be chosen alone (``--faults``); what was applied is written to
``OUT/faults.json``:

- ``colour``: a per-camera gain and offset per channel (the cameras disagree in colour);
- ``distortion``: radial lens distortion (k1, k2) applied to images and masks and written into
  the calibration's ``D``, so undistortion on load is exercised;
- ``calibration``: the written pose is off — a small rotation about the camera centre and a
  small shift of the centre (the images stay as the true camera saw them);
- ``masks``: on some images a 1-px erosion or dilation, a small hole inside the silhouette or a
  stray blob near it;
- ``background``: a textured plate behind the subject, composited with a soft edge (edge pixels
  carry background colour, as matting does);
- ``noise``: sensor noise and JPEG re-encoding;
- ``sync`` (not in the default set): a camera or two out of step with the rest — its frame ``f``
  shows the moment the others show at ``f + shift`` (the sequence's ends repeat the nearest frame).

The degraded capture is produced image by image while it is written (never held in memory).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fourd.datasets.base import MultiViewVideo, is_label_mask, label_mask_to_255, soft_levels
from fourd.datasets.codecs import decode_image, encode_image
from fourd.errors import DataError
from fourd.structures.cameras import Cameras, closest_point_to_rays, lens_map

DEFAULT_FAULTS = ("colour", "distortion", "calibration", "masks", "background", "noise")
FAULTS = (*DEFAULT_FAULTS, "sync", "drops")


@dataclass
class FaultSpec:
    gain: float = 0.08
    """colour gain per channel drawn from [1 − gain, 1 + gain]."""
    offset: float = 0.03
    """colour offset per channel drawn from [−offset, offset] (of full scale)."""
    k1: tuple[float, float] = (-0.15, -0.05)
    """radial distortion k1 range."""
    k2: tuple[float, float] = (0.0, 0.05)
    """radial distortion k2 range."""
    rotation_deg: tuple[float, float] = (0.05, 0.1)
    """pose error: rotation angle range, degrees."""
    translation: float = 0.002
    """pose error: centre shift, as a fraction of the camera's distance to the scene centre."""
    relative: bool = True
    """pose errors relative to the rig: the part of the drawn errors that is one motion of the whole
    training rig (a turn about the scene centre and a shift, fitted by least squares in pixels) is
    taken out. That part is a change of world frame, which nothing in the training images shows,
    and the exact held-out cameras would count it against any method (on the 20-camera Fox rig:
    a 0.034° turn and 3 mm, about 1 dB held-out). Off: the errors as drawn."""
    mask_fraction: float = 0.5
    """fraction of training images whose mask is damaged."""
    noise: float = 2.0
    """sensor noise, grey levels (σ)."""
    jpeg_quality: int = 85
    """JPEG quality of the re-encoded images (noise fault)."""
    sync_cameras: int = 1
    """training cameras put out of step (sync fault)."""
    sync_frames: tuple[int, int] = (1, 3)
    """how many frames each is off, either way (sync fault)."""
    drop_frames: int = 1
    """frames each training camera lacks, drawn at random (drops fault: a rig's dropped frames)."""


def noise_texture(rng, h: int, w: int, sharp: bool = False) -> np.ndarray:
    """Smooth colourful texture with features at several scales; ``sharp`` adds light and dark dots
    (detail in brightness, which survives a video codec's half-resolution colour)."""
    import cv2

    tex = np.zeros((h, w, 3), np.float32)
    for cell, amp in ((64, 0.5), (16, 0.3), (4, 0.2)):
        small = rng.random((max(2, h // cell), max(2, w // cell), 3)).astype(np.float32)
        tex += amp * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    tex = np.clip((tex - tex.mean()) * 1.6 + 0.45, 0.05, 0.95) * 255
    if sharp:
        dots = cv2.GaussianBlur((rng.random((h, w)) < 0.02).astype(np.float32), (0, 0), 1.0) * 3
        sign = np.where(rng.random((h, w)) < 0.5, -1.0, 1.0).astype(np.float32)
        tex = tex + (dots * sign * 200)[..., None]
    return np.clip(tex, 0, 255).astype(np.uint8)


def _rot(axis: np.ndarray, deg: float) -> np.ndarray:
    import cv2

    a = np.asarray(axis, np.float64)
    return cv2.Rodrigues(a / np.linalg.norm(a) * np.radians(deg))[0]


def _seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


def radial_is_monotonic(k1: float, k2: float, r_max: float) -> bool:
    """r(1 + k1 r² + k2 r⁴) increases on [0, r_max] (the distortion does not fold the image)."""
    r = np.linspace(0, r_max, 512)
    return bool((1 + 3 * k1 * r ** 2 + 5 * k2 * r ** 4 > 0).all())


class DegradedCapture(MultiViewVideo):
    """``src`` with ``faults`` applied to its training cameras, image by image on read."""

    layout = "degraded"

    def __init__(self, src: MultiViewVideo, faults: tuple[str, ...] = DEFAULT_FAULTS, seed: int = 0,
                 spec: FaultSpec | None = None, backdrops: bool = False):
        bad = [f for f in faults if f not in FAULTS]
        if bad:
            raise DataError(f"unknown fault '{bad[0]}'", "--faults", f"use some of {', '.join(FAULTS)}")
        if "masks" in faults and not src.has_masks:
            raise DataError("the capture has no masks to damage", src.path, "drop 'masks' from --faults")
        self.src, self.faults, self.seed, self.spec = src, tuple(faults), int(seed), spec or FaultSpec()
        self.backdrops = bool(backdrops)  # hand out each plate as the camera's picture of the empty scene
        sp = self.spec
        rng = np.random.default_rng(seed)
        cams = src.cameras
        K = cams.K.double().cpu().numpy()
        R = cams.R.double().cpu().numpy().copy()
        T = cams.T.double().cpu().numpy().copy()
        D = cams.D.double().cpu().numpy().copy()
        centre = self._scene_centre(cams)
        self.record: dict = {"faults": list(self.faults), "seed": self.seed, "spec": asdict(sp), "cameras": {},
                             "held_out": list(src.held_out), "images": {}}
        self._maps, self._plates, self._colour = {}, {}, {}
        for i, n in enumerate(cams.names):
            if n in src.held_out:
                continue
            rec: dict = {}
            H, W = int(cams.H[i]), int(cams.W[i])
            if "colour" in faults:
                g = rng.uniform(1 - sp.gain, 1 + sp.gain, 3)
                o = rng.uniform(-sp.offset, sp.offset, 3)
                self._colour[n] = (g, o)
                rec["colour_gain"], rec["colour_offset"] = g.tolist(), o.tolist()
            if "distortion" in faults:
                r_max = float(np.hypot(W / K[i, 0, 0], H / K[i, 1, 1]) / 2)
                for _ in range(100):
                    k1, k2 = rng.uniform(*sp.k1), rng.uniform(*sp.k2)
                    if radial_is_monotonic(k1, k2, r_max * 1.05):
                        break
                D[i, :] = [k1, k2, 0, 0, 0]
                self._maps[n] = lens_map(K[i], D[i], H, W)
                rec["k1"], rec["k2"] = float(k1), float(k2)
            if "calibration" in faults:
                C = -R[i].T @ T[i]
                ang = rng.uniform(*sp.rotation_deg)
                dR = _rot(rng.normal(size=3), ang)
                shift = rng.normal(size=3)
                shift *= sp.translation * float(np.linalg.norm(C - centre)) / np.linalg.norm(shift)
                R[i] = dR @ R[i]
                T[i] = -R[i] @ (C + shift)
                rec["rotation_deg"], rec["centre_shift"] = float(ang), shift.tolist()
            if "background" in faults:
                self._plates[n] = noise_texture(np.random.default_rng(_seed(seed, "plate", n)), H, W)
                rec["background"] = True
            self.record["cameras"][n] = rec
        if "calibration" in faults and sp.relative:
            R, T = self._without_common_motion(cams, R, T, centre)
        self._shift: dict[str, int] = {}
        if "sync" in faults:  # its own draws, so adding it leaves the other faults of a seed as they were
            srng = np.random.default_rng(_seed(seed, "sync"))
            train = list(self.record["cameras"])
            for n in srng.choice(train, min(sp.sync_cameras, len(train)), replace=False):
                k = int(srng.integers(sp.sync_frames[0], sp.sync_frames[1] + 1)) * int(srng.choice([-1, 1]))
                self._shift[str(n)] = k
                self.record["cameras"][str(n)]["frame_shift"] = k
        absent = dict(src.absent)
        if "drops" in faults:  # its own draws, as sync's; a camera's image and mask both go
            drng = np.random.default_rng(_seed(seed, "drops"))
            for n in self.record["cameras"]:
                have = [f for f in src.frames if src.has(f, n)]
                gone = sorted(int(f) for f in drng.choice(have, min(sp.drop_frames, len(have) - 1), replace=False))
                absent[n] = absent.get(n, frozenset()) | frozenset(gone)
                self.record["cameras"][n]["frames_dropped"] = gone
        self.true_cameras = cams
        degraded = Cameras(K, R, T, cams.H, cams.W, D, list(cams.names)).to(dtype=cams.K.dtype)
        super().__init__(src.path, degraded, src.frames, src.held_out, src.fps, absent=absent)

    def _without_common_motion(self, cams: Cameras, R: np.ndarray, T: np.ndarray, centre: np.ndarray):
        """``R``, ``T`` with the one motion of the whole training rig that best explains their
        errors against ``cams`` taken out (:attr:`FaultSpec.relative`): the turn about the scene
        centre and shift that, undone on every training camera, bring a ball of points round the
        centre (a tenth of the rig's distance) closest to where the true cameras see it. The record
        is updated with each camera's remaining error and the motion taken out."""
        import cv2
        from scipy.optimize import least_squares

        R0, T0 = cams.R.double().cpu().numpy(), cams.T.double().cpu().numpy()
        K = cams.K.double().cpu().numpy()
        idx = [i for i, n in enumerate(cams.names) if n in self.record["cameras"]]
        if len(idx) < 2:
            return R, T
        dist = float(np.median([np.linalg.norm(-R0[i].T @ T0[i] - centre) for i in idx]))
        g = np.random.default_rng(0).normal(size=(200, 3))
        X = centre + 0.1 * dist * g / np.linalg.norm(g, axis=1, keepdims=True)

        def project(Ri, Ti, Ki):
            x = X @ Ri.T + Ti
            return (x[:, :2] / x[:, 2:]) * Ki[[0, 1], [0, 1]] + Ki[:2, 2]

        want = [project(R0[i], T0[i], K[i]) for i in idx]

        def undone(p):
            Om = cv2.Rodrigues(p[:3])[0]
            out = []
            for i in idx:  # the camera moved back by the motion (turn Om about the centre, then shift t)
                C = Om.T @ (-R[i].T @ T[i] - centre - p[3:]) + centre
                Ri = R[i] @ Om
                out.append((Ri, -Ri @ C))
            return out

        def residual(p):
            return np.concatenate([(project(Ri, Ti, K[i]) - w).ravel() for (Ri, Ti), i, w in zip(undone(p), idx, want)])

        x = least_squares(residual, np.zeros(6), x_scale=np.r_[np.full(3, 1e-3), np.full(3, 1e-3 * dist)]).x
        R, T = R.copy(), T.copy()
        for (Ri, Ti), i in zip(undone(x), idx):
            R[i], T[i] = Ri, Ti
            rec = self.record["cameras"][cams.names[i]]
            rec["rotation_deg"] = float(np.degrees(np.linalg.norm(cv2.Rodrigues(Ri @ R0[i].T)[0])))
            rec["centre_shift"] = (-Ri.T @ Ti + R0[i].T @ T0[i]).tolist()
        self.record["calibration_common_motion_removed"] = {"rotation_deg": float(np.degrees(np.linalg.norm(x[:3]))),
                                                            "shift": x[3:].tolist()}
        return R, T

    @staticmethod
    def _scene_centre(cams: Cameras) -> np.ndarray:
        """Where the rig looks: the point closest to every optical axis."""
        return closest_point_to_rays(cams.centers.double().cpu().numpy(), cams.R[:, 2].double().cpu().numpy())

    # --------------------------------------------------------------- images
    def _coverage(self, frame: int, cam: str) -> np.ndarray | None:
        """The source mask as stored, 0–1: a hard cut, or each pixel's coverage (an anti-aliased render);
        within 8 levels of 0 or 255 snapped to it."""
        got = self.src.mask_bytes(frame, cam)
        if got is None:
            return None
        m = decode_image(got[0], got[1], grayscale=True)
        m = label_mask_to_255(m) if is_label_mask(m) else m
        soft = soft_levels(m)  # (a JPEG-stored hard mask rings by a few levels at its edge: not coverage)
        return (m > 127).astype(np.float32) if soft is None else soft.astype(np.float32) / 255

    def image_bytes(self, frame, cam):
        import cv2

        frame = self._shifted(frame, cam, self._shift)  # the sync fault
        data, where = self.src.image_bytes(frame, cam)
        stored = decode_image(data, where, white16=self.src.white16)
        img = self.src.correct_colours(stored, cam)  # the source's own colour calibration (DNA-Rendering)
        if cam in self.src.held_out:
            return (data, where) if img is stored else (encode_image(img, ".png"), f"{where} (colour-calibrated)")
        img = img.astype(np.float32)
        if cam in self._plates:
            c = self._coverage(frame, cam)
            if c is not None:
                # an anti-aliased source's edge pixels are the subject over black, in proportion to their
                # coverage: take the black out (colour / coverage) so the plate, not black, fills the rest
                # (a hard 0/1 mask leaves every pixel as it is)
                part = (c >= 0.1) & (c < 1)  # below a tenth the colour is mostly noise: left as it is
                img[part] = np.minimum(img[part] / c[part, None], 255)
                alpha = cv2.GaussianBlur(c, (0, 0), 1.0)[..., None]
                img = img * alpha + self._plates[cam].astype(np.float32) * (1 - alpha)
        if cam in self._colour:
            g, o = self._colour[cam]
            img = img * g + o * 255
        if cam in self._maps:
            img = cv2.remap(np.clip(img, 0, 255), *self._maps[cam], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        ext, quality = ".jpg", 95
        if "noise" in self.faults:
            rng = np.random.default_rng(_seed(self.seed, "noise", frame, cam))
            img = img + rng.normal(0, self.spec.noise, img.shape)
            quality = self.spec.jpeg_quality
        elif data[:4] == b"\x89PNG":
            ext = ".png"
        out = np.clip(np.round(img), 0, 255).astype(np.uint8)
        return encode_image(out, ext, quality), f"{where} (degraded)"

    def backdrop_bytes(self, cam):
        """With ``backdrops``: the plate as the camera records it without the subject (its colour
        fault and lens applied; no sensor noise: a studio's background shot is averaged over frames)."""
        import cv2

        if not self.backdrops or cam not in self._plates:
            return self.src.backdrop_bytes(cam)
        img = self._plates[cam].astype(np.float32)
        if cam in self._colour:
            g, o = self._colour[cam]
            img = img * g + o * 255
        if cam in self._maps:
            img = cv2.remap(np.clip(img, 0, 255), *self._maps[cam], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return encode_image(np.clip(np.round(img), 0, 255).astype(np.uint8), ".png"), f"the plate of camera {cam} (degraded)"

    def mask_bytes(self, frame, cam):
        import cv2

        frame = self._shifted(frame, cam, self._shift)  # the sync fault
        got = self.src.mask_bytes(frame, cam)
        if got is None or cam in self.src.held_out:
            return got
        c = self._coverage(frame, cam)
        if ((c > 0) & (c < 1)).any():
            # a soft (coverage) source: its masks stay soft, as a matting tool's are — each the matte the
            # image was composited with (the plate's soft edge where that fault is on)
            a = cv2.GaussianBlur(c, (0, 0), 1.0) if cam in self._plates else c
            if cam in self._maps:
                a = cv2.remap(a, *self._maps[cam], cv2.INTER_LINEAR)
            if "masks" in self.faults:
                a, what = self._damage(a, frame, cam)
                if what:
                    self.record["images"][f"{frame}/{cam}"] = what
            return encode_image(np.clip(np.round(a * 255), 0, 255).astype(np.uint8), ".png"), f"{got[1]} (degraded)"
        m = c > 0.5
        if cam in self._maps:
            m = cv2.remap(m.astype(np.float32), *self._maps[cam], cv2.INTER_LINEAR) > 0.5
        if "masks" in self.faults:
            m, what = self._damage(m, frame, cam)
            if what:
                self.record["images"][f"{frame}/{cam}"] = what
        return encode_image(m.astype(np.uint8) * 255, ".png"), f"{got[1]} (degraded)"

    def _damage(self, m: np.ndarray, frame: int, cam: str) -> tuple[np.ndarray, dict | None]:
        """One mask's damage, if this (frame, camera) draws one: ``m`` bool, or float coverage (0–1,
        damaged alike: eroded / dilated as a min / max filter, a hole cut out, a blob added)."""
        import cv2

        soft = m.dtype != bool
        a = m.astype(np.float32)
        hard = a > 0.5
        rng = np.random.default_rng(_seed(self.seed, "mask", frame, cam))
        if not hard.any() or rng.random() >= self.spec.mask_fraction:
            return m, None
        kind = ("erode", "dilate", "hole", "blob")[int(rng.integers(4))]
        ys, xs = np.nonzero(hard)
        size = max(ys.max() - ys.min(), xs.max() - xs.min()) + 1
        r = max(2, round(rng.uniform(0.03, 0.06) * size))
        k = np.ones((3, 3), np.uint8)
        info = {"kind": kind}
        if kind == "erode":
            out = cv2.erode(a, k)
        elif kind == "dilate":
            out = cv2.dilate(a, k)
        else:
            inside = cv2.distanceTransform(hard.astype(np.uint8), cv2.DIST_L2, 5)
            outside = cv2.distanceTransform((~hard).astype(np.uint8), cv2.DIST_L2, 5)
            cand = np.argwhere(inside > r + 1) if kind == "hole" else np.argwhere((outside > r) & (outside < 3 * r))
            if not len(cand):
                return m, None
            y, x = cand[int(rng.integers(len(cand)))]
            disk = np.zeros(m.shape, np.uint8)
            cv2.circle(disk, (int(x), int(y)), r, 1, -1)
            out = a * (disk == 0) if kind == "hole" else np.maximum(a, disk.astype(np.float32))
            info.update(radius=r, at=[int(x), int(y)])
        if not soft:
            out = out > 0.5
        info["pixels"] = int(round(float(np.abs(out.astype(np.float32) - a).sum())))  # (coverage: pixels' worth)
        return out, info


def degrade(src: str | Path, out: str | Path, faults: tuple[str, ...] = DEFAULT_FAULTS, seed: int = 0,
            layout: str = "easyvolcap", spec: FaultSpec | None = None, data_root=None, backdrops: bool = False) -> Path:
    """Write ``src`` with ``faults`` as a new capture in ``out`` and ``out/faults.json``; ``backdrops``:
    also each plate as the camera's picture of the empty scene (``bkgd/``, EasyVolcap layout)."""
    from fourd.console import log, progress
    from fourd.datasets import open_dataset
    from fourd.io import write_json

    video = open_dataset(src, data_root)
    if not video.train_cameras or not video.held_out:
        log("[yellow]degrade: the capture holds out no cameras; every camera is degraded and evaluation on it "
            "has no clean ground truth[/]")
    if backdrops and layout != "easyvolcap":
        raise DataError("background pictures (bkgd/) are part of the EasyVolcap layout only", "--backdrops",
                        "use --layout easyvolcap, or drop --backdrops")
    deg = DegradedCapture(video, tuple(faults), seed, spec, backdrops)
    out = Path(out)
    with progress("degrading", len(video.frames)) as advance:
        if layout == "easyvolcap":
            from fourd.datasets.easyvolcap import write_easyvolcap

            write_easyvolcap(deg, out, progress=advance)
        elif layout == "smc":
            from fourd.datasets.smc import write_smc

            write_smc(deg, out, progress=advance)
        else:
            raise DataError(f"unknown layout '{layout}'", "--layout", "use easyvolcap or smc")
    write_json(out / "faults.json", deg.record)
    log(f"degraded capture ({', '.join(deg.faults)}; {len(deg.record['cameras'])} training cameras, "
        f"{len(video.held_out)} held out clean) → {out}")
    return out


def fault_summary(path: str | Path) -> dict:
    """``faults.json`` of a degraded capture."""
    p = Path(path) / "faults.json"
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read faults ({e})", p, "degrade the capture with fourd data degrade") from None
