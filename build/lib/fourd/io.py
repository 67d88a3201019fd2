"""Atomic file writes (temp file in the same folder, then rename) with clear disk-full errors."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from fourd.errors import FourdError


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise FourdError("the disk is full; nothing was overwritten", path, "free some space and run again") from None
        if e.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise FourdError("cannot write here (permission denied or read-only)", path,
                             "choose a writable output folder") from None
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def write_json(path: str | Path, obj, indent: int | None = 2) -> Path:
    """``obj`` as JSON, atomically."""
    import json

    return atomic_write_text(path, json.dumps(obj, indent=indent))


def encode_png(image) -> bytes:
    """An RGB (or grey) image as PNG bytes: uint8 [H, W(, 3)], or float in [0, 1] (numpy or torch,
    any device)."""
    import cv2
    import numpy as np

    if hasattr(image, "detach"):  # a torch tensor, wherever it lives
        image = image.detach().float().clamp(0, 1).cpu().numpy()
    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 3:
        a = a[..., ::-1]  # OpenCV writes BGR
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(a))
    if not ok:
        raise ValueError(f"cannot encode an image of shape {a.shape} as PNG")
    return buf.tobytes()


def write_png(path: str | Path, image) -> Path:
    """Write an RGB image (see :func:`encode_png`) to ``path`` atomically."""
    return atomic_write_bytes(path, encode_png(image))


def check_output(out: str | Path, kind: str = "file", inputs: tuple = ()) -> Path:
    """Refuse, before any work, an output that cannot be written: ``kind`` "file" must not be an
    existing folder, "folder" must not be an existing file; the nearest existing ancestor must be a
    writable folder; and the output must not be one of ``inputs`` (or inside one, for a folder)."""
    out = Path(out)
    if kind == "file" and out.is_dir():
        raise FourdError("the output is an existing folder, but a file is written here", out,
                         "give a file name (e.g. add the file to the folder's path)")
    if kind == "folder" and out.exists() and not out.is_dir():
        raise FourdError("the output is an existing file, but a folder is written here", out, "choose another --out")
    resolved = out.resolve()
    for src in inputs:
        if src is None:
            continue
        if resolved == Path(src).resolve():
            raise FourdError("the output is the same as an input; it would be overwritten", out,
                             "write to another place")
    parent = out.parent if kind == "file" or not out.exists() else out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise FourdError(f"cannot write the output: {parent} is a file, not a folder", out, "choose another --out")
    if not os.access(parent, os.W_OK):
        raise FourdError("cannot write the output here (permission denied)", out, "choose a writable --out")
    return out
