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
