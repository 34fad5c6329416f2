"""Inputs to predict on, as audio sources read piece by piece: files (any format soundfile reads, any rate,
any channel count), binary file objects (e.g. an upload held in io.BytesIO) and in-memory arrays.

A source knows its native sample rate and length from the header alone (or, for a header that cannot know
it, from counting the frames: data.audio.audio_info); `read_span(first, stop)` decodes only frames
[first, stop) (data.audio.read_mono: soundfile seek, then blocks mixed to mono as they decode), then conforms
that span alone to 16 kHz (data.audio.conform_samples: the same checks, mixing and resampling as training's
load_audio). So a window of a two-hour file costs a window of mono samples however many channels it has, a
file predicted whole gets exactly load_audio's samples, and an array and a file holding the same samples
give the same windows.

>>> import numpy as np
>>> source = ArraySource(np.zeros((44100, 2), dtype=np.float32), sample_rate=44100)
>>> source.frames, source.duration, read_span(source, 0, source.frames).shape
(44100, 1.0, (16000,))
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any, NamedTuple, Union

import numpy as np

from ..data.audio import AudioInfo, audio_info, conform_samples, read_mono
from ..errors import AudioError, DataError

AudioInput = Union[str, os.PathLike, io.IOBase, np.ndarray, Any]  # Any: a torch.Tensor (torch stays optional here)


class Region(NamedTuple):
    """Seconds [start, end) of an input, and who speaks there when known."""

    start: float
    end: float
    speaker: str | None = None


@dataclass
class FileSource:
    """An audio file (path) or a seekable binary file object. `name` is what errors and results show."""

    file: str | os.PathLike | io.IOBase
    info: AudioInfo
    name: str | None

    @classmethod
    def open(cls, file: str | os.PathLike | io.IOBase) -> "FileSource":
        """Read the header only; AudioError (naming the file) if it is missing, undecodable or empty."""
        if isinstance(file, (str, os.PathLike)):
            name = str(file)
        else:
            name = getattr(file, "name", None)
            name = str(name) if isinstance(name, (str, os.PathLike)) else None
        return cls(file, audio_info(file, name), name)

    @property
    def sample_rate(self) -> int:
        return self.info.sample_rate

    @property
    def frames(self) -> int:
        return self.info.frames

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    def read(self, first: int, stop: int) -> np.ndarray:
        """Frames [first, stop) at the native rate -> [stop - first] float32 mono; only those are decoded, and
        mixed down block by block (data.audio.read_mono)."""
        return read_mono(self.file, first, stop, self.name, self.info)[0]


@dataclass
class ArraySource:
    """Samples held in memory: [S] or [S, channels], float (in [-1, 1]) or integer PCM."""

    samples: np.ndarray  # [S, C]
    sample_rate: int
    name: str | None = None

    def __init__(self, samples, sample_rate: int | None, name: str | None = None):
        if sample_rate is None or int(sample_rate) <= 0:
            raise DataError(f"an array input needs its sample_rate (Hz), got {sample_rate!r}", name)
        self.samples = as_frames(samples, name)
        self.sample_rate = int(sample_rate)
        self.name = name

    @property
    def frames(self) -> int:
        return self.samples.shape[0]

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    def read(self, first: int, stop: int) -> np.ndarray:
        return self.samples[first:stop]


AudioSource = Union[FileSource, ArraySource]


def as_frames(samples, name: str | None = None) -> np.ndarray:
    """numpy / torch [S] or [S, C] -> [S, C] (dtype kept: conform_samples scales integer PCM per span)."""
    if hasattr(samples, "detach"):  # a torch.Tensor, without importing torch here
        samples = samples.detach().cpu().numpy()
    array = np.asarray(samples)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise DataError(f"an array input must be [S] or [S, channels], got shape {array.shape}", name)
    if array.shape[0] == 0:
        raise AudioError("holds no audio samples", name or "<array>")
    if array.shape[1] > array.shape[0]:
        raise DataError(
            f"an array input must be [S, channels] (samples first), got shape {array.shape}: transpose it", name
        )
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise DataError(f"an array input must hold float or integer samples, got dtype {array.dtype}", name)
    return array


def open_source(item: AudioInput, sample_rate: int | None = None) -> AudioSource:
    """A path or binary file object -> FileSource (sample_rate is ignored: the header says); an array -> ArraySource."""
    if isinstance(item, (str, os.PathLike, io.IOBase)) or hasattr(item, "readinto"):
        return FileSource.open(item)
    return ArraySource(item, sample_rate)


def read_span(source: AudioSource, first: int, stop: int) -> np.ndarray:
    """Frames [first, stop) of `source` -> [S] float32 mono at 16 kHz (S = the span's length at 16 kHz).
    AudioError for NaN / infinite samples (conform_samples checks before resampling, which would smear them)."""
    return conform_samples(source.read(first, stop), source.sample_rate, name=source.name)
