"""Multi-view video captures: one :class:`MultiViewVideo` API over every layout.

Layouts: EasyVolcap (``easyvolcap.py``), DNA-Rendering SMC (``smc.py``), ZJU-MoCap's own
folders (``zju.py``), synthetic captures
rendered from animated glTF (``synth.py``, written in either layout) and the built-in demo
(``demo.py``). :func:`open_dataset` resolves ``--dataset NAME|PATH``.
"""

from __future__ import annotations

from pathlib import Path

from fourd.datasets.base import MultiViewVideo, View
from fourd.datasets.codecs import IMAGE_EXTS
from fourd.errors import DataError

NAMES = ("demo", "dna_rendering")


def detect_layout(path: Path) -> str | None:
    if path.is_file() and path.suffix == ".smc":
        return "smc"
    # ZJU-MoCap as shipped (a sequence converted in place by EasyVolcap's script has images/ beside
    # annots.npy, and is read as EasyVolcap)
    if (path / "annots.npy").is_file() and not (path / "images").is_dir():
        return "zju_mocap"
    if (path / "intri.yml").exists() or (path / "extri.yml").exists() or (path / "images").is_dir():
        return "easyvolcap"
    if (path / "main").is_dir() or (path / "annotations").is_dir():
        return "smc"
    return None


def open_dataset(name_or_path: str | Path, data_root: str | Path | None = None, **kwargs) -> MultiViewVideo:
    """``demo`` (generated on first use), ``dna_rendering`` (SMC files under ``data_root``,
    default data/dna_rendering), or a path whose layout is detected. ``kwargs`` go to the
    layout's reader (every layout takes ``cache_bytes``; SMC also ``sequence`` and ``groups``)."""
    from fourd.datasets.easyvolcap import EasyVolcapCapture
    from fourd.datasets.smc import SMCCapture

    s = str(name_or_path)
    if s == "demo":
        from fourd.datasets.demo import ensure_demo

        return EasyVolcapCapture(ensure_demo(data_root), **kwargs)
    if s == "dna_rendering":
        from fourd.locations import cache_dir

        root = Path(data_root or cache_dir() / "dna_rendering")
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
        return EasyVolcapCapture(path, **kwargs)
    if layout == "smc":
        return SMCCapture(path, **kwargs)
    if layout == "zju_mocap":
        from fourd.datasets.zju import ZjuMocapCapture

        return ZjuMocapCapture(path, **kwargs)
    raise DataError("cannot tell the capture layout", path, layout_fix(path))


VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm")


def layout_fix(path: Path) -> str:
    """What to do with a folder that is not a capture, from what it holds: videos (one per
    camera: ingest them), camera folders of images without a calibration, or neither."""
    expected = ("expected intri.yml/extri.yml + images/ (EasyVolcap), main/ + annotations/ (DNA-Rendering SMC) "
                "or annots.npy + camera folders (ZJU-MoCap)")
    if not path.is_dir():
        return expected
    files = [p for p in path.iterdir() if p.is_file()]
    if sum(p.suffix.lower() in VIDEO_SUFFIXES for p in files) >= 2:
        return (f"this is a folder of videos: make it a capture with `fourd data ingest {path} OUT` (sync, "
                "calibration, masks; README \"Your own cameras\"), then train OUT")
    cams = [d for d in path.iterdir() if d.is_dir() and any(p.suffix.lower() in IMAGE_EXTS for p in d.iterdir())]
    if len(cams) >= 2:
        return (f"{len(cams)} folders of images but no calibration: move them to images/<camera>/ and add "
                "intri.yml/extri.yml (OpenCV YAML, README \"Captures\"), or calibrate with `fourd data ingest "
                "--calibrate sfm` from the videos")
    return expected


def parse_frames(spec: str | None, available: list[int]) -> list[int] | None:
    """A frame selection — 'a:b' (half-open), 'a:b:s', or 'i,j,k' — as frame ids checked against
    the capture's ``available`` frames (None: all)."""
    from fourd.errors import FourdError

    if spec is None:
        return None
    try:
        if ":" in spec:
            parts = [int(x) if x else None for x in spec.split(":")]
            chosen = [f for f in range(*slice(*parts).indices(max(available) + 1)) if f in available]
        else:
            chosen = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise FourdError(f"cannot read frames '{spec}'", "--frames", "use a:b, a:b:step or a comma list") from None
    missing = [f for f in chosen if f not in available]
    if missing or not chosen:
        raise FourdError(f"frames {missing or spec} are not in the capture ({available[0]}..{available[-1]})",
                         "--frames", "pick frames the capture has")
    return chosen


def select_frames(video: MultiViewVideo, spec: str | None) -> MultiViewVideo:
    """``video`` limited to the frames ``spec`` picks (:func:`parse_frames`; None: all), in place."""
    chosen = parse_frames(spec, video.frames)
    if chosen is not None:
        video.frames = sorted(set(chosen))
    return video


__all__ = ["MultiViewVideo", "View", "open_dataset", "detect_layout", "parse_frames", "select_frames"]
