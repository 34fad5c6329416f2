"""An uploaded file's bytes -> a named in-memory file the recognizer reads window by window.

Only the header is decoded here (the data layer's audio_info on a BytesIO, as in training; nothing is written
to disk): the recognizer then
decodes one window at a time, so a request holds its upload bytes plus one window, however long the audio.
A header that cannot tell the length (a FLAC with total_samples 0) is counted by decoding, block by block, and
only until past the server's limit: a few KB of silent FLAC can hold days of audio.
Every refusal is an HTTPException whose detail names the upload and what is wrong with it: empty (400),
not a format libsndfile decodes (415), no samples (422), longer than the server's limit (413).
"""

from __future__ import annotations

import io
import threading

import soundfile as sf
from starlette.exceptions import HTTPException

from ..data.audio import audio_info
from ..errors import AudioError
from .slots import InferenceStopped

FORMATS_HINT = "send WAV, FLAC, OGG/Vorbis or MP3"


class StoppableUpload(io.BytesIO):
    """The upload in memory, and where a timed-out inference stops.

    The data layer rewinds a file object before it reads each span (`source.seek(0)` in
    data.audio._open_target, called by read_frames for every window the recognizer reads; on CPU a batch is
    one 10 s window). That one-argument call is plain Python, so once `stop` is set it raises
    InferenceStopped, which no layer below catches: the inference ends before reading its next window.
    soundfile's own seeks (from libsndfile's callbacks, always `seek(offset, whence)`) are never interrupted:
    an exception cannot cross the C library. tests/serve/test_serve_timeouts.py checks that a timed-out
    inference really stops at the next window."""

    def __init__(self, data: bytes, stop: threading.Event | None = None) -> None:
        super().__init__(data)
        self.stop = stop

    def seek(self, offset: int, *whence: int) -> int:
        if not whence and self.stop is not None and self.stop.is_set():
            raise InferenceStopped(f"{getattr(self, 'name', 'upload')!r}: stopped after the request timed out")
        return super().seek(offset, *whence)


def open_upload(data: bytes, filename: str, max_seconds: float, stop: threading.Event | None = None) -> io.BytesIO:
    """-> an in-memory file over `data` with `.name = filename` (what the prediction's `source` and errors
    show) that stops the inference reading it once `stop` is set (StoppableUpload)."""
    name = repr(filename)
    if not data:
        raise HTTPException(400, f"uploaded file {name} is empty (0 bytes)")
    file = StoppableUpload(data, stop)
    try:
        info = audio_info(file, name=filename, max_seconds=max_seconds)  # counting stops past the limit
    except AudioError as e:
        # "holds no audio samples" is a decodable file with nothing in it (422); anything else is undecodable
        status = 422 if "no audio samples" in str(e) else 415
        hint = "" if status == 422 else f"; {FORMATS_HINT}"
        raise HTTPException(status, f"{_reason(e)}{hint}") from None
    duration = info.duration
    if duration > max_seconds:
        length = f"{duration:.1f} s long"
        if _header_frames(file) != info.frames:  # counted by decoding, which stopped past the limit: a lower bound
            length = f"longer than {max_seconds:g} s (its header does not give the length: decoded up to the limit)"
        raise HTTPException(413, f"{name} is {length}; this server accepts at most {max_seconds:g} s (--max-seconds)")
    file.seek(0)
    file.name = filename  # only a label: the bytes never touch the file system
    return file


def _header_frames(file: io.BytesIO) -> int | None:
    """The frame count the file's header states (libsndfile's; 2**63 - 1 for an unknown length)."""
    try:
        file.seek(0)
        return sf.info(file).frames
    except RuntimeError:  # sf.LibsndfileError; it was read a moment ago, so not expected
        return None


def _reason(error: AudioError) -> str:
    """`'x.wav': cannot decode audio (Format not recognised.)` (AudioError names the upload, `path: reason`)."""
    return f"{error.path!r}: {str(error).split(': ', 1)[-1]}" if error.path else str(error)
