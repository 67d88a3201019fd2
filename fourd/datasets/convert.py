"""``fourd data convert``: a capture rewritten in another layout, images and masks copied as
they are encoded. The output is never the input (nor a file of it)."""

from __future__ import annotations

from pathlib import Path

from fourd.console import log, progress
from fourd.datasets import open_dataset
from fourd.errors import FourdError
from fourd.io import check_output


def convert(src: str | Path, out: str | Path, to: str = "easyvolcap", sequence: str = "fourd_0000",
            data_root: str | Path | None = None) -> Path:
    out = Path(out)
    video = open_dataset(src, data_root)
    source = Path(video.path)
    inputs = [source] + ([source.parent, source.parent.parent] if source.is_file() else [])
    check_output(out, "folder", tuple(inputs))
    if source.is_dir() and out.exists() and out.resolve() in source.resolve().parents:
        raise FourdError("the output folder holds the input capture; it would be overwritten", out,
                         "write to a new folder")
    if to == "easyvolcap":
        from fourd.datasets.easyvolcap import write_easyvolcap

        with progress("converting frames", len(video.frames)) as advance:
            write_easyvolcap(video, out, advance)
    elif to == "smc":
        from fourd.datasets.smc import write_smc

        with progress("converting cameras", len(video.cameras)) as advance:
            write_smc(video, out, sequence, advance)
    else:
        raise FourdError(f"unknown layout '{to}'", "--to", "use easyvolcap or smc")
    log(f"wrote {to} capture → {out}")
    return out
