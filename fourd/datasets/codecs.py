"""Image codecs of captures: decode (RGB uint8, or a grey mask) with truncation checks, encode
JPEG/PNG, and read an image's size from its PNG or JPEG header without decoding the pixels.

Captures may hold JPEG, PNG, TIFF (machine-vision cameras write 16-bit ones), BMP or WebP files:
whatever OpenCV decodes; 16-bit images are read scaled to 8 bits. Floating-point (linear HDR)
images are refused with the fix, not read as if they were 8-bit."""

from __future__ import annotations

import numpy as np

from fourd.errors import DataError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
"""file suffixes read as images (lower case)."""


def check_encoded(data: bytes, where: str) -> None:
    """Catch truncated JPEG/PNG files that decoders would otherwise half-decode silently."""
    if len(data) < 8:
        raise DataError("image file is empty or truncated", where, "re-export or re-copy this image")
    if data[:2] == b"\xff\xd8" and data.rstrip(b"\x00")[-2:] != b"\xff\xd9":
        raise DataError("JPEG is truncated (no end-of-image marker)", where, "re-export or re-copy this image")
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-16:]:
        raise DataError("PNG is truncated (no IEND chunk)", where, "re-export or re-copy this image")
    if data[:2] == b"\xff\xd8":
        _check_jpeg_scan(data, where)


def _check_jpeg_scan(data: bytes, where: str) -> None:
    """The markers libjpeg warns about ("Corrupt JPEG data") and then decodes past as garbage rows:
    in a baseline JPEG's single scan every 0xFF byte must be stuffed (FF 00), a restart marker in
    sequence (FF D0..D7) or the end of image. Progressive files (several scans) are not checked."""
    i, sos = 2, -1
    while i + 4 <= len(data):  # walk the header segments to the start of scan
        if data[i] != 0xFF:
            raise DataError("JPEG header is corrupt (a segment does not start with a marker)", where,
                            "re-export or re-copy this image")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xC2, 0xC6, 0xCA, 0xCE):  # progressive: several scans with tables between them
            return
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker == 0xDA:
            sos = i + 2 + length
            break
        i += 2 + length
    if sos < 0:
        raise DataError("JPEG has no image data (no start-of-scan)", where, "re-export or re-copy this image")
    scan = np.frombuffer(data, np.uint8, offset=sos)
    ff = np.flatnonzero(scan[:-1] == 0xFF)
    nxt = scan[ff + 1]
    eoi = np.flatnonzero(nxt == 0xD9)
    end = int(ff[eoi[0]]) if len(eoi) else len(scan)
    inside = ff < end
    nxt = nxt[inside]
    ok = (nxt == 0x00) | ((nxt >= 0xD0) & (nxt <= 0xD7)) | (nxt == 0xFF)
    rst = nxt[(nxt >= 0xD0) & (nxt <= 0xD7)].astype(np.int64)
    if not ok.all() or (len(rst) and not (np.diff(np.concatenate([[0xD7], rst])) % 8 == 1).all()):
        raise DataError("JPEG data is corrupt (libjpeg would decode garbage rows)", where,
                        "re-export or re-copy this image")


