"""The baked-sequence file (``.fourd``): the versioned contract between training and playback.

A safetensors file (no pickle; memory-mappable) holding, per frame ``t``:

    t{t:06d}.xyz       uint16 [N, 3]   positions quantized within the header's bounds
    t{t:06d}.radius    float16 [N]     world units
    t{t:06d}.density   uint8 [N]       density · 255 / the frame's density scale (1 before v4)
    t{t:06d}.rgb       uint8 [N, 3]    view-independent colour (baked image blend)
    t{t:06d}.sh        uint8 [N, 5]    optional degree-1 SH residual: 9 signed 4-bit values
                                       (basis-major, then r g b; levels −7..7 stored as 1..15 in
                                       low-then-high nibbles) times the frame's sh_scale / 7

17 bytes per point with the residual, 12 without. (Version 1 stored the residual as int8
[N, 3, 3] × sh_scale / 127 with one scale for the file; it is still read.) The header
(safetensors metadata, JSON strings) holds format, version, frames, counts, bounds, cameras (the
capture's, for snapping the view), fps, background, sh_scales (one per frame), and a CRC-32 per frame
so a tampered or damaged frame is caught when it is read.

Version 3 adds the exact appearance of ``fourd bake --appearance views`` (header ``appearance``:
``views``; compact files are still written as version 2): 4K4D-style tables of what the model's
image blend needs per training camera s (header ``views``: the cameras' names and centres in table
order, how many nearest ones to blend, the directional prior, the SH scale), per frame

    t{t:06d}.src       uint8 [S, N, 4]   colour of the point in source s, and 255 where s sees it
    t{t:06d}.logit     float16 [S, N]    the learned blend logit of s (0 where s does not see it)
    t{t:06d}.base      uint8 [N, 3]      the colour of points none of the chosen sources sees
    t{t:06d}.shv       int8 [N, B, 3]    the SH residual's coefficients (before tanh), times the
                                         frame's per-basis step ``view_sh_steps[t][b]``

and ``rgb`` holds the mean colour over the sources that see the point, for exports and previews.
6·S + 3·B + 15 bytes per point (S = 16, B = 16: 159; 4K4D's fp16 tables at S = 16: 228). Frames are read one at a time with
plain reads at the offsets the header gives (no memory map whose touched pages would stay
resident), so memory does not grow with the sequence length.

Version 4 adds ``density_scales`` (one per frame, the frame's largest density): written only when a
model's densities exceed 1 (``--model.density-max``); files without it are written as v2 / v3.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fourd.errors import DataError
from fourd.io import atomic_write_bytes

FORMAT, VERSION = "fourd.baked", 4
FIELDS = ("xyz", "radius", "density", "rgb")
VIEW_FIELDS = ("src", "logit", "base", "shv")
_DTYPES = {"U16": np.uint16, "I16": np.int16, "F16": np.float16, "U8": np.uint8, "I8": np.int8, "F32": np.float32}


@dataclass
class ViewTables:
    """The exact appearance of a frame: the model's per-source-view terms (see
    :func:`fourd.model.appearance.blend_colors`) and the constants that combine them."""

    centers: torch.Tensor  # [S, 3] source camera centres, in table order
    rgb: torch.Tensor  # [S, N, 3] the point's colour in each source
    visible: torch.Tensor  # [S, N] bool
    logit: torch.Tensor  # [S, N] learned blend logit
    fallback: torch.Tensor  # [N, 3] colour where none of the chosen sources sees the point
    sh: torch.Tensor | None  # [N, B, 3] residual SH coefficients (before tanh), or None
    select: int = 4  # nearest sources blended
    prior: float = 20.0  # blend logit per unit of cos(source ray, target ray)
    sh_scale: float = 0.25  # residual = sh_scale · tanh(SH)
    names: list[str] | None = None  # the sources' camera names

    def nearest(self, eye: torch.Tensor) -> torch.Tensor:
        """Table rows of the sources to blend for a camera at ``eye`` (nearest centres first — the
        trainer's rule; a row that sees no point of the frame is a camera that dropped it, passed
        over as the trainer passes over it)."""
        d = (self.centers - eye.to(self.centers).reshape(1, 3)).norm(dim=1)
        d = torch.where(self.visible.any(1).to(d.device), d, torch.full_like(d, float("inf")))
        return torch.argsort(d)[: self.select]


@dataclass
class BakedFrame:
    xyz: torch.Tensor  # [N, 3] float32
    radius: torch.Tensor  # [N]
    density: torch.Tensor  # [N] ≥ 0 (≤ 1 unless the model's density-max is larger)
    rgb: torch.Tensor  # [N, 3] in [0, 1]
    sh: torch.Tensor | None = None  # [N, 3 (basis), 3 (rgb)] degree-1 residual, or None
    views: ViewTables | None = None  # exact appearance (replaces rgb + sh when rendering)


def _key(t: int, name: str) -> str:
    return f"t{t:06d}.{name}"


def sh_range(sh: torch.Tensor) -> float:
    """Per-frame quantization range of the residual: the 99.9th percentile of its magnitude (the
    few larger values are clipped rather than coarsening every other one)."""
    a = sh.abs().flatten()
    if a.numel() == 0:
        return 1e-3
    q = torch.quantile(a[torch.randperm(a.numel())[:1_000_000]] if a.numel() > 1_000_000 else a, 0.999)
    return max(float(q), 1e-3)


def pack_sh4(sh: torch.Tensor, scale: float) -> torch.Tensor:
    """[N, 3, 3] → uint8 [N, 5]: 4-bit levels −7..7 (stored +8), two per byte, low nibble first."""
    n = sh.shape[0]
    q = (sh.reshape(n, 9) / scale * 7).round().clamp(-7, 7).to(torch.int32) + 8
    q = torch.cat([q, torch.zeros(n, 1, dtype=torch.int32)], 1)  # pad to 10 nibbles
    return (q[:, 0::2] | (q[:, 1::2] << 4)).to(torch.uint8)


def unpack_sh4(packed: torch.Tensor, scale: float) -> torch.Tensor:
    """uint8 [N, 5] → [N, 3, 3] float."""
    p = packed.to(torch.int32)
    q = torch.stack([p & 15, p >> 4], -1).reshape(p.shape[0], 10)[:, :9]
    return ((q - 8).float() * (scale / 7)).reshape(-1, 3, 3)


def density_range(density: torch.Tensor) -> float:
    """Per-frame quantization range of the density: 1, or the frame's largest density when a model
    lets densities exceed 1 (``--model.density-max``)."""
    return max(1.0, float(density.max())) if density.numel() else 1.0


def encode_frame(f: BakedFrame, lo: np.ndarray, hi: np.ndarray, sh_scale: float,
                 density_scale: float = 1.0) -> dict[str, torch.Tensor]:
    q = ((f.xyz.double() - torch.from_numpy(lo)) / torch.from_numpy(hi - lo)).clamp(0, 1) * 65535
    out = {
        "xyz": q.round().to(torch.int32).to(torch.uint16) if hasattr(torch, "uint16") else q.round().short(),
        "radius": f.radius.to(torch.float16),
        "density": (f.density.clamp(0, density_scale) / density_scale * 255).round().to(torch.uint8),
        "rgb": (f.rgb.clamp(0, 1) * 255).round().to(torch.uint8),
    }
    if f.sh is not None:
        out["sh"] = pack_sh4(f.sh, sh_scale)
    if f.views is not None:
        out.update(pack_views(f.views))
    return {k: v.contiguous() for k, v in out.items()}


def pack_views(v: ViewTables) -> dict[str, torch.Tensor]:
    """View tables in their stored types (also what the GL renderer uploads): src, logit, base and
    shv (scaled by :func:`view_sh_steps`)."""
    out = {"src": torch.cat([(v.rgb.clamp(0, 1) * 255).round(), v.visible[..., None].float() * 255], -1).to(torch.uint8),
           "logit": torch.where(v.visible, v.logit, torch.zeros_like(v.logit)).to(torch.float16),
           "base": (v.fallback.clamp(0, 1) * 255).round().to(torch.uint8)}
    if v.sh is not None:
        out["shv"] = (v.sh / torch.tensor(view_sh_steps(v.sh))[None, :, None]).round().clamp(-127, 127).to(torch.int8)
    return out


def view_sh_steps(sh: torch.Tensor) -> list[float]:
    """Quantization step per SH basis function of a frame: its largest magnitude over 127 (nothing
    is clipped, so the residual stays exact to half a step)."""
    m = sh.abs().amax(dim=(0, 2)) if sh.shape[0] else torch.zeros(sh.shape[1])
    return [max(float(x), 1e-6) / 127 for x in m]


def _crc(tensors: dict[str, torch.Tensor]) -> int:
    c = 0
    for k in sorted(tensors):
        c = zlib.crc32(tensors[k].numpy().tobytes(), c)
    return c


_ST_DTYPES = {torch.uint16: "U16", torch.int16: "I16", torch.float16: "F16", torch.uint8: "U8", torch.int8: "I8",
              torch.float32: "F32"}


class BakeWriter:
    """Writes a ``.fourd`` file frame by frame: each frame is encoded and appended to a temporary
    data file as it comes (with its CRC), and :meth:`close` writes the safetensors header then the
    data and renames the result into place — memory holds one frame, never the sequence; a write
    that fails (a full disk) leaves no file, half or whole, behind."""

    def __init__(self, path: str | Path, bounds):
        import os

        self.path = Path(path)
        lo, hi = (np.asarray(b, np.float64) for b in bounds)
        self.lo, self.hi = lo, np.maximum(hi, lo + 1e-6)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._data_path = self.path.with_name(f".{self.path.name}.data{os.getpid()}")
        self._data = open(self._data_path, "wb")
        self._entries: dict[str, dict] = {}
        self._offset = 0
        self.crcs, self.counts, self.scales, self.steps, self.densities = [], [], [], [], []
        self.views: ViewTables | None = None
        self.has_sh: bool | None = None

    def add(self, f: "BakedFrame") -> None:
        t = len(self.counts)
        if t == 0:
            self.views, self.has_sh = f.views, f.sh is not None
        elif (f.views is None) != (self.views is None):
            raise ValueError("every frame of a file has view tables, or none")
        elif self.views is not None and not torch.equal(f.views.centers, self.views.centers):
            raise ValueError("the frames' view tables must share one set of source cameras")
        self.scales.append(sh_range(f.sh) if f.sh is not None else 0.0)
        if self.views is not None and self.views.sh is not None:
            self.steps.append(view_sh_steps(f.views.sh))
        self.densities.append(density_range(f.density))
        enc = encode_frame(f, self.lo, self.hi, self.scales[-1], self.densities[-1])
        self.crcs.append(_crc(enc))
        self.counts.append(int(f.xyz.shape[0]))
        try:
            for k in sorted(enc):
                v = enc[k].contiguous()
                raw = v.numpy().tobytes()
                self._entries[_key(t, k)] = {"dtype": _ST_DTYPES[v.dtype], "shape": list(v.shape),
                                             "data_offsets": [self._offset, self._offset + len(raw)]}
                self._data.write(raw)
                self._offset += len(raw)
        except OSError as e:
            self.abort()
            raise _disk_error(e, self.path) from None

    def close(self, frame_ids: list[int], cameras: dict, fps: float, background=(0.0, 0.0, 0.0)) -> Path:
        import os

        header = {"format": FORMAT, "version": str(VERSION), "frames": json.dumps(frame_ids),
                  "counts": json.dumps(self.counts), "bounds": json.dumps([self.lo.tolist(), self.hi.tolist()]),
                  "cameras": json.dumps(cameras), "fps": str(fps), "background": json.dumps(list(background)),
                  "sh_scales": json.dumps(self.scales), "crc32": json.dumps(self.crcs),
                  "has_sh": json.dumps(bool(self.has_sh))}
        if self.views is not None:
            v = self.views
            header.update(appearance="views", view_sh_steps=json.dumps(self.steps), views=json.dumps(
                {"names": v.names, "centers": v.centers.tolist(), "select": v.select, "prior": v.prior,
                 "sh_scale": v.sh_scale, "sh_basis": 0 if v.sh is None else int(v.sh.shape[1])}))
        if max(self.densities, default=1.0) > 1.0:  # densities above 1: only v4 readers scale them
            header["density_scales"] = json.dumps(self.densities)
        elif self.views is not None:
            header["version"] = "3"  # nothing newer: fourd since v3 reads it
        else:
            header["version"] = "2"  # nothing new: older fourd reads it
        blob = json.dumps({"__metadata__": header, **self._entries}, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)  # data starts 8-byte aligned, as safetensors writes it
        tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
        try:
            self._data.close()
            with open(tmp, "wb") as out, open(self._data_path, "rb") as data:
                out.write(len(blob).to_bytes(8, "little"))
                out.write(blob)
                while chunk := data.read(16 << 20):
                    out.write(chunk)
            os.replace(tmp, self.path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise _disk_error(e, self.path) from None
        finally:
            self._data_path.unlink(missing_ok=True)
        return self.path

    def abort(self) -> None:
        self._data.close()
        self._data_path.unlink(missing_ok=True)


def _disk_error(e: OSError, path: Path) -> Exception:
    import errno

    from fourd.errors import FourdError

    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return FourdError("the disk filled while baking; no file was left behind", path, "free some space and bake again")
    return e


def write_baked(path: str | Path, frames: list[BakedFrame], frame_ids: list[int], bounds, cameras: dict, fps: float,
                background=(0.0, 0.0, 0.0)) -> Path:
    """Write frames already in memory (see :class:`BakeWriter` to write them as they are made)."""
    w = BakeWriter(path, bounds)
    try:
        for f in frames:
            w.add(f)
    except BaseException:
        w.abort()
        raise
    return w.close(frame_ids, cameras, fps, background)


class BakedSequence:
    """Read-only, frame-at-a-time access to a ``.fourd`` file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError("baked file not found", self.path, "make one with `fourd bake RUN --out scene.fourd`")
        size = self.path.stat().st_size
        try:
            with open(self.path, "rb") as fh:
                n = int.from_bytes(fh.read(8), "little")
                if n <= 0 or 8 + n > size:
                    raise ValueError("header length exceeds the file")
                header = json.loads(fh.read(n))
            meta = header.pop("__metadata__", {})
            self._entries = header
            self._data_start = 8 + n
            end = max((e["data_offsets"][1] for e in header.values()), default=0)
            if self._data_start + end > size:
                raise ValueError(f"tensor data ends at byte {self._data_start + end} but the file has {size}")
        except Exception as e:
            raise DataError(f"not a readable baked sequence ({type(e).__name__}: {e})", self.path,
                            "the file is truncated or damaged: bake it again") from None
        if meta.get("format") != FORMAT:
            raise DataError("not a fourd baked sequence", self.path, "pass a .fourd file written by fourd bake")
        try:
            self._parse_header(meta)
        except DataError:
            raise
        except (KeyError, ValueError, TypeError, IndexError) as e:
            what = f"lacks '{e.args[0]}'" if isinstance(e, KeyError) else f"has a bad header ({e})"
            raise DataError(f"the baked file {what}", self.path, "bake the sequence again") from None
        # every tensor a frame needs must be there, with its point count, and its stored bytes must be
        # exactly shape × dtype — all before anything is allocated
        S = len(self._centers) if self.views is not None else 0
        for t, n in enumerate(self.counts):
            for k in self._fields:
                e = self._entries.get(_key(t, k))
                if e is None:
                    raise DataError(f"frame {self.frames[t]} lacks '{k}'", self.path, "bake the sequence again")
                lead = [S, n] if k in ("src", "logit") else [n]
                if e.get("shape", [])[:len(lead)] != lead or e.get("dtype") not in _DTYPES:
                    raise DataError(f"frame {self.frames[t]}: '{k}' has the wrong shape or type", self.path, "bake again")
                a, b = e["data_offsets"]
                want = int(np.prod(e["shape"], dtype=np.int64)) * np.dtype(_DTYPES[e["dtype"]]).itemsize
                if not 0 <= a <= b or b - a != want:
                    raise DataError(f"frame {self.frames[t]}: '{k}' claims {want} bytes but stores {b - a}", self.path,
                                    "the file is damaged: bake it again")

    def _parse_header(self, meta: dict) -> None:
        version = meta.get("version", "0")
        if not str(version).isdigit():
            raise ValueError(f"version '{version}' is not a number")
        self.version = int(version)
        if self.version > VERSION:
            raise DataError(f"baked format v{self.version} is newer than this fourd reads (v{VERSION})", self.path,
                            "upgrade fourd")
        self.frames: list[int] = [int(f) for f in json.loads(meta["frames"])]
        self.counts: list[int] = [int(c) for c in json.loads(meta["counts"])]
        if not self.frames or len(self.frames) != len(self.counts) or len(set(self.frames)) != len(self.frames):
            raise ValueError(f"{len(self.frames)} frames (unique?) for {len(self.counts)} point counts")
        if min(self.counts) < 0:
            raise ValueError("a negative point count")
        lo, hi = json.loads(meta["bounds"])
        self.lo, self.hi = torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64)
        if self.lo.shape != (3,) or self.hi.shape != (3,) or not bool(torch.isfinite(self.lo).all()
                                                                          and torch.isfinite(self.hi).all()):
            raise ValueError("bounds must be two finite xyz corners")
        self.cameras: dict = json.loads(meta["cameras"])
        self.fps = float(meta["fps"])
        if not 0 < self.fps < 10_000:
            raise ValueError(f"fps {self.fps}")
        self.background = tuple(float(c) for c in json.loads(meta["background"]))
        if len(self.background) != 3:
            raise ValueError("background must be r g b")
        if self.version >= 2:
            self.sh_scales = [float(x) for x in json.loads(meta["sh_scales"])]
        else:  # v1: one scale, int8 [N, 3, 3]
            self.sh_scales = [float(meta["sh_scale"])] * len(self.counts)
        self.has_sh = bool(json.loads(meta.get("has_sh", "false")))
        self.appearance = meta.get("appearance", "compact")
        if self.appearance not in ("compact", "views"):
            raise ValueError(f"appearance '{self.appearance}'")
        self.views: dict | None = json.loads(meta["views"]) if self.appearance == "views" else None
        self._fields = FIELDS + (("sh",) if self.has_sh else ())
        if self.views is not None:
            self._fields += VIEW_FIELDS if self.views["sh_basis"] else VIEW_FIELDS[:-1]
            self._view_steps = json.loads(meta["view_sh_steps"])
            self._centers = torch.tensor(self.views["centers"], dtype=torch.float32).reshape(-1, 3)
        self._crc = [int(c) for c in json.loads(meta["crc32"])]
        self.density_scales = [float(x) for x in json.loads(meta.get("density_scales", "null")) or
                               [1.0] * len(self.frames)]
        if len(self._crc) != len(self.frames) or len(self.sh_scales) != len(self.frames) \
                or len(self.density_scales) != len(self.frames):
            raise ValueError("one checksum, one SH scale and one density scale per frame expected")

    def _read(self, key: str) -> torch.Tensor:
        e = self._entries[key]
        a, b = e["data_offsets"]
        with open(self.path, "rb") as fh:
            fh.seek(self._data_start + a)
            raw = fh.read(b - a)
        return torch.from_numpy(np.frombuffer(raw, dtype=_DTYPES[e["dtype"]]).reshape(e["shape"]).copy())

    def __len__(self) -> int:
        return len(self.frames)

    def frame(self, t: int) -> BakedFrame:
        """Decode frame slot ``t`` (0-based), checking its CRC."""
        if not 0 <= t < len(self.frames):
            raise DataError(f"frame slot {t} is out of range (0..{len(self.frames) - 1})", self.path,
                            "ask for a frame the file has")
        enc = {k: self._read(_key(t, k)) for k in self._fields}
        if _crc(enc) != self._crc[t]:
            raise DataError(f"frame {self.frames[t]} fails its checksum (damaged or edited)", self.path,
                            "bake the sequence again")
        q = enc["xyz"].to(torch.int32) & 0xFFFF  # uint16 on disk
        xyz = (self.lo + q.double() / 65535 * (self.hi - self.lo)).float()
        sh = None
        if self.has_sh:
            sh = unpack_sh4(enc["sh"], self.sh_scales[t]) if self.version >= 2 else \
                enc["sh"].float() / 127 * self.sh_scales[t]
        views = None
        if self.views is not None:
            v = self.views
            shv = None
            if v["sh_basis"]:
                shv = enc["shv"].float() * torch.tensor(self._view_steps[t], dtype=torch.float32)[None, :, None]
            src = enc["src"]
            views = ViewTables(self._centers, src[..., :3].float() / 255, src[..., 3] > 127, enc["logit"].float(),
                               enc["base"].float() / 255, shv, int(v["select"]), float(v["prior"]),
                               float(v["sh_scale"]), v.get("names"))
        density = enc["density"].float() / 255 * self.density_scales[t]
        return BakedFrame(xyz, enc["radius"].float(), density, enc["rgb"].float() / 255, sh,
                          views)

    @property
    def bytes_per_point(self) -> float:
        return (self.path.stat().st_size) / max(sum(self.counts), 1)
