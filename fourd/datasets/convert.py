"""``fourd data convert``: a capture rewritten in another layout, images and masks copied as
they are encoded. The output is never the input (nor a file of it)."""

from __future__ import annotations

from pathlib import Path

from fourd.console import log, progress
from fourd.datasets import open_dataset
from fourd.errors import FourdError
from fourd.io import check_output


def verify_encoded(video) -> None:
    """Before copying: every image and mask is a complete JPEG/PNG (no truncation, no corrupt scan)
    of its camera's size (a mask may be stored at another scale: read resized) — read from the
    header, without decoding the pixels."""
    from fourd.datasets.base import same_scale
    from fourd.datasets.codecs import decode_upright, encoded_size

    names = video.camera_names
    with progress("checking images", len(video.frames)) as advance:
        for f in video.frames:
            for i, n in enumerate(names):
                if not video.has(f, n):
                    continue
                want = (int(video.cameras.H[i]), int(video.cameras.W[i]))
                for kind, got in (("image", video.image_bytes(f, n)), ("mask", video.mask_bytes(f, n))):
                    if got is None:
                        continue
                    data, where = got
                    size = encoded_size(data, where)
                    if size == want[::-1] and size != want:  # stored turned: upright by its EXIF tag?
                        up = decode_upright(data, where, grayscale=kind == "mask")
                        size = want if up is not None and up.shape[:2] == want else size
                    if size != want and not (kind == "mask" and same_scale(size, want)):
                        h, w = size
                        raise FourdError(f"is {w}×{h} but camera '{n}' is {want[1]}×{want[0]}", where,
                                         "re-export it at the calibrated size")
            advance()


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
    verify_encoded(video)
    if to == "easyvolcap":
        from fourd.datasets.easyvolcap import write_easyvolcap

        with progress("converting frames", len(video.frames)) as advance:
            write_easyvolcap(video, out, advance)
    elif to == "smc":
        from fourd.datasets.smc import write_smc

        if any(video.has_backdrop(n) for n in video.camera_names):
            log("[yellow]the capture's background pictures (bkgd/) are not carried over: the SMC layout has no place "
                "for them (training will measure the plates from the frames)[/]")

        with progress("converting cameras", len(video.cameras)) as advance:
            write_smc(video, out, sequence, advance)
    else:
        raise FourdError(f"unknown layout '{to}'", "--to", "use easyvolcap or smc")
    log(f"wrote {to} capture → {out}")
    return out