def header_size(head: bytes) -> tuple[int, int] | None:
    """(H, W) from the first bytes of a PNG or JPEG (its header), or None when they do not hold it."""
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return (int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big")) if len(head) >= 24 else None
    i = 2
    while i + 9 < len(head):
        if head[i] != 0xFF:
            break
        marker, length = head[i + 1], int.from_bytes(head[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            return int.from_bytes(head[i + 5:i + 7], "big"), int.from_bytes(head[i + 7:i + 9], "big")
        i += 2 + length
    return None


def encoded_size(data: bytes, where: str) -> tuple[int, int]:
    """(H, W) of a PNG or JPEG from its header, without decoding the pixels."""
    check_encoded(data, where)
    got = header_size(data)
    if got is not None:
        return got
    img = decode_image(data, where)
    return img.shape[0], img.shape[1]


def decode_raw(data: bytes, where: str) -> np.ndarray:
    """The file's samples as stored (uint8 or uint16, BGR(A) channel order), checked for corruption."""
    import cv2

    check_encoded(data, where)
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise DataError("image cannot be decoded (corrupt or unsupported format)", where, "re-export it as JPEG or PNG")
    return arr


def sixteen_bit_white(files) -> tuple[int, int]:
    """(white level, largest sample) of a capture's 16-bit image files — ``files``: (bytes, where) of
    a few images per camera. The white level is 2^b − 1 for the fewest bits b of 8, 10, 12 and 14 that
    hold every colour sample — a machine-vision camera's 10- to 14-bit samples (or 8-bit ones) stored
    unscaled (read as 16-bit they would be near black) — else 65535 (also for 8-bit files, where it
    is not used)."""
    peak, sixteen = 0, False
    for data, where in files:
        raw = decode_raw(data, where)
        if raw.dtype != np.uint16:
            continue  # (an 8-bit file among them: its cameras read as they are)
        sixteen = True
        colour = raw if raw.ndim == 2 else raw[..., :1] if raw.shape[2] == 2 else raw[..., :3]  # not alpha
        peak = max(peak, int(colour.max()))
    for bits in (8, 10, 12, 14):
        if sixteen and peak < 1 << bits:
            return (1 << bits) - 1, peak
    return 65535, peak


def decode_image(data: bytes, where: str, grayscale: bool = False, white16=65535) -> np.ndarray:
    """An image file as uint8 RGB (``grayscale``: a mask's one channel). 16-bit samples are scaled
    so that ``white16`` (a number, or a function giving it, called only for a 16-bit file) reads 255
    (see :func:`sixteen_bit_white`); float (HDR) files are refused."""
    arr = decode_raw(data, where)
    if arr.dtype == np.uint16:
        if grayscale and arr.max() < 256:  # a mask's 0/255 or label ids (0/1, part ids) in a 16-bit file
            arr = arr.astype(np.uint8)
        else:
            white = white16() if callable(white16) else white16
            arr = np.minimum(arr.astype(np.float32) * (255.0 / white) + 0.5, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise DataError(f"the image holds {arr.dtype} samples (a linear / HDR export); fourd reads 8- and 16-bit "
                        "images", where, "export it as 8- or 16-bit PNG, TIFF or JPEG (sRGB)")
    if grayscale:  # masks: the alpha channel where it says something, else the max over the channels
        if arr.ndim == 2:
            return arr
        if arr.shape[2] in (2, 4) and arr[..., -1].min() < 255:
            return arr[..., -1]  # a cut-out (RGBA, grey + alpha): the matte is its alpha, not its colours
        return arr[..., :3].max(-1)
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, -1)
    if arr.shape[2] in (2, 4) and arr[..., -1].min() < 255:
        # a cut-out: PNG's colour is straight (not multiplied by alpha), and what lies under alpha 0
        # is anything. Taken as composited over black, as a camera's matte-and-plate pixel is
        # composited over its plate: each pixel holds its subject share's colour (what coverage
        # masks are un-mixed by), and nothing under alpha 0
        a = arr[..., -1:].astype(np.float32) / 255
        rgb = np.repeat(arr[..., :1], 3, -1) if arr.shape[2] == 2 else arr[..., 2::-1]
        return np.round(rgb * a).astype(np.uint8)
    return np.ascontiguousarray(arr[..., 2::-1])  # BGR(A) → RGB


def decode_upright(data: bytes, where: str, grayscale: bool = False) -> np.ndarray | None:
    """An 8-bit JPEG turned as its EXIF orientation tag says (a phone or camera held on its side
    stores the picture turned and tags how to show it; :func:`decode_image` reads the pixels as
    stored), as uint8 RGB or one channel; None when the file is no JPEG."""
    import cv2

    if data[:2] != b"\xff\xd8":
        return None
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR)
    if arr is None:
        raise DataError("image cannot be decoded (corrupt or unsupported format)", where, "re-export it as JPEG or PNG")
    return arr if grayscale else np.ascontiguousarray(arr[..., ::-1])


def encode_image(img: np.ndarray, ext: str, jpeg_quality: int = 95) -> bytes:
    import cv2

    if img.ndim == 3:
        img = img[..., ::-1]
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(img), params)
    if not ok:
        raise RuntimeError(f"cannot encode image as {ext}")
    return buf.tobytes()


def png_has_alpha(data: bytes) -> bool:
    """Whether a PNG's header declares an alpha channel (colour type 4: grey + alpha, 6: RGBA)."""
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 25 and data[25] in (4, 6)


def image_ext(data: bytes) -> str:
    """The suffix an encoded image's bytes call for (by their signature; JPEG when unknown)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return ".tif"
    if data[:2] == b"BM":
        return ".bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return ".jpg"
