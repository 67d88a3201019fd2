"""Per-camera time offsets of a rig's videos.

``offset[c]`` is the time (in frames of camera c's own video) at which a reference event happens;
frame j of the synchronized capture is then video frame ``j + offset[c] - min(offset)`` of camera c.
Three sources, tried in this order by ``--sync auto``:

- audio: every camera's sound track hears the same clap; the lag between two tracks is the peak of
  the cross-correlation of their onset envelopes (the positive change of a short-time energy), which
  ignores the level and colour differences of separate microphones;
- flash: a light flash (or any brightness spike common to all cameras): the frame with the largest
  rise of mean brightness in each video;
- a file the user gives: ``{"camera": offset_in_frames, ...}``.

Sub-frame offsets are rounded to the nearest frame; the residual (how far the rounding moved them)
and a confidence are reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fourd.console import log
from fourd.errors import DataError
from fourd.ingest.video import VideoInfo, iter_frames, read_audio

AUDIO_RATE = 16000
ENVELOPE_RATE = 2000  # Hz: 0.5 ms resolution, enough for a sub-frame lag at any video rate


@dataclass
class SyncResult:
    method: str
    offsets: dict[str, int]
    """event time in each camera's own frames, rounded."""
    seconds: dict[str, float] = field(default_factory=dict)
    """event time in each camera's own video, seconds (before rounding)."""
    residual_frames: dict[str, float] = field(default_factory=dict)
    confidence: dict[str, float] = field(default_factory=dict)

    def start(self, name: str) -> int:
        """First video frame of camera ``name`` in the synchronized capture."""
        return self.offsets[name] - min(self.offsets.values())

    def to_dict(self) -> dict:
        f = lambda d: {k: float(v) for k, v in d.items()}
        return {"method": self.method, "offsets": {k: int(v) for k, v in self.offsets.items()},
                "seconds": f(self.seconds), "residual_frames": f(self.residual_frames), "confidence": f(self.confidence)}


def onset_envelope(samples: np.ndarray, rate: int = AUDIO_RATE, out_rate: int = ENVELOPE_RATE) -> np.ndarray:
    """Positive change of log short-time energy, sampled at ``out_rate``: a click becomes one spike
    whatever the microphone's gain."""
    hop = rate // out_rate
    n = len(samples) // hop
    if n < 4:
        return np.zeros(max(n, 1), np.float32)
    x = samples[: n * hop].astype(np.float64)
    x = x - np.convolve(x, np.ones(8) / 8, mode="same")  # drop rumble / DC
    e = np.log1p(1e4 * (x.reshape(n, hop) ** 2).mean(1))
    d = np.maximum(np.diff(e, prepend=e[0]), 0)
    return (d - d.mean()).astype(np.float32)


def _lag(ref: np.ndarray, sig: np.ndarray) -> tuple[float, float]:
    """Lag (in samples, sub-sample by a parabola) that best aligns ``sig`` to ``ref`` — sig[t] ≈
    ref[t - lag] — and the confidence (normalized peak, 0–1)."""
    n = len(ref) + len(sig)
    size = 1 << (n - 1).bit_length()
    c = np.fft.irfft(np.fft.rfft(sig, size) * np.conj(np.fft.rfft(ref, size)), size)
    c = np.concatenate([c[-(len(ref) - 1):], c[: len(sig)]]) if len(ref) > 1 else c[: len(sig)]
    k = int(np.argmax(c))
    frac = 0.0
    if 0 < k < len(c) - 1:
        a, b, d = c[k - 1], c[k], c[k + 1]
        den = a - 2 * b + d
        frac = 0.5 * (a - d) / den if den != 0 else 0.0
    norm = float(np.linalg.norm(ref) * np.linalg.norm(sig)) or 1.0
    return k - (len(ref) - 1) + frac, float(c[k] / norm)


