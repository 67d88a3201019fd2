"""Reading a rig's videos: one file per camera, its name (without suffix) the camera's name.

PyAV (FFmpeg) decodes; every frame's presentation time is read so that a variable frame rate is
noticed rather than silently turned into a time shift, and the audio track (if any) is decoded to
mono float samples for synchronisation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from fourd.errors import DataError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".m4v", ".webm")


@dataclass
class VideoInfo:
    name: str
    path: str
    fps: float
    frames: int
    width: int
    height: int
    vfr: bool
    """presentation times not evenly spaced (variable frame rate)."""
    has_audio: bool
    audio_rate: int
    rotation: int = 0
    """display rotation in degrees (phones store portrait video as landscape + this); frames are
    returned upright and width/height are the upright ones."""

    def to_dict(self) -> dict:
        return asdict(self)


def list_videos(folder: str | Path) -> dict[str, Path]:
    """Camera name → video file, for every video in ``folder`` (sorted by name). The name is the
    file's stem with what calibration files cannot hold as a key replaced ("cam.left (2).mp4" →
    "cam_left_2")."""
    from fourd.structures.cameras import file_safe_name

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("not a folder", folder, "give the folder holding one video per camera")
    vids = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file():
            n = file_safe_name(p.stem)
            if n in vids:
                raise DataError(f"{vids[n].name} and {p.name} both make camera '{n}'", folder,
                                "rename one of the videos")
            vids[n] = p
    if not vids:
        raise DataError("no videos found", folder,
                        f"put one video per camera in this folder ({', '.join(VIDEO_SUFFIXES)}); names become camera names")
    if len(vids) < 2:
        raise DataError("only one video found; a multi-view capture needs at least two cameras", folder,
                        "add the other cameras' videos")
    return vids


def _open(path: Path):
    import av

    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise DataError(f"cannot open video ({type(e).__name__}: {e})", path,
                        "check the file plays; re-encode it with ffmpeg -i IN -c:v libx264 OUT.mp4") from None


def probe(path: str | Path) -> VideoInfo:
    """Frame rate, frame count, size, VFR and audio of one video; decodes every packet's timestamp
    (not the pixels), so it is cheap and exact."""
    import av

    path = Path(path)
    with _open(path) as c:
        if not c.streams.video:
            raise DataError("no video stream", path, "give a video file per camera")
        vs = c.streams.video[0]
        tb = vs.time_base or Fraction(1, 1000)
        try:
            pts = sorted(p.pts for p in c.demux(vs) if p.pts is not None and p.size > 0)
        except (av.error.FFmpegError, ValueError) as e:
            raise DataError(f"video does not decode ({type(e).__name__}: {e})", path,
                            "the file is damaged or truncated; copy it again from the camera") from None
        if len(pts) == 0:
            raise DataError("video has no frames", path, "the file is empty or truncated; copy it again")
        t = np.asarray(pts, np.float64) * float(tb)
        dt = np.diff(t)
        if len(dt):
            step = float(np.median(dt))
            fps = 1.0 / step if step > 0 else float(vs.average_rate or 0)
            vfr = bool(step > 0 and np.abs(dt - step).max() > 0.25 * step)
        else:
            fps, vfr = float(vs.average_rate or 30.0), False
        a = c.streams.audio[0] if c.streams.audio else None
        rot = _rotation(path)
        w, h = int(vs.codec_context.width), int(vs.codec_context.height)
        if rot in (90, 270):
            w, h = h, w
        from fourd.structures.cameras import file_safe_name

        return VideoInfo(file_safe_name(path.stem), str(path), fps, len(pts), w, h, vfr, a is not None,
                         int(a.rate) if a is not None else 0, rot)


def _rotation(path: Path) -> int:
    """The display rotation of the first frame, 0/90/180/270 (counter-clockwise)."""
    import av

    with _open(path) as c:
        try:
            fr = next(c.decode(video=0))
        except (StopIteration, av.error.FFmpegError, ValueError):
            return 0
        return round(float(getattr(fr, "rotation", 0) or 0) / 90) % 4 * 90


def check_rig(infos: dict[str, VideoInfo], fps_tolerance: float = 0.01) -> float:
    """The rig's common frame rate; refuses variable frame rate and cameras that disagree."""
    for n, i in infos.items():
        if i.vfr:
            raise DataError("variable frame rate (frame times are not evenly spaced)", i.path,
                            "record at a fixed frame rate, or convert: ffmpeg -i IN -vf fps=30 -vsync cfr OUT.mp4")
    fps = {n: i.fps for n, i in infos.items()}
    # the rig's rate: the most common one (ties: the first camera's)
    rounded = [round(f, 2) for f in fps.values()]
    ref = max(dict.fromkeys(rounded), key=rounded.count)
    bad = [n for n, f in fps.items() if abs(f - ref) > fps_tolerance * ref]
    if bad:
        n = bad[0]
        raise DataError(f"frame rate {fps[n]:.3f} differs from the rig's {ref:.3f} fps", infos[n].path,
                        f"set every camera to the same frame rate, or convert: ffmpeg -i IN -vf fps={ref:g} OUT.mp4")
    return ref


