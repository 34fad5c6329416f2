"""Audio files in, 16 kHz mono float32 out: the one place where serkit decodes audio.

soundfile (libsndfile) decodes wav (8/16/24/32-bit PCM, float, double, u-law/a-law), flac, ogg/vorbis,
mp3, aiff, ...; soxr resamples any rate (its default "HQ" quality); several channels are mixed to mono by
their mean. A segment (`start`/`end` in seconds) is read by seeking, so a 3 s turn inside a 20 min session
file costs 3 s of decoding, not 20 min. A source is a path or a seekable binary file object (an upload held
in io.BytesIO); `name` says what errors call it.

    load_audio(source, start, end)            -> [S] float32 16 kHz mono (training, predict, service)
    read_mono(source, first, stop)            -> ([n] float32 mono native rate, sample rate): a span decoded
                                                 BLOCK_SAMPLES at a time, each block mixed down before the next
    read_frames(source, first, stop)          -> ([n, C] float32 native rate, sample rate): a raw span
    conform_samples(samples, sample_rate)     -> [S] float32 16 kHz mono: the checks and conversions that
                                                 every decoded span or in-memory array goes through

Memory: decoding holds the span's mono samples plus one block (1 MiB), however many channels the file has;
files with more than MAX_SAMPLES_PER_SECOND (channels x rate) are refused from their header, since decoding
them costs time in proportion while the mono result does not grow (a 36 KB Ogg/Vorbis file of 255 channels
at 48 kHz decodes 12 million samples per second of audio). The length comes from the header, unless the
header cannot know it (a FLAC may leave it at 0, "unknown", which libsndfile reports as 2**63 - 1 frames):
then, as for any header claiming more than MAX_TRUSTED_SECONDS, the frames are counted by decoding the file
block by block.

Handled: any sample rate (resampled), any channel count (mixed), any PCM/float subtype, float samples
beyond full scale (clipped to [-1, 1], as any conversion to PCM would), inputs shorter than an upstream's
receptive field (the upstreams pad them; see upstream/hf.py and upstream/fbank.py).
Refused with an AudioError naming the file and the reason: missing, not a regular file, not readable
(permission denied), not decodable (empty, corrupt, not audio), no samples, more channels x rate than
MAX_SAMPLES_PER_SECOND, truncated (fewer frames decode than the header promises), NaN/inf samples, a segment
outside the file, or too short to leave one sample at 16 kHz. File names need not be UTF-8 (a path is handed
to libsndfile as the file system's bytes, os.fsencode).
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

# Decoding reads this many samples (frames x channels) at a time into one float32 buffer (1 MiB), and mixes
# each block to mono before reading the next: a window of a 32-channel file costs its mono samples, not 32x.
BLOCK_SAMPLES = 1 << 18
# Most channels x sample rate decoded: 32 channels at 48 kHz, 8 at 192 kHz, 2 at 768 kHz. Speech corpora are
# 1-2 channels at 16-48 kHz; beyond this, decoding costs grow with no use for emotion recognition.
MAX_SAMPLES_PER_SECOND = 32 * 48000
# A header claiming more than a week of audio is not believed (libsndfile gives 2**63 - 1 frames for a length
# it does not know): the frames are counted by decoding. A real week-long file is counted, and kept.
MAX_TRUSTED_SECONDS = 7 * 24 * 3600

# What libsndfile and soundfile raise for a file they cannot open, seek or decode.
_DECODE_ERRORS = (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError)

Source = Union[str, os.PathLike, BinaryIO]


class AudioInfo(NamedTuple):
    """What the file header says (nothing is decoded, unless the header's length cannot be trusted)."""

    sample_rate: int
    frames: int
    channels: int
    duration: float  # seconds = frames / sample_rate


def audio_info(source: Source, name: str | None = None, max_seconds: float | None = None) -> AudioInfo:
    """(sample_rate, frames, channels, duration) of an audio file; AudioError if it is missing or unreadable,
    or has more channels x rate than MAX_SAMPLES_PER_SECOND. frames: from the header, or counted by decoding
    (block by block) when the header claims more than MAX_TRUSTED_SECONDS (an unknown length).
    max_seconds: for a caller that refuses longer files (a service): counting stops once past it, and frames
    is then only a lower bound, beyond max_seconds; a few KB of silent FLAC can hold days."""
    where = source_name(source, name)
    handle = _open_target(source, where)
    try:
        info = sf.info(handle)
    except _DECODE_ERRORS as e:
        raise AudioError(f"cannot decode audio ({_reason(e)})", where) from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError("holds no audio samples", where)
    sample_rate, frames, channels = int(info.samplerate), int(info.frames), int(info.channels)
    if channels * sample_rate > MAX_SAMPLES_PER_SECOND:
        raise AudioError(
            f"{channels} channels at {sample_rate} Hz are {channels * sample_rate:,} samples per second of audio; "
            f"serkit decodes at most {MAX_SAMPLES_PER_SECOND:,} (e.g. 32 channels at 48 kHz): mix it down to "
            "mono first (e.g. `ffmpeg -i IN -ac 1 OUT.wav`)", where)
    if frames > MAX_TRUSTED_SECONDS * sample_rate:
        limit = None if max_seconds is None else math.floor(max_seconds * sample_rate) + 1
        frames = _count_frames(source, where, channels, limit)
        if frames == 0:
            raise AudioError("holds no audio samples", where)
    return AudioInfo(sample_rate, frames, channels, frames / sample_rate)


def load_audio(source: Source, start: float = 0.0, end: float | None = None, target_sr: int = TARGET_SAMPLE_RATE,
               name: str | None = None) -> np.ndarray:
    """Samples [S] float32 at `target_sr`, mono, of `source` from `start` to `end` seconds (None: to the end)."""
    where = source_name(source, name)
    info = audio_info(source, where)
    first, stop = _frame_range(where, info, start, end)
    samples, sample_rate = read_mono(source, first, stop, where, info)
    return conform_samples(samples, sample_rate, target_sr, where)


def read_mono(
    source: Source, first: int = 0, stop: int | None = None, name: str | None = None, info: AudioInfo | None = None
) -> tuple[np.ndarray, int]:
    """Frames [first, stop) of `source` at its own rate, mixed to mono -> (samples [n] float32, sample rate).
    Only those frames are decoded, BLOCK_SAMPLES at a time; each block is checked for NaN/inf, clipped to
    [-1, 1] and mixed (as conform_samples does) before the next is read, so memory is n floats plus one block
    however many channels the file has. AudioError as for read_frames, or for NaN/inf samples."""
    return _read_span(source, first, stop, name, info, mono=True)


def read_frames(
    source: Source, first: int = 0, stop: int | None = None, name: str | None = None, info: AudioInfo | None = None
) -> tuple[np.ndarray, int]:
    """Frames [first, stop) of `source` at its own rate -> (samples [n, C] float32, sample rate); only those
    frames are decoded (all channels: n x C floats; read_mono keeps n). AudioError if none decode or clearly
    fewer than the header promises (truncated file)."""
    return _read_span(source, first, stop, name, info, mono=False)


def _read_span(source: Source, first: int, stop: int | None, name: str | None, info: AudioInfo | None,
               mono: bool) -> tuple[np.ndarray, int]:
    """read_mono (mono) or read_frames: frames [first, stop) decoded block by block."""
    where = source_name(source, name)
    info = info or audio_info(source, where)
    stop = info.frames if stop is None else min(stop, info.frames)
    pieces = []
    for block in _decode_blocks(source, where, info.channels, first, stop):
        if not mono:
            pieces.append(block.copy())  # the buffer is reused for the next block
            continue
        # Checked before mixing, which would smear a bad sample into the mean; clipped in place (the buffer
        # is reused), pointwise as conform_samples does, so a window gets exactly the whole file's samples.
        if not np.isfinite(block).all():
            raise AudioError("holds NaN or infinite samples", where)
        pieces.append(mix_to_mono(np.clip(block, -1.0, 1.0, out=block)))
    _check_decoded(where, info, first, stop, sum(len(piece) for piece in pieces))  # refuses an empty span
    samples = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
    return samples, info.sample_rate


def mix_to_mono(samples: np.ndarray) -> np.ndarray:
    """[n, C] float -> [n] float32, the mean of the channels. Summed one channel after another, so every frame
    gets the same arithmetic whatever n is: a file decoded block by block, a window of it and the same samples
    as an array all mix to the same floats."""
    total = samples[:, 0].astype(np.float32, copy=True)
    for channel in range(1, samples.shape[1]):
        total += samples[:, channel]
    total /= np.float32(samples.shape[1])
    return total


class _BlockReader(sf.SoundFile):
    """soundfile's SoundFile, minus the seek it makes after every read to "update the position" (libsndfile
    has already moved it). At the end of a FLAC stream of unknown length libsndfile cannot seek (its last
    frame is only found by decoding), so that seek fails the read that reaches the end. soundfile's other use
    of seekable(), sizing a read given no `out` buffer, does not arise: reads here always pass `out`.
    seek() itself still works."""

    def seekable(self) -> bool:
        return False


def _decode_blocks(source: Source, where: str, channels: int, first: int, stop: float):
    """Yield frames [first, stop) as blocks [k, C] float32, each a view of one reused buffer (copy to keep);
    stop may be math.inf (to the end of the file)."""
    if first >= stop:
        return
    block = np.empty((int(min(stop - first, max(1, BLOCK_SAMPLES // channels))), channels), np.float32)
    try:
        with _BlockReader(_open_target(source, where)) as f:
            if first:
                f.seek(first)
            position = first
            while position < stop:
                got = f.read(int(min(len(block), stop - position)), out=block)
                if got.shape[0] == 0:
                    return
                position += got.shape[0]
                yield got
    except _DECODE_ERRORS as e:
        raise AudioError(f"cannot decode audio ({_reason(e)})", where) from None


def _count_frames(source: Source, where: str, channels: int, limit: int | None = None) -> int:
    """Frames in the file, counted by decoding it block by block (for a header that cannot know them); once
    `limit` is reached, counting stops there (the file holds at least that many)."""
    frames = 0
    for block in _decode_blocks(source, where, channels, 0, math.inf):
        frames += len(block)
        if limit is not None and frames >= limit:
            break
    return frames


def _check_decoded(where: str, info: AudioInfo, first: int, stop: int, decoded: int) -> None:
    """AudioError if no frame of [first, stop) decoded, or clearly fewer than the header promises."""
    if decoded == 0:
        raise AudioError(f"holds no audio samples between {first / info.sample_rate:g} s and "
                         f"{stop / info.sample_rate:g} s", where)
    if decoded < (stop - first) - END_TOLERANCE_S * info.sample_rate:
        raise AudioError(f"truncated: the header promises {info.duration:.3f} s, but only "
                         f"{(first + decoded) / info.sample_rate:.3f} s decode", where)


def conform_samples(
    samples: np.ndarray, sample_rate: int, target_sr: int = TARGET_SAMPLE_RATE, name: str | None = None
) -> np.ndarray:
    """samples [S] or [S, C] (float in [-1, 1], or integer PCM) at `sample_rate` -> [S'] float32 mono at
    `target_sr`. AudioError (naming `name`) for NaN/inf samples or an input too short to resample."""
    where = name or "<array>"
    samples = given = np.asarray(samples)
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
    # Only when needed: clipping copies, and decoded spans (read_mono) arrive clipped already.
    if samples.min() < -1.0 or samples.max() > 1.0:
        samples = np.clip(samples, -1.0, 1.0)
    samples = samples.astype(np.float32, copy=False)
    mono = mix_to_mono(samples) if samples.shape[1] > 1 else samples[:, 0]
    if sample_rate != target_sr:
        mono = soxr.resample(mono, int(sample_rate), target_sr)
    if mono.shape[0] == 0:
        raise AudioError(f"too short: {samples.shape[0]} samples at {sample_rate} Hz are less than one sample "
                         f"at {target_sr} Hz", where)
    # float32 mono at the target rate, in range: nothing above copied it
    return mono.copy() if np.may_share_memory(mono, given) else mono


def _frame_range(where: str, info: AudioInfo, start: float, end: float | None) -> tuple[int, int]:
    """[first, stop) frames in the file's own rate for the segment start..end seconds."""
    if not math.isfinite(start) or start < 0 or start >= info.duration:
        raise AudioError(f"start {start} s is outside the file (0 to {info.duration:.3f} s)", where)
    if end is None:
        return round(start * info.sample_rate), info.frames
    if not math.isfinite(end) or end <= start or end > info.duration + END_TOLERANCE_S:
        raise AudioError(f"end {end} s is outside the file or not after start {start} s (file is "
                         f"{info.duration:.3f} s)", where)
    return round(start * info.sample_rate), min(round(end * info.sample_rate), info.frames)


def source_name(source, name: str | None = None, default: str | None = "<file object>") -> str | None:
    """What errors and results call an audio source: `name` if given, a path as written, a file object's
    `.name` when it is a path, else `default`."""
    if name is not None:
        return str(name)
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    file_name = getattr(source, "name", None)
    return str(file_name) if isinstance(file_name, (str, os.PathLike)) else default


def _open_target(source: Source, where: str):
    """What soundfile should open: a checked path as the file system's bytes (a name that is not UTF-8, legal on
    Linux, arrives as str with surrogate escapes, which soundfile's own encoding refuses), or the file object
    rewound to its start."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            exists, is_file = path.exists(), path.is_file()
        except (OSError, ValueError) as e:  # e.g. a name too long for the file system, a NUL byte
            raise AudioError(f"not a usable path ({e})", where) from None
        if not exists:
            raise AudioError("audio file not found", where)
        if not is_file:
            raise AudioError("not a file (a folder, device or pipe; expected a regular audio file)", where)
        try:  # libsndfile reports a file it may not open only as "System error."
            os.close(os.open(path, os.O_RDONLY))
        except PermissionError:
            raise AudioError("permission denied (this user may not read the file)", where) from None
        except OSError as e:
            raise AudioError(f"cannot open ({e.strerror or e})", where) from None
        return os.fsencode(path)
    try:
        source.seek(0)  # soundfile reads the header from the object's current position
    except (AttributeError, OSError, ValueError) as e:
        raise AudioError(f"not a seekable binary file object ({e})", where) from None
    return source


def _reason(error: Exception) -> str:
    # libsndfile's message already names the file; keep only its reason.
    return str(error).split(": ", 1)[-1] if str(error) else type(error).__name__
