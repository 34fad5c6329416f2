"""Which files to predict on: paths as given, directories searched recursively, `-` for a list on stdin.

A directory contributes the files whose extension is one of the audio formats this soundfile (libsndfile)
build decodes, in sorted order; a path given by name is taken whatever its extension (a bad one fails at
prediction with an error naming it).

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> for name in ("b.flac", "sub/a.wav", "notes.txt"):
...     (root / name).parent.mkdir(exist_ok=True); (root / name).touch()
>>> [pathlib.Path(p).relative_to(root).as_posix() for p in audio_paths([str(root)])]
['b.flac', 'sub/a.wav']
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterable, TextIO

import soundfile as sf

# file extension -> libsndfile's format name (kept only when this build can decode it)
_EXTENSIONS = {
    "wav": "WAV", "wave": "WAV", "flac": "FLAC", "ogg": "OGG", "oga": "OGG", "opus": "OGG", "mp3": "MP3",
    "aif": "AIFF", "aiff": "AIFF", "aifc": "AIFF", "au": "AU", "snd": "AU", "caf": "CAF", "w64": "W64",
    "rf64": "RF64", "sph": "NIST", "nist": "NIST", "voc": "VOC", "htk": "HTK", "paf": "PAF", "pvf": "PVF",
    "sd2": "SD2", "sds": "SDS", "sf": "IRCAM", "svx": "SVX", "wve": "WVE", "xi": "XI", "avr": "AVR",
}


def audio_extensions() -> frozenset[str]:
    """Lower-case extensions (no dot) of the formats the installed libsndfile decodes."""
    available = sf.available_formats()
    return frozenset(ext for ext, fmt in _EXTENSIONS.items() if fmt in available)


def audio_paths(arguments: Iterable[str], stdin: TextIO | None = None) -> list[str]:
    """Expand command-line arguments into file paths, in order: `-` reads one path per line from stdin
    (blank lines skipped), a directory gives its audio files recursively (sorted), anything else is kept."""
    extensions = audio_extensions()
    paths: list[str] = []
    for argument in arguments:
        if argument == "-":
            stream = stdin if stdin is not None else sys.stdin
            paths.extend(line.strip() for line in stream if line.strip())
        elif os.path.isdir(argument):
            found = (p for p in Path(argument).rglob("*") if p.suffix[1:].lower() in extensions and p.is_file())
            paths.extend(str(p) for p in sorted(found))
        else:
            paths.append(argument)
    return paths