def audio_offsets(infos: dict[str, VideoInfo], fps: float) -> SyncResult:
    """Offsets from the sound tracks (every camera must have one)."""
    missing = [n for n, i in infos.items() if not i.has_audio]
    if missing:
        raise DataError(f"no audio track in {len(missing)} of {len(infos)} videos", infos[missing[0]].path,
                        "sync visually (--sync flash) or give --offsets FILE.json")
    env, starts = {}, {}
    for n, i in infos.items():
        s, t0 = read_audio(i.path, AUDIO_RATE)
        env[n], starts[n] = onset_envelope(s), t0
    # the reference is the track with the strongest single onset (a clap heard clearly)
    ref = max(env, key=lambda n: float(env[n].max() / (np.median(np.abs(env[n])) + 1e-6)))
    t_ref = float(np.argmax(env[ref])) / ENVELOPE_RATE + starts[ref]
    res = SyncResult("audio", {})
    for n in infos:
        lag, conf = _lag(env[ref], env[n]) if n != ref else (0.0, 1.0)
        t = t_ref + lag / ENVELOPE_RATE + (starts[n] - starts[ref])
        res.seconds[n] = t
        res.confidence[n] = conf
    return _rounded(res, fps)


def _rounded(res: SyncResult, fps: float) -> SyncResult:
    for n, t in res.seconds.items():
        f = t * fps
        res.offsets[n] = round(f)
        res.residual_frames[n] = float(f - round(f))
    return res


def brightness(path: str | Path, scale: float = 0.125, stop: int | None = None) -> np.ndarray:
    return np.array([img.mean() for _, img in iter_frames(path, 0, stop, 1, scale)], np.float64)


def flash_offsets(infos: dict[str, VideoInfo], fps: float, stop: int | None = None) -> SyncResult:
    """Offsets from a flash: per video, the frame where mean brightness rises most."""
    res = SyncResult("flash", {})
    for n, i in infos.items():
        b = brightness(i.path, stop=stop)
        if len(b) < 3:
            raise DataError("too few frames to find a flash", i.path, "give --offsets FILE.json")
        d = np.diff(b)
        k = int(np.argmax(d))
        spread = float(np.median(np.abs(d - np.median(d)))) + 1e-3
        res.seconds[n] = (k + 1) / fps
        res.confidence[n] = float(min(1.0, d[k] / (d[k] + 20 * spread)))
    return _rounded(res, fps)


def file_offsets(path: str | Path, names: list[str], fps: float) -> SyncResult:
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read offsets ({e})", path, 'write {"camera": frames, ...} as JSON') from None
    raw = raw.get("offsets", raw) if isinstance(raw, dict) else raw
    if not isinstance(raw, dict):
        raise DataError("offsets must be a JSON object", path, 'write {"camera": frames, ...}')
    missing = [n for n in names if n not in raw]
    if missing:
        raise DataError(f"no offset for camera '{missing[0]}'", path, "give an offset (in frames) for every video")
    res = SyncResult("file", {})
    for n in names:
        try:
            v = float(raw[n])
        except (TypeError, ValueError):
            raise DataError(f"offset of '{n}' is not a number: {raw[n]!r}", path, "give frames as numbers") from None
        res.seconds[n], res.confidence[n] = v / fps, 1.0
    return _rounded(res, fps)


def synchronize(infos: dict[str, VideoInfo], fps: float, method: str = "auto",
                offsets_file: str | Path | None = None, min_confidence: float = 0.3) -> SyncResult:
    """Offsets by ``method`` (auto | audio | flash | none), or from ``offsets_file``."""
    names = list(infos)
    if offsets_file is not None:
        res = file_offsets(offsets_file, names, fps)
    elif method == "none":
        res = SyncResult("none", {n: 0 for n in names}, {n: 0.0 for n in names}, {n: 0.0 for n in names},
                         {n: 1.0 for n in names})
    elif method == "audio" or (method == "auto" and all(i.has_audio for i in infos.values())):
        res = audio_offsets(infos, fps)
    elif method in ("flash", "auto"):
        res = flash_offsets(infos, fps)
    else:
        raise DataError(f"unknown sync method '{method}'", "--sync", "use auto, audio, flash or none")
    weak = [n for n, c in res.confidence.items() if c < min_confidence]
    for n in weak:
        log(f"[yellow]sync: low confidence {res.confidence[n]:.2f} for camera {n} ({res.method}); "
            f"check it or give --offsets[/]")
    return res
