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
            seq = cls(tensors["points"], tensors["offsets"], [int(f) for f in json.loads(header["frames"])], attrs,
                      json.loads(header.get("meta", "{}")))
        except (KeyError, ValueError, TypeError) as e:
            raise DataError(f"inconsistent point sequence ({e})", path, "re-run `fourd carve`") from None
        empty = [f for f, n in zip(seq.frames, seq.counts) if n == 0]
        if empty:
            raise DataError(f"frame(s) {empty[:6]} have no points", path, "re-run `fourd carve` (or drop those frames)")
        if not bool(torch.isfinite(seq.points).all()):
            raise DataError("the points contain NaN or infinite coordinates", path, "re-run `fourd carve`")
        bad = [k for k, v in attrs.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if bad:
            raise DataError(f"attribute(s) {bad} contain NaN or infinite values", path, "re-run `fourd carve`")
        return seq

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


_PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
              "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
              "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}


def read_ply(path: str | Path) -> tuple[Tensor, dict[str, Tensor]]:
    """The vertices of a PLY file (binary or ASCII) with every per-vertex property: (points
    [N, 3] float32, attributes). red/green/blue become ``colors`` [N, 3] in [0, 1], nx/ny/nz
    ``normals``; ``name_0..name_k`` one [N, k+1] attribute and any other scalar ``name`` [N]
    — so files from :func:`write_ply` read back with radius, density and everything else."""
    from fourd.errors import DataError

    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read the PLY ({e.strerror})", path, "check the path") from None
    end = raw.find(b"end_header\n")
    if not raw.startswith(b"ply") or end < 0:
        raise DataError("not a PLY file (no ply header)", path, "pass a .ply point cloud")
    lines = raw[:end].decode("ascii", "replace").splitlines()
    fmt, elements = None, []  # [(name, count, [(prop, dtype)] or None for list properties)]
    for ln in lines[1:]:
        w = ln.split()
        if not w or w[0] in ("comment", "obj_info"):
            continue
        if w[0] == "format" and len(w) >= 2:
            fmt = w[1]
        elif w[0] == "element" and len(w) == 3 and w[2].isdigit():
            elements.append((w[1], int(w[2]), []))
        elif w[0] == "property" and elements and len(w) >= 3:
            props = elements[-1][2]
            if w[1] == "list" or w[1] not in _PLY_TYPES:
                elements[-1] = (elements[-1][0], elements[-1][1], None)
            elif props is not None:
                props.append((w[2], _PLY_TYPES[w[1]]))
        else:
            raise DataError(f"unreadable PLY header line '{ln.strip()}'", path, "re-export the file")
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise DataError(f"unknown PLY format '{fmt}'", path, "use binary_little_endian or ascii PLY")
    names = [e[0] for e in elements]
    if "vertex" not in names or names.index("vertex") != 0 or not elements[0][2]:
        raise DataError("the PLY's first element is not a vertex list of numbers", path, "re-export the point cloud")
    _, n, props = elements[0]
    body = raw[end + len(b"end_header\n"):]
    if fmt == "ascii":
        rows = body.decode("ascii", "replace").split("\n")[:n]
        try:
            table = np.array([r.split()[:len(props)] for r in rows], dtype=np.float64)
        except ValueError:
            table = np.zeros((0, 0))
        if table.shape != (n, len(props)):
            raise DataError(f"the PLY is truncated or malformed: the header says {n} vertices", path,
                            "re-export the file")
        rec = {p: table[:, i].astype(t) for i, (p, t) in enumerate(props)}
    else:
        order = "<" if fmt == "binary_little_endian" else ">"
        dtype = np.dtype([(p, order + t) for p, t in props])
        if n * dtype.itemsize > len(body):
            raise DataError(f"the PLY is truncated: the header says {n} vertices ({n * dtype.itemsize} bytes) but "
                            f"the file holds {len(body)} bytes", path, "re-export or re-copy the file")
        arr = np.frombuffer(body, dtype, count=n)
        rec = {p: arr[p].astype(arr[p].dtype.newbyteorder("=")) for p, _ in props}
    if n == 0:
        raise DataError("the PLY has no points", path, "re-export it")
    if not all(k in rec for k in "xyz"):
        raise DataError("the PLY vertices have no x, y, z", path, "re-export the point cloud")
    xyz = np.stack([rec.pop(k) for k in "xyz"], 1).astype(np.float32)
    if not np.isfinite(xyz).all():
        raise DataError("the PLY has NaN or infinite coordinates", path, "re-export it without invalid points")
    attrs: dict[str, Tensor] = {}
    for name, keys in _PLY_NAMES.items():
        if all(k in rec for k in keys):
            a = np.stack([rec.pop(k) for k in keys], 1)
            a = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
            attrs[name] = torch.from_numpy(a)
    groups: dict[str, list[tuple[int, str]]] = {}
    for k in list(rec):
        base, _, idx = k.rpartition("_")
        if base and idx.isdigit():
            groups.setdefault(base, []).append((int(idx), k))
    for base, items in groups.items():
        items.sort()
        if [i for i, _ in items] == list(range(len(items))):
            attrs[base] = torch.from_numpy(np.stack([rec.pop(k) for _, k in items], 1).astype(np.float32))
    for k, v in rec.items():
        attrs[k] = torch.from_numpy(v.astype(np.float32))
    return torch.from_numpy(xyz), attrs