def iter_frames(path: str | Path, start: int = 0, stop: int | None = None, stride: int = 1,
                scale: float = 1.0):
    """Yield (frame index, RGB uint8 [H, W, 3]) for frames start, start + stride, … < stop."""
    import av
    import cv2

    path = Path(path)
    with _open(path) as c:
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        i = -1
        try:
            for frame in c.decode(vs):
                i += 1
                if stop is not None and i >= stop:
                    break
                if i < start or (i - start) % stride:
                    continue
                img = frame.to_ndarray(format="rgb24")
                k = round(float(getattr(frame, "rotation", 0) or 0) / 90) % 4
                if k:  # upright, as players show it (the display matrix's counter-clockwise turn)
                    img = np.ascontiguousarray(np.rot90(img, k))
                if scale != 1.0:
                    h, w = img.shape[:2]
                    img = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))),
                                     interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
                yield i, img
        except (av.error.FFmpegError, ValueError) as e:
            raise DataError(f"video does not decode at frame {i} ({type(e).__name__}: {e})", path,
                            "the file is damaged or truncated; copy it again from the camera") from None


def read_audio(path: str | Path, rate: int = 16000) -> tuple[np.ndarray, float]:
    """Mono float32 samples at ``rate`` Hz and the time of the first sample relative to the first
    video frame (seconds). Raises DataError when the file has no audio."""
    import av

    path = Path(path)
    with _open(path) as c:
        if not c.streams.audio:
            raise DataError("no audio track", path, "sync visually (--sync flash) or give --offsets")
        a = c.streams.audio[0]
        v0 = 0.0
        if c.streams.video and c.streams.video[0].start_time is not None:
            v0 = float(c.streams.video[0].start_time * c.streams.video[0].time_base)
        res = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks, t0 = [], None
        for frame in c.decode(a):
            if t0 is None and frame.pts is not None:
                t0 = float(frame.pts * frame.time_base)
            for r in res.resample(frame):
                chunks.append(r.to_ndarray().reshape(-1))
        for r in res.resample(None):
            chunks.append(r.to_ndarray().reshape(-1))
    if not chunks:
        raise DataError("audio track is empty", path, "sync visually (--sync flash) or give --offsets")
    return np.concatenate(chunks).astype(np.float32), (t0 or 0.0) - v0


def write_video(path: str | Path, frames, fps: float, audio: np.ndarray | None = None, audio_rate: int = 16000,
                crf: int = 14) -> Path:
    """Encode RGB frames (an iterable of [H, W, 3] uint8) as H.264 MP4, with optional mono audio
    (float samples in [-1, 1]) as AAC. Used by the tests and the ingest benchmark to make rigs."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(tmp), "w", format="mp4") as out:
        vs = None
        if audio is not None:
            ast = out.add_stream("aac", rate=audio_rate, layout="mono")
        for img in frames:
            if vs is None:
                vs = out.add_stream("libx264", rate=rate)
                vs.height, vs.width = img.shape[:2]
                vs.pix_fmt = "yuv420p"
                vs.options = {"crf": str(crf), "preset": "veryfast"}
            for p in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                out.mux(p)
        if vs is None:
            raise ValueError(f"write_video: no frames for {path}")
        for p in vs.encode():
            out.mux(p)
        if audio is not None:
            samples = np.clip(np.asarray(audio, np.float32), -1, 1).reshape(1, -1)
            n = ast.codec_context.frame_size or 1024
            for k in range(0, samples.shape[1], n):
                fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, k:k + n]), format="flt", layout="mono")
                fr.sample_rate = audio_rate
                fr.pts = k
                for p in ast.encode(fr):
                    out.mux(p)
            for p in ast.encode():
                out.mux(p)
    tmp.replace(path)
    return path
