"""An uploaded file's bytes -> a named in-memory file the recognizer reads window by window.

Only the header is decoded here (the data layer's audio_info on a BytesIO, as in training; nothing is written
to disk): the recognizer then decodes one window at a time, so a request holds its upload bytes plus one
window, however long the audio.
A header that cannot tell the length (a FLAC with total_samples 0) is counted by decoding, block by block, and
only until past the server's limit: a few KB of silent FLAC can hold days of audio.
Every refusal is an HTTPException whose detail names the upload and what is wrong with it: empty (400),
not a format libsndfile decodes (415), no samples (422), longer than the server's limit (413).
"""

from __future__ import annotations

import io

import soundfile as sf
from starlette.exceptions import HTTPException

from ..data.audio import audio_info
from ..errors import AudioError

FORMATS_HINT = "send WAV, FLAC, OGG/Vorbis or MP3"


def open_upload(data: bytes, filename: str, max_seconds: float) -> io.BytesIO:
    """-> an in-memory file over `data` with `.name = filename` (what the prediction's `source` and errors
    show)."""
    name = repr(filename)
    if not data:
        raise HTTPException(400, f"uploaded file {name} is empty (0 bytes)")
    file = io.BytesIO(data)
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
