"""An uploaded file's bytes -> a named in-memory file the recognizer reads window by window.

Only the header is decoded here (soundfile on a BytesIO; nothing is written to disk): the recognizer then
decodes one window at a time, so a request holds its upload bytes plus one window, however long the audio.
Every refusal is an HTTPException whose detail names the upload and what is wrong with it: empty (400),
not a format libsndfile decodes (415), no samples (422), longer than the server's limit (413).
"""

from __future__ import annotations

import io

import soundfile as sf
from starlette.exceptions import HTTPException

FORMATS_HINT = "send WAV, FLAC, OGG/Vorbis or MP3"


def open_upload(data: bytes, filename: str, max_seconds: float) -> io.BytesIO:
    """-> BytesIO over `data` with `.name = filename` (what the prediction's `source` and errors show)."""
    name = repr(filename)
    if not data:
        raise HTTPException(400, f"uploaded file {name} is empty (0 bytes)")
    file = io.BytesIO(data)
    try:
        info = sf.info(file)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise HTTPException(415, f"cannot decode {name} as audio ({_reason(e)}); {FORMATS_HINT}") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise HTTPException(422, f"{name} holds no audio samples")
    duration = info.frames / info.samplerate
    if duration > max_seconds:
        raise HTTPException(
            413, f"{name} is {duration:.1f} s long; this server accepts at most {max_seconds:g} s (--max-seconds)"
        )
    file.seek(0)
    file.name = filename  # only a label: the bytes never touch the file system
    return file


def _reason(error: Exception) -> str:
    # libsndfile names the file object (`<_io.BytesIO ...>`); keep only its reason.
    text = str(error)
    return text.split(": ", 1)[-1] if text else type(error).__name__
