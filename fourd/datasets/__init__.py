"""Multi-view video captures: one :class:`MultiViewVideo` API over every layout.

Layouts: EasyVolcap (``easyvolcap.py``), DNA-Rendering SMC (``smc.py``), synthetic captures
rendered from animated glTF (``synth.py``, written in either layout) and the built-in demo
(``demo.py``). :func:`open_dataset` resolves ``--dataset NAME|PATH``.
"""

from __future__ import annotations

from pathlib import Path

from fourd.datasets.base import MultiViewVideo, View
from fourd.errors import DataError

NAMES = ("demo", "dna_rendering")


def detect_layout(path: Path) -> str | None:
    if path.is_file() and path.suffix == ".smc":
        return "smc"
    if (path / "intri.yml").exists() or (path / "extri.yml").exists() or (path / "images").is_dir():
        return "easyvolcap"
    if (path / "main").is_dir() or (path / "annotations").is_dir():
        return "smc"
    return None


def open_dataset(name_or_path: str | Path, data_root: str | Path | None = None, **kwargs) -> MultiViewVideo:
    """``demo`` (generated on first use), ``dna_rendering`` (SMC files under ``data_root``,
    default data/dna_rendering), or a path whose layout is detected."""
    from fourd.datasets.easyvolcap import EasyVolcapCapture
    from fourd.datasets.smc import SMCCapture

    s = str(name_or_path)
    if s == "demo":
        from fourd.datasets.demo import ensure_demo

        return EasyVolcapCapture(ensure_demo(data_root))
    if s == "dna_rendering":
        root = Path(data_root or Path(__file__).resolve().parents[2] / "data" / "dna_rendering")
        if not root.exists():
            raise DataError("DNA-Rendering data not found", root,
                            "download sequences from the DNA-Rendering project into main/ and annotations/ there, "
                            "pass --data-root, or make a small test one with `fourd data synth --layout smc`")
        return SMCCapture(root, **kwargs)
    path = Path(s)
    if not path.exists():
        raise DataError(f"unknown dataset '{s}' (not a built-in name nor an existing path)", path,
                        f"use one of {', '.join(NAMES)} or the path of a capture")
    layout = detect_layout(path)
    if layout == "easyvolcap":
        return EasyVolcapCapture(path)
    if layout == "smc":
        return SMCCapture(path, **kwargs)
    raise DataError("cannot tell the capture layout", path,
                    "expected intri.yml/extri.yml + images/ (EasyVolcap) or main/ + annotations/ (DNA-Rendering SMC)")


__all__ = ["MultiViewVideo", "View", "open_dataset", "detect_layout"]
