"""An uploaded file's bytes -> a named in-memory file the recognizer reads window by window.

Only the header is decoded here (the data layer's audio_info on a BytesIO, as in training; nothing is written
to disk): the recognizer then
decodes one window at a time, so a request holds its upload bytes plus one window, however long the audio.
Every refusal is an HTTPException whose detail names the upload and what is wrong with it: empty (400),
not a format libsndfile decodes (415), no samples (422), longer than the server's limit (413).
"""

from __future__ import annotations

import io

from starlette.exceptions import HTTPException

from ..data.audio import audio_info
from ..errors import AudioError

FORMATS_HINT = "send WAV, FLAC, OGG/Vorbis or MP3"


def open_upload(data: bytes, filename: str, max_seconds: float) -> io.BytesIO:
    """-> BytesIO over `data` with `.name = filename` (what the prediction's `source` and errors show)."""
    name = repr(filename)
    if not data:
        raise HTTPException(400, f"uploaded file {name} is empty (0 bytes)")
    file = io.BytesIO(data)
    try:
        info = audio_info(file, name=filename)
    except AudioError as e:
        # "holds no audio samples" is a decodable file with nothing in it (422); anything else is undecodable
        status = 422 if "no audio samples" in str(e) else 415
        hint = "" if status == 422 else f"; {FORMATS_HINT}"
        raise HTTPException(status, f"{_reason(e)}{hint}") from None
    duration = info.duration
    if duration > max_seconds:
        raise HTTPException(
            413, f"{name} is {duration:.1f} s long; this server accepts at most {max_seconds:g} s (--max-seconds)"
        )
    file.seek(0)
    file.name = filename  # only a label: the bytes never touch the file system
    return file


def _reason(error: AudioError) -> str:
    """`'x.wav': cannot decode audio (Format not recognised.)` (AudioError names the upload, `path: reason`)."""
    return f"{error.path!r}: {str(error).split(': ', 1)[-1]}" if error.path else str(error)
