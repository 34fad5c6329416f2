"""Audio files in, 16 kHz mono float32 out.

soundfile (libsndfile) decodes wav, flac, ogg/vorbis, mp3, aiff, ...; soxr resamples (its default "HQ"
quality); several channels are mixed to mono by their mean. A segment (`start`/`end` in seconds) is read by
seeking, so a 3 s turn inside a 20 min session file costs 3 s of decoding, not 20 min.

Every failure is an AudioError naming the file and the reason: missing, not decodable, no samples,
NaN/inf samples, or a segment outside the file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf
import soxr

from ..errors import AudioError

TARGET_SAMPLE_RATE = 16000

# Corpus timestamps are rounded (IEMOCAP gives 4 decimals, hand-made manifests fewer), so an `end` a hair
# past the file's last sample is clamped rather than refused; anything further out is a real mistake.
END_TOLERANCE_S = 0.05


class AudioInfo(NamedTuple):
    """What the file header says (nothing is decoded)."""

    sample_rate: int
    frames: int
    channels: int
    duration: float  # seconds = frames / sample_rate


def audio_info(path: str | Path) -> AudioInfo:
    """(sample_rate, frames, channels, duration) of an audio file; AudioError if it is missing or unreadable."""
    path = _existing_file(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"cannot decode audio ({_reason(e)})", path) from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError("holds no audio samples", path)
    return AudioInfo(int(info.samplerate), int(info.frames), int(info.channels), info.frames / info.samplerate)


def load_audio(
    path: str | Path, start: float = 0.0, end: float | None = None, target_sr: int = TARGET_SAMPLE_RATE
) -> np.ndarray:
    """Samples [S] float32 at `target_sr`, mono, of `path` from `start` to `end` seconds (None: to the end)."""
    info = audio_info(path)
    first, stop = _frame_range(path, info, start, end)
    try:
        samples = sf.read(str(path), start=first, stop=stop, dtype="float32", always_2d=True)[0]  # [S, C]
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"cannot decode audio ({_reason(e)})", path) from None
    if samples.shape[0] == 0:
        raise AudioError(f"holds no audio samples between {start} s and {end} s", path)
    # Checked before resampling: the filter would smear one bad sample over its neighbours.
    if not np.isfinite(samples).all():
        raise AudioError("holds NaN or infinite samples", path)
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if info.sample_rate != target_sr:
        mono = soxr.resample(mono, info.sample_rate, target_sr)
    return np.ascontiguousarray(mono, dtype=np.float32)


def _frame_range(path: str | Path, info: AudioInfo, start: float, end: float | None) -> tuple[int, int]:
    """[first, stop) frames in the file's own rate for the segment start..end seconds."""
    if not math.isfinite(start) or start < 0 or start >= info.duration:
        raise AudioError(f"start {start} s is outside the file (0 to {info.duration:.3f} s)", path)
    if end is None:
        return round(start * info.sample_rate), info.frames
    if not math.isfinite(end) or end <= start or end > info.duration + END_TOLERANCE_S:
        raise AudioError(
            f"end {end} s is outside the file or not after start {start} s (file is {info.duration:.3f} s)", path
        )
    return round(start * info.sample_rate), min(round(end * info.sample_rate), info.frames)


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise AudioError("audio file not found", path)
    if not path.is_file():
        raise AudioError("not a file (expected an audio file)", path)
    return path


def _reason(error: Exception) -> str:
    # libsndfile's message already names the file; keep only its reason.
    return str(error).split(": ", 1)[-1] if str(error) else type(error).__name__
