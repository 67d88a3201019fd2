"""One API over synchronized multi-view video: (frame, camera) → image, mask, camera.

Subclasses only say where encoded bytes live (:meth:`MultiViewVideo.image_bytes`,
:meth:`MultiViewVideo.mask_bytes`); decoding, validation, caching, undistortion, cropping to
the mask and downscaling are shared here. Images are RGB uint8, masks bool, both top row first.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fourd.datasets.cache import ByteLRU
from fourd.datasets.codecs import decode_image
from fourd.errors import DataError
from fourd.structures.cameras import Cameras


def common_frames(frame_sets: dict[str, set[int]], where) -> list[int]:
    """The frames every camera has (only those are synchronized samples). A camera that lacks some
    is reported in one warning line each — frames are never dropped without a word — and a capture
    with no common frame left is refused."""
    if not frame_sets:
        return []
    union = set().union(*frame_sets.values())
    common = set.intersection(*frame_sets.values())
    _say_lacking({name: union - have for name, have in frame_sets.items() if union - have}, where,
                 f"those frames are left out for every camera ({len(common)} of {len(union)} kept)",
                 "left out for every camera alike")
    if union and not common:
        raise DataError("no frame is present for every camera", where,
                        "provide the same frame numbers for every camera (or remove the incomplete cameras)")
    return sorted(common)


def _shown(frames: list[int], n: int = 6) -> str:
    return ", ".join(map(str, frames[:n])) + (" …" if len(frames) > n else "")


SAID_CAMERAS = 4  # cameras lacking frames named one line each; the rest in one line


def _say_lacking(lacking: dict[str, set[int]], where, what: str, rest: str) -> None:
    """A warning per camera lacking frames (``what`` happens to them), the first SAID_CAMERAS
    named, the rest in one line (``rest``)."""
    from fourd.console import log

    for name, lack in list(lacking.items())[:SAID_CAMERAS]:
        log(f"[yellow]warning:[/] {where}: camera '{name}' lacks frame(s) {_shown(sorted(lack))} — {what}")
    if len(lacking) > SAID_CAMERAS:
        more = list(lacking)[SAID_CAMERAS:]
        log(f"[yellow]warning:[/] {where}: {len(more)} more cameras lack frames ({_shown(more, 8)}: "
            f"{sum(len(lacking[n]) for n in more)} views), {rest}")


def _say_dropped(where, dropped: list[int], kept: int, total: int) -> None:
    from fourd.console import log

    log(f"[yellow]warning:[/] {where}: frame(s) {_shown(dropped)} lack more than a quarter of the cameras; "
        f"those frames are left out for every camera ({kept} of {total} kept)")


def enough_cameras(have: int, n: int) -> bool:
    """Whether a frame ``have`` of a rig's ``n`` cameras have is kept: at most a quarter lack it,
    and two or more have it."""
    return n - have <= n // 4 and have >= 2


def frames_with_gaps(frame_sets: dict[str, set[int]], where) -> tuple[list[int], dict[str, frozenset[int]]]:
    """(frames, absent): the frames to train on and, per camera, those of them it has no image of —
    a camera that dropped frames, started late or stopped early sits out the frames it lacks (its
    views of them are skipped; the other cameras' are used) rather than cut every camera's sequence
    to the frames it has. A frame is kept while at most a quarter of the cameras lack it and at least
    two have it; a frame lacking more is left out for every camera. Each camera's gaps and the frames
    left out are said in a warning; a camera with no image at all (a copy that failed) is refused,
    as is a capture with no frame left."""
    if not frame_sets:
        return [], {}
    empty = [n for n, v in frame_sets.items() if not v]
    if empty and len(empty) < len(frame_sets):
        folder = Path(where) / empty[0]
        raise DataError(f"camera '{empty[0]}' has no image at all", folder if folder.is_dir() else where,
                        "copy its images again, or remove it from the calibration")
    union = set().union(*frame_sets.values())
    if all(len(v) == len(union) for v in frame_sets.values()):
        return sorted(union), {}  # every camera has every frame (the usual capture)
    n = len(frame_sets)
    lacking = {f: sum(f not in v for v in frame_sets.values()) for f in union}
    keep = sorted(f for f, k in lacking.items() if enough_cameras(n - k, n))
    dropped = sorted(union - set(keep))
    if dropped:
        _say_dropped(where, dropped, len(keep), len(union))
    if not keep:
        raise DataError("no frame is present for enough cameras (three quarters of them)", where,
                        "provide the same frame numbers for every camera (or remove the incomplete cameras)")
    absent = {name: frozenset(set(keep) - have) for name, have in frame_sets.items() if set(keep) - have}
    _say_lacking(absent, where, "its views of them are skipped (the other cameras' are used)",
                 "skipped alike — `fourd data info` counts them per camera")
    return keep, absent


INCOMPLETE_CHOICES = ("skip", "leave_out", "keep")


def plan_frames(frame_sets: dict[str, set[int]], cameras: Cameras, held_out: list[str] | None, where: Path,
                choice: str = "skip"):
    """How a capture whose cameras do not all have the same frames is read (fourd.json
    ``"incomplete_cameras"``): "skip" (default: :func:`frames_with_gaps`), "leave_out" (a camera
    lacking a long stretch is left out, :func:`leave_out_incomplete`, and the rest cut to the frames
    all have) or "keep" (every camera, cut to the frames all have). Returns (cameras, held_out,
    left_out, frames, absent); ``frame_sets`` loses the cameras left out."""
    if choice not in INCOMPLETE_CHOICES:
        raise DataError(f"incomplete_cameras '{choice}' is not a choice", where / "fourd.json",
                        'set "incomplete_cameras" to "skip", "leave_out" or "keep"')
    if choice == "skip":
        frames, absent = frames_with_gaps(frame_sets, where)
        return cameras, held_out, {}, frames, absent
    cameras, held_out, left = leave_out_incomplete(frame_sets, cameras, held_out, where, choice)
    return cameras, held_out, left, common_frames(frame_sets, where), {}


LEAVE_OUT_GAIN = 0.1  # a camera is left out when that keeps this share of the frames more for the others


def incomplete_cameras(frame_sets: dict[str, set[int]], keep: set[str] = frozenset()) -> dict[str, str]:
    """Cameras to leave out of a capture rather than cut its sequence to the frames they have — a
    camera that started late, stopped early or dropped a stretch of frames: name → reason. One at a
    time, the camera whose absence gives back the most frames is left out while that is more than
    a tenth of the sequence; at most a quarter of the cameras go, never those in ``keep`` nor one
    with no frame at all (a failed copy, refused as such by :func:`common_frames`)."""
    if len(frame_sets) < 4:
        return {}
    union = set().union(*frame_sets.values())
    if all(len(v) == len(union) for v in frame_sets.values()):
        return {}  # every camera has every frame (the usual capture: nothing to weigh)
    kept = dict(frame_sets)
    keep = set(keep) | {n for n, v in frame_sets.items() if not v}  # no frame at all: a copy that failed
    out: dict[str, str] = {}
    while len(out) < len(frame_sets) // 4:
        common = len(set.intersection(*kept.values()))
        gains = {n: len(set.intersection(*(v for m, v in kept.items() if m != n))) - common
                 for n in kept if n not in keep}
        if not gains:
            break
        name = max(gains, key=lambda n: (gains[n], -len(kept[n])))
        if gains[name] <= LEAVE_OUT_GAIN * len(union):
            break
        out[name] = (f"lacks {len(union) - len(kept[name])} of the {len(union)} frames; keeping it would cut "
                     f"every camera to {common} frames")
        del kept[name]
    return out


def leave_out_incomplete(frame_sets: dict[str, set[int]], cameras: Cameras, held_out: list[str] | None,
                         where: Path, choice: str = "leave_out"):
    """(cameras, held_out, left_out) with the :func:`incomplete_cameras` taken out of ``cameras``,
    ``held_out`` and ``frame_sets`` (in place), each said in a warning naming its folder; ``choice``
    "keep" (fourd.json ``"incomplete_cameras"``) leaves every camera in."""
    from fourd.console import log

    left = incomplete_cameras(frame_sets) if choice == "leave_out" else {}
    for n, why in left.items():
        log(f"[yellow]warning:[/] {where}: camera '{n}' {why} — left out of the capture "
            f'(fourd.json "incomplete_cameras": "skip", the default, keeps it and skips its views of the frames it lacks)')
        del frame_sets[n]
    if left:
        cameras = cameras[[n for n in cameras.names if n not in left]]
        held_out = [h for h in held_out if h not in left] if held_out else held_out
    return cameras, held_out, left


@dataclass
class View:
    """One (frame, camera) sample ready for training or display."""

    image: np.ndarray | None  # [H, W, 3] uint8 RGB (None when only the mask was asked for)
    mask: np.ndarray | None  # [H, W] bool
    camera: Cameras  # one camera matching image (after undistortion, crop and resize)
    frame: int
    name: str
    box: tuple[int, int, int, int]  # (x0, y0, w, h) of the crop in the full-resolution image
    # [H, W] float32 in [0, 1]: the stored mask as each pixel's coverage (an anti-aliased render's or a
    # matte's alpha); None when the mask is a hard cut (then ``mask`` says it all)
    coverage: np.ndarray | None = None


HARD_LEVELS = 8  # stored mask values within this many levels of 0 or 255 are a hard cut's


LABEL_MAX = 64  # a stored mask whose values all lie below this holds ids, not 0–255 coverage


def is_label_mask(mask: np.ndarray) -> bool:
    """Whether a stored uint8 mask is a label image rather than a 0–255 mask: 0 the background and
    small ids the subject — 1 where a tool writes a binary mask as 0/1, a human parser's part ids
    (ZJU-MoCap's ``mask_cihp``: 0–20 or so), an instance id. Every value is below LABEL_MAX: a 0–255
    mask of a frame the subject is in reaches full coverage somewhere. Read as any id = subject, as
    ZJU-MoCap's own readers do (``msk != 0``): :func:`label_mask_to_255`."""
    top = int(mask.max())
    return 0 < top < LABEL_MAX


def label_mask_to_255(mask: np.ndarray) -> np.ndarray:
    """A label image (:func:`is_label_mask`) as a 0/255 mask: every id the subject."""
    return np.where(mask > 0, np.uint8(255), np.uint8(0))


def looks_inverted(mask: np.ndarray) -> bool:
    """Whether a stored 0–255 mask holds the background in white (a matting tool's background
    matte, a mask saved inverted): three quarters of its border and half of the picture or more
    are white — a subject that surrounds the frame's edge — but not nearly all of it (a mask white
    everywhere says nothing, and is read as it is)."""
    border = np.concatenate([mask[0], mask[-1], mask[1:-1, 0], mask[1:-1, -1]]) > 127
    if float(border.mean()) < 0.75:  # (the border decides for nearly every mask: no pass over the picture)
        return False
    return 0.5 <= float((mask > 127).mean()) < 0.995


def axis_name(v: np.ndarray) -> str:
    """'+z' for a unit vector within 10° of a world axis, else its rounded components."""
    k = int(np.abs(v).argmax())
    if abs(float(v[k])) > np.cos(np.radians(10)):
        return ("+" if v[k] > 0 else "-") + "xyz"[k]
    return "(" + ", ".join(f"{float(c):.2f}" for c in v) + ")"


def same_scale(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether two (height, width) sizes are one picture at two scales: the width's ratio gives the
    height within one pixel of ``a`` (rounding of odd sides)."""
    r = b[1] / a[1]
    return abs(a[0] * r - b[0]) <= max(1.0, r)


RING_SHARE = 0.03  # below this share of a mask's in-between values in its middle range, they are JPEG ringing


def soft_levels(mask: np.ndarray) -> np.ndarray | None:
    """A stored uint8 mask as coverage levels (those within HARD_LEVELS of 0 or 255 snapped to
    them), or None when it is a hard cut: nothing left between, or what is left hugs the ends — a
    binary mask saved as JPEG rings by up to a few tens of levels beside its edge (quality 75: 760
    such pixels along a 400-pixel outline, all but 6 within 32 levels of 0 or 255), while a matte's
    or an anti-aliased render's edge spreads over the whole range (two thirds in 48–207)."""
    snapped = np.where(mask < HARD_LEVELS, 0, np.where(mask > 255 - HARD_LEVELS, 255, mask)).astype(np.uint8)
    between = (snapped > 0) & (snapped < 255)
    count = int(between.sum())
    if count == 0:
        return None
    middle = int(((snapped >= 48) & (snapped <= 207)).sum())
    return None if middle < RING_SHARE * count else snapped


def trim_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc ``malloc_trim``; nothing elsewhere).
    Freed image-sized arrays otherwise stay in the process: glibc raises its mmap threshold after
    large frees, so later arrays come from the heap, whose free space is kept — a bake of 80 frames
    grew from 0.9 to 1.5 GiB resident with nothing alive (flat at 0.8 GiB with a trim per frame)."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        pass


class MultiViewVideo(ABC):
    """A synchronized multi-view capture with a static camera rig.

    ``cameras`` may carry lens distortion; :meth:`view` undistorts by default.
    ``held_out`` names cameras kept for evaluation. ``fps`` is the capture frame rate.
    """

    layout: str = "?"
    # optional (frame, camera name, mask, undistorted camera) → mask applied by :meth:`view` (the
    # trainer installs the carve's repair of the masks it flagged: fourd.carve.repair)
    mask_repair = None
    _said_label_masks = False  # a label-image mask was said on load (once per capture)
    _said_mask_scale = False  # masks stored at another scale than their images were said on load
    _said_inverted = False  # masks with a white background were said on load
    _said_turned = False  # JPEGs stored turned (EXIF orientation) were said on load

    def __init__(self, path: str | Path, cameras: Cameras, frames: list[int], held_out: list[str] | None = None,
                 fps: float = 30.0, cache_bytes: int = 512 << 20, absent: dict[str, frozenset[int]] | None = None):
        self.path = Path(path)
        self.cameras = cameras
        self.frames = sorted(int(f) for f in frames)
        # per camera, the frames it has no image of (it dropped them: frames_with_gaps) — its views
        # of those frames are skipped by every job (``has``, ``cameras_at``)
        self.absent: dict[str, frozenset[int]] = {str(k): frozenset(v) for k, v in (absent or {}).items() if v}
        self.held_out = [str(h) for h in (held_out or [])]
        unknown = [h for h in self.held_out if h not in cameras.names]
        if unknown:
            raise DataError(f"held-out cameras {unknown} are not in the capture", self.path,
                            f"hold out cameras the capture has ({', '.join(cameras.names[:8])}…) in fourd.json")
        self.fps = float(fps)
        # cameras training leaves out, with the reason; split_cameras skips them
        self.excluded: dict[str, str] = {}
        # per camera, the frames its files are off by: reading its frame f gives its file f + shift
        # (the sequence's ends repeat the nearest frame) — a camera out of step with the rest, found
        # by the carve (fourd.train.run.handle_out_of_step)
        self.frame_shift: dict[str, int] = {}
        self._cache = ByteLRU(cache_bytes)
        if not self.frames:
            raise DataError("the capture has no frames", self.path, "check that the image folders are not empty")

    _white16: int | None = None

    def white16(self) -> int:
        """The sample value 16-bit images' white is (decided once for the capture, so that every frame
        and camera is scaled alike): 65535, or 255 / 1023 / 4095 / 16383 when no camera's image of the
        first, middle or last frame holds a sample beyond it — 8- to 14-bit camera data stored unscaled
        in 16-bit files. Said on load."""
        if self._white16 is None:
            from fourd.console import log
            from fourd.datasets.codecs import sixteen_bit_white

            picks = sorted({self.frames[0], self.frames[len(self.frames) // 2], self.frames[-1]})
            files = (self.image_bytes(f, n) for f in picks for n in self.cameras_at(f))
            white, peak = sixteen_bit_white(got for got in files if got is not None)
            if white != 65535:
                log(f"{self.path.name}: 16-bit images holding {white.bit_length()}-bit samples (the largest in "
                    f"the first, middle and last frames is {peak}): read with {white} as white")
            self._white16 = white
        return self._white16

    # ---------------------------------------------------------- subclasses
    def correct_colours(self, image: np.ndarray, cam: str) -> np.ndarray:
        """The decoded [H, W, 3] uint8 RGB image of camera ``cam`` with the capture's own colour
        calibration applied (none by default; DNA-Rendering files carry one per camera)."""
        return image

    @abstractmethod
    def image_bytes(self, frame: int, cam: str) -> tuple[bytes, str]:
        """Encoded image and a description of where it came from (a path, for errors)."""

    @abstractmethod
    def mask_bytes(self, frame: int, cam: str) -> tuple[bytes, str] | None:
        """Encoded mask (any channel count, foreground > 127) or None if the capture has none."""

    @property
    def has_masks(self) -> bool:
        return self.mask_bytes(self.frames[0], self.cameras.names[0]) is not None

    # ----------------------------------------------------------- shared
    @property
    def camera_names(self) -> list[str]:
        return list(self.cameras.names)

    @property
    def train_cameras(self) -> list[str]:
        return [n for n in self.cameras.names if n not in self.held_out]

    def __len__(self) -> int:
        return len(self.frames) * len(self.cameras)

    def empty_mask_cameras(self, names: list[str] | None = None, sample: int = 8) -> list[str]:
        """Cameras whose mask is empty in every one of ``sample`` evenly spread frames (a camera
        that sees nothing of the subject, or a matting run that failed for it). Said once; carving
        and training leave them out."""
        if not self.has_masks:
            return []
        cache = self.__dict__.setdefault("_empty_masks", {})
        names = list(names or self.camera_names)
        idx = np.linspace(0, len(self.frames) - 1, min(sample, len(self.frames))).round().astype(int)
        frames = [self.frames[i] for i in sorted(set(idx))]
        out = []
        for n in names:
            if n not in cache:
                mine = self.frames_of(n, frames)  # (none: a camera that dropped every frame sampled)
                cache[n] = bool(mine) and all(not self.mask(f, n).any() for f in mine)
                if cache[n]:
                    from fourd.console import log

                    log(f"[yellow]camera {n}: its mask is empty in all {len(mine)} frames checked — left out "
                        f"of carving and training (check its masks)[/]")
            if cache[n]:
                out.append(n)
        return out

    def sit_out(self, lacking: dict[str, list[int]], where) -> None:
        """More views to skip, found after the frames were settled (a mask missing): added to
        :attr:`absent`; a frame that more than a quarter of the cameras now lack is left out for
        every camera, said (the rule of :func:`frames_with_gaps`)."""
        from collections import Counter

        for n, fs in lacking.items():
            if fs:
                self.absent[n] = self.absent.get(n, frozenset()) | frozenset(int(f) for f in fs)
        bare = [c for c, v in self.absent.items() if set(self.frames) <= v]
        if bare:  # (a folder left empty: a copy or a matting run that failed)
            folder = Path(where) / bare[0]
            raise DataError(f"camera '{bare[0]}' has no usable view: no frame has both its image and its mask",
                            folder if folder.is_dir() else where, "add its masks, or remove the camera")
        count = Counter(f for v in self.absent.values() for f in v)
        n = len(self.cameras)
        drop = sorted(f for f, k in count.items() if not enough_cameras(n - k, n))
        if not drop:
            return
        keep = [f for f in self.frames if f not in set(drop)]
        if not keep:
            raise DataError("no frame is present for enough cameras (three quarters of them)", where,
                            "provide every camera's images and masks of the same frames")
        _say_dropped(where, drop, len(keep), len(self.frames))
        self.frames = keep
        self.absent = {c: v - set(drop) for c, v in self.absent.items() if v - set(drop)}

    def has(self, frame: int, cam: int | str) -> bool:
        """Whether camera ``cam`` has an image of ``frame`` (False where it dropped the frame)."""
        if not self.absent:
            return True
        _, name = self._cam(cam)
        return name not in self.absent or self._shifted(int(frame), name) not in self.absent[name]

    def cameras_at(self, frame: int, names: list[str] | None = None) -> list[str]:
        """``names`` (default: every camera) less those without an image of ``frame``."""
        names = self.camera_names if names is None else list(names)
        return names if not self.absent else [n for n in names if self.has(frame, n)]

    def frames_of(self, cam: int | str, frames: list[int] | None = None) -> list[int]:
        """``frames`` (default: the capture's) less those camera ``cam`` has no image of."""
        frames = self.frames if frames is None else list(frames)
        return frames if not self.absent else [f for f in frames if self.has(f, cam)]

    def _cam(self, cam: int | str) -> tuple[int, str]:
        if isinstance(cam, (int, np.integer)):
            return int(cam), self.cameras.names[int(cam)]
        try:
            return self.cameras.index(cam), str(cam)
        except KeyError as e:
            raise DataError(str(e.args[0]), self.path, f"use one of the capture's cameras ({', '.join(self.cameras.names[:8])}…)") from None

    def _check_frame(self, frame: int) -> int:
        frame = int(frame)
        if frame not in self.frames:
            raise DataError(f"frame {frame} is not in the capture (frames {self.frames[0]}..{self.frames[-1]})", self.path,
                            "use one of the capture's frames")
        return frame

    def _shifted(self, frame: int, name: str, shifts: dict[str, int] | None = None) -> int:
        """The frame of camera ``name``'s files that shows the rig's ``frame`` (``shifts``, by
        default :attr:`frame_shift`; the sequence's ends repeat the nearest frame)."""
        k = (self.frame_shift if shifts is None else shifts).get(name, 0)
        if not k:
            return frame
        return self.frames[min(max(self.frames.index(frame) + k, 0), len(self.frames) - 1)]

    def image(self, frame: int, cam: int | str) -> np.ndarray:
        """[H, W, 3] uint8 RGB, as stored (distorted if the lens is)."""
        return self._decoded("image", frame, cam)

    def release_images(self) -> None:
        """Forget the decoded images and masks held for re-use (a job that visits each frame once —
        a bake — calls this after each frame, so its memory does not fill the cache with frames it
        will not read again)."""
        self._cache.clear()
        trim_heap()

    def mask(self, frame: int, cam: int | str) -> np.ndarray | None:
        """[H, W] bool foreground mask (stored value > 127), or None when the capture has no masks."""
        return self._decoded("mask", frame, cam)

    def coverage(self, frame: int, cam: int | str) -> np.ndarray | None:
        """[H, W] float32 in [0, 1]: the stored mask read as each pixel's coverage — a matte's or an
        anti-aliased render's alpha — or None when the mask is a hard cut (every value within
        ``HARD_LEVELS`` of 0 or 255: a JPEG-stored binary mask rings by a few levels at its edge)
        or the capture has none. :meth:`mask` is this above one half."""
        i, name = self._cam(cam)
        frame = self._shifted(self._check_frame(frame), name)
        c = self._cache.get(("coverage", frame, name))
        if c is None:  # not decoded yet, or evicted before the mask was
            got = self._decode(("mask", frame, name), i)
            c = None if got is None else got[1]
        return None if c is None or c.size == 0 else c.astype(np.float32) / 255

    def _decoded(self, kind: str, frame: int, cam: int | str) -> np.ndarray | None:
        """An image or mask decoded (through the cache) and checked against the camera's size."""
        i, name = self._cam(cam)
        frame = self._shifted(self._check_frame(frame), name)
        if frame in self.absent.get(name, ()):
            raise DataError(f"camera '{name}' has no image of frame {frame} (or no mask: the capture lacks it)",
                            self.path, "use the cameras that have the frame (MultiViewVideo.cameras_at)")
        key = (kind, frame, name)
        arr = self._cache.get(key)
        if arr is None:
            got = self._decode(key, i)
            arr = None if got is None else got[0]
        return arr

    def _decode(self, key: tuple, i: int) -> tuple[np.ndarray, np.ndarray | None] | None:
        """Decode ``key`` = (kind, frame, camera name) and cache it: (array, None) for an image;
        for a mask (bool mask, coverage levels — an empty array when the mask is hard, see
        :meth:`coverage`), both cached. None when the capture has no such file."""
        kind, frame, name = key
        got = self.image_bytes(frame, name) if kind == "image" else self.mask_bytes(frame, name)
        if got is None:
            return None
        data, where = got
        arr = self.correct_colours(decode_image(data, where, white16=self.white16), name) if kind == "image" \
            else decode_image(data, where, grayscale=True)
        H, W = int(self.cameras.H[i]), int(self.cameras.W[i])
        if arr.shape[:2] == (W, H) and H != W:  # a camera held on its side: its JPEG's EXIF tag turns it
            from fourd.datasets.codecs import decode_upright

            upright = decode_upright(data, where, grayscale=kind == "mask")
            if upright is not None and upright.shape[:2] == (H, W):
                arr = self.correct_colours(upright, name) if kind == "image" else upright
                if not self._said_turned:
                    self._said_turned = True
                    from fourd.console import log

                    log(f"{where}: stored turned, upright by its EXIF orientation tag as the calibration's "
                        f"{W}×{H} says — read so (any file of the capture alike)")
        if kind == "mask" and arr.shape[:2] != (H, W) and same_scale(arr.shape[:2], (H, W)):
            arr = self._mask_to_size(arr, H, W, where)
        if arr.shape[:2] != (H, W):
            fix = ("fix H/W in the calibration or re-export the image at the calibrated size" if kind == "image"
                   else "re-export masks at the image resolution")
            raise DataError(f"{kind} is {arr.shape[1]}×{arr.shape[0]} but camera '{name}' is {W}×{H}", where, fix)
        levels = None
        if kind == "mask":
            if is_label_mask(arr):
                top = int(arr.max())
                arr = label_mask_to_255(arr)
                if not self._said_label_masks:
                    self._said_label_masks = True
                    from fourd.console import log

                    ids = "0 and 1" if top == 1 else f"only small ids (0–{top})"
                    log(f"{where}: the mask holds {ids} (a label image) — every nonzero id read as the subject")
            elif looks_inverted(arr):
                arr = 255 - arr
                if not self._said_inverted:
                    self._said_inverted = True
                    from fourd.console import log

                    log(f"{where}: white is the background in this mask (its border is white) — read "
                        f"inverted, as is any mask of the capture that looks so")
            levels = soft_levels(arr)
            levels = np.zeros(0, np.uint8) if levels is None else levels  # empty: known to be hard
            self._cache.put(("coverage", frame, name), levels)
            arr = arr > 127
        self._cache.put(key, arr)
        return arr, levels

    def _mask_to_size(self, mask: np.ndarray, H: int, W: int, where: str) -> np.ndarray:
        """A mask stored at another scale than its image (a matting tool run on downsized frames):
        resized to the image, as coverage (bilinear; a label image by its ids, nearest), said once."""
        import cv2

        if not self._said_mask_scale:
            self._said_mask_scale = True
            from fourd.console import log

            log(f"{where}: the mask is {mask.shape[1]}×{mask.shape[0]}, its image {W}×{H} — masks resized to "
                "their images (their edges are only as sharp as the stored size)")
        if is_label_mask(mask):
            return cv2.resize(mask, (W, H), interpolation=cv2.INTER_NEAREST)
        return cv2.resize(mask, (W, H), interpolation=cv2.INTER_AREA if mask.shape[1] > W else cv2.INTER_LINEAR)

    def backdrop_bytes(self, cam: str) -> tuple[bytes, str] | None:
        """An encoded image of the empty scene behind the subject as camera ``cam`` sees it (4K4D's
        ``bkgd/<cam>.jpg``), or None when the capture has none (the default)."""
        return None

    def has_backdrop(self, cam: str) -> bool:
        return self.backdrop_bytes(cam) is not None

    def backdrop(self, cam: int | str) -> np.ndarray | None:
        """[H, W, 3] uint8 RGB of :meth:`backdrop_bytes`, undistorted like :meth:`view`'s images and
        colour-corrected like them; None when the capture has none."""
        i, name = self._cam(cam)
        got = self.backdrop_bytes(name)
        if got is None:
            return None
        data, where = got
        img = self.correct_colours(decode_image(data, where, white16=self.white16), name)
        H, W = int(self.cameras.H[i]), int(self.cameras.W[i])
        if img.shape[:2] != (H, W):
            raise DataError(f"background image is {img.shape[1]}×{img.shape[0]} but camera '{name}' is {W}×{H}", where,
                            "re-export it at the camera's image size, or remove it")
        camera = self.cameras[i]
        return camera.undistort_image(img, 0) if camera.has_distortion else img

    def view(self, frame: int, cam: int | str, scale: float = 1.0, crop_to_mask: bool = False,
             undistort: bool = True, margin: int = 8, image: bool = True) -> View:
        """One sample: undistorted, optionally cropped to the mask's bounding box (+margin) and resized.
        ``image=False`` skips decoding the image (masks and camera only)."""
        import cv2

        i, name = self._cam(cam)
        camera = self.cameras[i]
        m, c = self.mask(frame, i), self.coverage(frame, i)
        img = self.image(frame, i) if image else np.zeros((int(camera.H[0]), int(camera.W[0]), 0), np.uint8)
        if undistort and camera.has_distortion:
            img = camera.undistort_image(img, 0) if image else img
            if m is not None:
                m = camera.undistort_image(m.astype(np.uint8) * 255, 0, cv2.INTER_LINEAR) > 127
            if c is not None:
                c = camera.undistort_image(c, 0, cv2.INTER_LINEAR)
            camera = camera.undistorted()
        if m is not None and self.mask_repair is not None and name not in self.frame_shift:
            # (the carve's repairs name the files as it read them: not those of a shifted camera)
            before, m = m, self.mask_repair(int(frame), name, m, camera)
            if c is not None and m is not before:  # a repaired pixel's coverage is the repair's
                c = np.where(m != before, m.astype(np.float32), c)
        H, W = img.shape[:2]
        box = (0, 0, W, H)
        if crop_to_mask and m is not None and m.any():
            # the box holds every pixel the subject covers at all: a matte's soft fringe (hair, motion
            # blur) can reach past the mask's half-coverage outline by more than the margin
            ys, xs = np.nonzero(m if c is None else (m | (c > 0)))
            x0, y0 = max(int(xs.min()) - margin, 0), max(int(ys.min()) - margin, 0)
            x1, y1 = min(int(xs.max()) + 1 + margin, W), min(int(ys.max()) + 1 + margin, H)
            box = (x0, y0, x1 - x0, y1 - y0)
            img, m = img[y0:y1, x0:x1], m[y0:y1, x0:x1]
            c = None if c is None else c[y0:y1, x0:x1]
            camera = camera.crop(x0, y0, x1 - x0, y1 - y0)
        if scale != 1.0:
            h, w = max(1, round(img.shape[0] * scale)), max(1, round(img.shape[1] * scale))
            if image:
                img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
            if m is not None:
                m = cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0.5
            if c is not None:
                c = cv2.resize(c, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
            camera = camera.resize(h, w)
        return View(np.ascontiguousarray(img) if image else None, m, camera, int(frame), name, box,
                    None if c is None else np.ascontiguousarray(np.clip(c, 0, 1)))

    # --------------------------------------------------------- summaries
    def info(self, coverage_frames: int = 3) -> dict:
        """Summary: layout, cameras, frames, size, held-out cameras and mean mask coverage."""
        Hs, Ws = self.cameras.H.tolist(), self.cameras.W.tolist()
        C = self.cameras.centers.double().cpu().numpy()
        cov = None
        if self.has_masks:
            fr = self.frames[:: max(1, len(self.frames) // coverage_frames)][:coverage_frames]
            cov = float(np.mean([self.mask(f, c).mean() for f in fr for c in self.cameras_at(f)]))
        return {
            "layout": self.layout, "path": str(self.path), "cameras": len(self.cameras), "frames": len(self.frames),
            "width": int(max(Ws)), "height": int(max(Hs)), "sizes_differ": len(set(zip(Hs, Ws))) > 1,
            "first_frame": self.frames[0], "last_frame": self.frames[-1], "fps": self.fps,
            "held_out": self.held_out, "mask_coverage": cov,
            # cameras left out on load (one lacking a long stretch of frames), with the reason
            "left_out": dict(getattr(self, "left_out", {})),
            # soft (0–255 coverage: a matte's or an anti-aliased render's alpha) in the first frame, any camera
            "soft_masks": self.has_masks and any(self.coverage(self.frames[0], c) is not None
                                                 for c in self.cameras_at(self.frames[0])),
            # per camera, the frames it has no image of (its views of them are skipped)
            "gaps": {n: len(v) for n, v in self.absent.items()},
            "distorted": self.cameras.has_distortion,
            "backdrops": sum(self.has_backdrop(n) for n in self.camera_names),
            # the world's conventions, as the rig shows them (the subject needs neither: fourd works
            # in any), to spot a calibration in unexpected units or axes
            "up": axis_name(self.cameras.up_direction()),
            "rig_radius": float(f"{np.median(np.linalg.norm(C - C.mean(0), axis=1)):.4g}") if len(C) > 1 else None,
        }


class InMemoryCapture(MultiViewVideo):
    """A capture held as encoded bytes in memory (synthesis writes through it)."""

    layout = "memory"

    def __init__(self, cameras: Cameras, frames: list[int], images: dict, masks: dict | None = None,
                 held_out: list[str] | None = None, fps: float = 30.0):
        self._images, self._masks = images, masks
        super().__init__("<memory>", cameras, frames, held_out, fps)

    def image_bytes(self, frame, cam):
        return self._images[(frame, cam)], f"<memory frame {frame} camera {cam}>"

    def mask_bytes(self, frame, cam):
        if self._masks is None:
            return None
        return self._masks[(frame, cam)], f"<memory mask frame {frame} camera {cam}>"
