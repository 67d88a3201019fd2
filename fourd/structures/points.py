"""``PointSequence``: per-frame point sets packed into one tensor with offsets.

Frame t holds ``points[offsets[t]:offsets[t+1]]``; optional per-point attributes (colour,
normal, radius, density, features) are packed the same way. Saved as safetensors (no pickle)
with a format version, or as one binary PLY per frame for Open3D/MeshLab.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from fourd.errors import DataError
from fourd.io import atomic_write_bytes

FORMAT = "fourd.points"
VERSION = 1


@dataclass
class PointSequence:
    points: Tensor  # [P, 3] float32, all frames packed
    offsets: Tensor  # [T + 1] int64, offsets[0] = 0, offsets[-1] = P
    frames: list[int] = field(default_factory=list)  # frame id of each slot
    attributes: dict[str, Tensor] = field(default_factory=dict)  # name → [P, C]
    meta: dict = field(default_factory=dict)  # JSON-able extras (bounds, provenance)

    def __post_init__(self):
        self.offsets = torch.as_tensor(self.offsets, dtype=torch.long)
        if self.points.dim() != 2 or self.points.shape[1] != 3:
            raise ValueError(f"PointSequence: points must be [P, 3], got {list(self.points.shape)}")
        T = self.offsets.numel() - 1
        if T < 0 or int(self.offsets[0]) != 0 or int(self.offsets[-1]) != self.points.shape[0] \
                or bool((self.offsets[1:] < self.offsets[:-1]).any()):
            raise ValueError("PointSequence: offsets must rise from 0 to the number of points")
        if not self.frames:
            self.frames = list(range(T))
        if len(self.frames) != T:
            raise ValueError(f"PointSequence: {len(self.frames)} frame ids for {T} frames")
        for k, v in self.attributes.items():
            if v.shape[0] != self.points.shape[0]:
                raise ValueError(f"PointSequence: attribute '{k}' has {v.shape[0]} rows for {self.points.shape[0]} points")

    @classmethod
    def from_list(cls, points: list[Tensor], frames: list[int] | None = None,
                  attributes: dict[str, list[Tensor]] | None = None, meta: dict | None = None) -> "PointSequence":
        counts = [int(p.shape[0]) for p in points]
        offsets = torch.tensor([0] + list(np.cumsum(counts)), dtype=torch.long)
        pts = torch.cat([torch.as_tensor(p, dtype=torch.float32).reshape(-1, 3) for p in points])
        attrs = {k: torch.cat([torch.as_tensor(a) for a in v]) for k, v in (attributes or {}).items()}
        return cls(pts, offsets, list(frames or range(len(points))), attrs, dict(meta or {}))

    def __len__(self) -> int:
        return self.offsets.numel() - 1

    @property
    def counts(self) -> list[int]:
        return (self.offsets[1:] - self.offsets[:-1]).tolist()

    def slot(self, frame: int) -> int:
        try:
            return self.frames.index(int(frame))
        except ValueError:
            raise KeyError(f"frame {frame} is not in the point sequence ({self.frames[0]}..{self.frames[-1]})") from None

    def frame(self, frame: int) -> Tensor:
        """Points [N_t, 3] of frame id ``frame``."""
        t = self.slot(frame)
        return self.points[self.offsets[t]:self.offsets[t + 1]]

    def attribute(self, name: str, frame: int) -> Tensor:
        t = self.slot(frame)
        return self.attributes[name][self.offsets[t]:self.offsets[t + 1]]

    def bounds(self) -> tuple[Tensor, Tensor]:
        return self.points.min(0).values, self.points.max(0).values

    # --------------------------------------------------------------- files
    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save

        tensors = {"points": self.points.contiguous(), "offsets": self.offsets.contiguous()}
        tensors.update({f"attr.{k}": v.contiguous() for k, v in self.attributes.items()})
        header = {"format": FORMAT, "version": str(VERSION), "frames": json.dumps(self.frames),
                  "meta": json.dumps(self.meta)}
        return atomic_write_bytes(path, save(tensors, metadata=header))

    @classmethod
    def load(cls, path: str | Path) -> "PointSequence":
        from safetensors import SafetensorError
        from safetensors.torch import load

        path = Path(path)
        if not path.is_file():
            raise DataError("point sequence file not found", path, "run `fourd carve` first, or pass the right path")
        try:
            data = path.read_bytes()
            tensors = load(data)
            n = int.from_bytes(data[:8], "little")
            header = json.loads(data[8:8 + n]).get("__metadata__", {})
        except (SafetensorError, ValueError, json.JSONDecodeError) as e:
            raise DataError(f"not a readable point sequence ({e})", path, "the file is truncated or corrupt; re-run "
                            "`fourd carve`") from None
        if header.get("format") != FORMAT:
            raise DataError("not a fourd point sequence", path, "pass a points.safetensors written by fourd carve")
        if int(header.get("version", 0)) > VERSION:
            raise DataError(f"point sequence format v{header['version']} is newer than this fourd (v{VERSION})", path,
                            "upgrade fourd")
        attrs = {k[5:]: v for k, v in tensors.items() if k.startswith("attr.")}
        try:
            return cls(tensors["points"], tensors["offsets"], json.loads(header["frames"]), attrs,
                       json.loads(header.get("meta", "{}")))
        except (KeyError, ValueError) as e:
            raise DataError(f"inconsistent point sequence ({e})", path, "re-run `fourd carve`") from None

    def write_ply_frames(self, folder: str | Path) -> list[Path]:
        """One binary PLY per frame, ``<frame:06d>.ply``, with colours/normals when present."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        out = []
        for f in self.frames:
            attrs = {k: self.attribute(k, f) for k in self.attributes}
            out.append(write_ply(folder / f"{f:06d}.ply", self.frame(f), attrs))
        return out


_PLY_NAMES = {"colors": ("red", "green", "blue"), "normals": ("nx", "ny", "nz")}


def write_ply(path: str | Path, points: Tensor, attributes: dict[str, Tensor] | None = None) -> Path:
    """Binary little-endian PLY. ``colors`` (float in [0, 1] or uint8) become uchar red/green/blue;
    ``normals`` nx/ny/nz; any other [N] or [N, C] attribute becomes float properties."""
    pts = points.detach().cpu().numpy().astype(np.float32)
    cols = [("x", pts[:, 0]), ("y", pts[:, 1]), ("z", pts[:, 2])]
    for k, v in (attributes or {}).items():
        a = v.detach().cpu().numpy()
        a = a.reshape(len(pts), -1)
        if k == "colors":
            a = a if a.dtype == np.uint8 else np.clip(np.round(a[:, :3] * 255), 0, 255).astype(np.uint8)
            cols += [(n, a[:, i]) for i, n in enumerate(_PLY_NAMES["colors"])]
        elif k == "normals":
            cols += [(n, a[:, i].astype(np.float32)) for i, n in enumerate(_PLY_NAMES["normals"])]
        else:
            cols += [(k if a.shape[1] == 1 else f"{k}_{i}", a[:, i].astype(np.float32)) for i in range(a.shape[1])]
    dtype = np.dtype([(n, c.dtype) for n, c in cols])
    rec = np.empty(len(pts), dtype)
    for n, c in cols:
        rec[n] = c
    props = "".join(f"property {'uchar' if c.dtype == np.uint8 else 'float'} {n}\n" for n, c in cols)
    head = f"ply\nformat binary_little_endian 1.0\nelement vertex {len(pts)}\n{props}end_header\n".encode()
    return atomic_write_bytes(path, head + rec.tobytes())
