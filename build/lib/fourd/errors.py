"""One exception type for problems a user can fix, carrying the file and the fix.

The CLI prints these as a single line (no traceback) and exits with status 2.
"""

from __future__ import annotations

from pathlib import Path


class FourdError(Exception):
    """A user-facing error: what went wrong, which file, and how to fix it."""

    def __init__(self, message: str, path: str | Path | None = None, fix: str | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = [f"{self.path}: {self.message}" if self.path else self.message]
        if self.fix:
            parts.append(f"fix: {self.fix}")
        return " — ".join(parts)


class DataError(FourdError, ValueError):
    """Bad or missing input data (cameras, images, masks, capture files)."""
