"""Audio files in, 16 kHz mono float32 out: the one place where serkit decodes audio.

soundfile (libsndfile) decodes wav (8/16/24/32-bit PCM, float, double, u-law/a-law), flac, ogg/vorbis,
mp3, aiff, ...; soxr resamples any rate (its default "HQ" quality); several channels are mixed to mono by
their mean. A segment (`start`/`end` in seconds) is read by seeking, so a 3 s turn inside a 20 min session
file costs 3 s of decoding, not 20 min. A source is a path or a seekable binary file object (an upload held
in io.BytesIO); `name` says what errors call it.

    load_audio(source, start, end)            -> [S] float32 16 kHz mono (training, predict, service)
    read_frames(source, first, stop)          -> ([n, C] float32 native rate, sample rate): a raw span
    conform_samples(samples, sample_rate)     -> [S] float32 16 kHz mono: the checks and conversions that
                                                 every decoded span or in-memory array goes through

Handled: any sample rate (resampled), any channel count (mixed), any PCM/float subtype, float samples
beyond full scale (clipped to [-1, 1], as any conversion to PCM would), inputs shorter than an upstream's
receptive field (the upstreams pad them; see upstream/hf.py and upstream/fbank.py).
Refused with an AudioError naming the file and the reason: missing, not a file, not decodable (empty,
corrupt, not audio), no samples, truncated (fewer frames decode than the header promises), NaN/inf samples,
a segment outside the file, or too short to leave one sample at 16 kHz.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import BinaryIO, NamedTuple, Union

import numpy as np
import soundfile as sf
import soxr

from ..errors import AudioError

TARGET_SAMPLE_RATE = 16000

# Corpus timestamps are rounded (IEMOCAP gives 4 decimals, hand-made manifests fewer), so an `end` a hair
# past the file's last sample is clamped rather than refused; anything further out is a real mistake.
# The same slack is allowed between the frames a header promises and those that decode (encoder padding).
END_TOLERANCE_S = 0.05

# What libsndfile and soundfile raise for a file they cannot open, seek or decode.
_DECODE_ERRORS = (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError)

Source = Union[str, os.PathLike, BinaryIO]


class AudioInfo(NamedTuple):
    """What the file header says (nothing is decoded)."""

    sample_rate: int
    frames: int
    channels: int
    duration: float  # seconds = frames / sample_rate


def audio_info(source: Source, name: str | None = None) -> AudioInfo:
    """(sample_rate, frames, channels, duration) of an audio file; AudioError if it is missing or unreadable."""
    where = _name(source, name)
    handle = _open_target(source, where)
    try:
        info = sf.info(handle)
    except _DECODE_ERRORS as e:
        raise AudioError(f"cannot decode audio ({_reason(e)})", where) from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError("holds no audio samples", where)
    return AudioInfo(int(info.samplerate), int(info.frames), int(info.channels), info.frames / info.samplerate)


def load_audio(
    source: Source,
    start: float = 0.0,
    end: float | None = None,
    target_sr: int = TARGET_SAMPLE_RATE,
    name: str | None = None,
) -> np.ndarray:
    """Samples [S] float32 at `target_sr`, mono, of `source` from `start` to `end` seconds (None: to the end)."""
    where = _name(source, name)
    info = audio_info(source, where)
    first, stop = _frame_range(where, info, start, end)
    samples, sample_rate = read_frames(source, first, stop, where, info)
    return conform_samples(samples, sample_rate, target_sr, where)


def read_frames(
    source: Source, first: int = 0, stop: int | None = None, name: str | None = None, info: AudioInfo | None = None
) -> tuple[np.ndarray, int]:
    """Frames [first, stop) of `source` at its own rate -> (samples [n, C] float32, sample rate); only those
    frames are decoded. AudioError if none decode or clearly fewer than the header promises (truncated file)."""
    where = _name(source, name)
    info = info or audio_info(source, where)
    stop = info.frames if stop is None else min(stop, info.frames)
    try:
        samples = sf.read(_open_target(source, where), start=first, stop=stop, dtype="float32", always_2d=True)[0]
    except _DECODE_ERRORS as e:
        raise AudioError(f"cannot decode audio ({_reason(e)})", where) from None
    if samples.shape[0] == 0:
        raise AudioError(f"holds no audio samples between {first / info.sample_rate:g} s and "
                         f"{stop / info.sample_rate:g} s", where)
    if samples.shape[0] < (stop - first) - END_TOLERANCE_S * info.sample_rate:
        raise AudioError(f"truncated: the header promises {info.duration:.3f} s, but only "
                         f"{(first + samples.shape[0]) / info.sample_rate:.3f} s decode", where)
    return samples, info.sample_rate


def conform_samples(
    samples: np.ndarray, sample_rate: int, target_sr: int = TARGET_SAMPLE_RATE, name: str | None = None
) -> np.ndarray:
    """samples [S] or [S, C] (float in [-1, 1], or integer PCM) at `sample_rate` -> [S'] float32 mono at
    `target_sr`. AudioError (naming `name`) for NaN/inf samples or an input too short to resample."""
    where = name or "<array>"
    samples = np.asarray(samples)
    if samples.ndim == 1:
        samples = samples[:, None]
    if samples.ndim != 2 or samples.shape[0] == 0:
        raise AudioError(f"expected samples [S] or [S, channels] with S > 0, got shape {samples.shape}", where)
    if not (isinstance(sample_rate, (int, np.integer)) and sample_rate > 0):
        raise AudioError(f"sample rate must be a positive integer (Hz), got {sample_rate!r}", where)
    if np.issubdtype(samples.dtype, np.integer):
        info = np.iinfo(samples.dtype)
        middle = (int(info.max) + int(info.min) + 1) / 2  # 0 for signed PCM, 128 for unsigned 8-bit
        samples = (samples.astype(np.float64) - middle) / (int(info.max) + 1 - middle)
    elif not np.issubdtype(samples.dtype, np.floating):
        raise AudioError(f"samples must be float or integer PCM, got dtype {samples.dtype}", where)
    # Checked before resampling: the filter would smear one bad sample over its neighbours.
    if not np.isfinite(samples).all():
        raise AudioError("holds NaN or infinite samples", where)
    # Float files may exceed full scale; clip as any conversion to PCM would (pointwise, so a window of a
    # file gets the same samples as the whole file), keeping huge values from overflowing the features.
    samples = np.clip(samples, -1.0, 1.0).astype(np.float32, copy=False)
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if sample_rate != target_sr:
        mono = soxr.resample(mono, int(sample_rate), target_sr)
    if mono.shape[0] == 0:
        raise AudioError(f"too short: {samples.shape[0]} samples at {sample_rate} Hz are less than one sample "
                         f"at {target_sr} Hz", where)
    return np.ascontiguousarray(mono, dtype=np.float32)


def _frame_range(where: str, info: AudioInfo, start: float, end: float | None) -> tuple[int, int]:
    """[first, stop) frames in the file's own rate for the segment start..end seconds."""
    if not math.isfinite(start) or start < 0 or start >= info.duration:
        raise AudioError(f"start {start} s is outside the file (0 to {info.duration:.3f} s)", where)
    if end is None:
        return round(start * info.sample_rate), info.frames
    if not math.isfinite(end) or end <= start or end > info.duration + END_TOLERANCE_S:
        raise AudioError(
            f"end {end} s is outside the file or not after start {start} s (file is {info.duration:.3f} s)", where
        )
    return round(start * info.sample_rate), min(round(end * info.sample_rate), info.frames)


def _name(source: Source, name: str | None) -> str:
    if name is not None:
        return str(name)
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    file_name = getattr(source, "name", None)
    return str(file_name) if isinstance(file_name, (str, os.PathLike)) else "<file object>"


def _open_target(source: Source, where: str):
    """What soundfile should open: a checked path as str, or the file object rewound to its start."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            exists, is_file = path.exists(), path.is_file()
        except (OSError, ValueError) as e:  # e.g. a name too long for the file system, a NUL byte
            raise AudioError(f"not a usable path ({e})", where) from None
        if not exists:
            raise AudioError("audio file not found", where)
        if not is_file:
            raise AudioError("not a file (expected an audio file)", where)
        return str(path)
    try:
        source.seek(0)  # soundfile reads the header from the object's current position
    except (AttributeError, OSError, ValueError) as e:
        raise AudioError(f"not a seekable binary file object ({e})", where) from None
    return source


def _reason(error: Exception) -> str:
    # libsndfile's message already names the file; keep only its reason.
    return str(error).split(": ", 1)[-1] if str(error) else type(error).__name__
