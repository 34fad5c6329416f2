"""Which files to predict on: paths as given, directories searched recursively, `-` for a list on stdin,
manifests (.csv, .jsonl / .ndjson, .parquet with a `path` column; relative paths are taken relative to the
manifest's folder).

A directory contributes the files whose extension is one of the audio formats this soundfile (libsndfile)
build decodes, in sorted order; a path given by name is taken whatever its extension (a bad one fails at
prediction with an error naming it). A folder or sub-folder that cannot be listed (permission denied) is a
DataError naming it, or, when the caller goes on past errors, reported to it and left out: never skipped
silently.

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
from typing import Callable, Iterable, Iterator, TextIO

import soundfile as sf

from ..data.rows import read_rows
from ..errors import ConfigError, DataError

MANIFEST_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".parquet")

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


def audio_paths(
    arguments: Iterable[str], stdin: TextIO | None = None, on_unreadable: Callable[[DataError], None] | None = None
) -> list[str]:
    """Expand command-line arguments into file paths, in order: `-` reads one path per line from stdin
    (only the line ending comes off; empty lines are skipped), a directory gives its audio files recursively
    (sorted), anything else is kept. An empty stdin list or a folder without audio files is a DataError.
    A folder that cannot be listed raises a DataError naming it, or with `on_unreadable` is handed to it
    (as that DataError) and its files are left out."""
    extensions = audio_extensions()
    paths: list[str] = []
    for argument in arguments:
        if argument == "-":
            stream = stdin if stdin is not None else sys.stdin
            # only the line ending ("\n", or "\r\n" from a list made on Windows) comes off: spaces at either
            # end are part of a file's name on Linux
            listed = [name for name in (line.removesuffix("\n").removesuffix("\r") for line in stream) if name]
            if not listed:  # a list that came out empty upstream: say so rather than print nothing
                raise DataError("no paths on standard input ('-' reads one audio path per line)")
            paths.extend(listed)
        elif is_manifest(argument):
            paths.extend(path for _, _, path in manifest_rows(Path(argument)))
        elif os.path.isdir(argument):
            reported: list[DataError] = []  # a folder that could not be listed is not also "without audio"

            def report(problem: DataError) -> None:
                reported.append(problem)
                on_unreadable(problem)

            found = sorted(_folder_audio(argument, extensions, report if on_unreadable else None))
            if not found and not reported:
                problem = DataError(f"no audio files in it or its sub-folders (extensions read: "
                                    f"{', '.join(sorted(extensions))})", argument)
                if on_unreadable is None:
                    raise problem
                on_unreadable(problem)
            paths.extend(str(p) for p in found)
        else:
            paths.append(argument)
    return paths


def _folder_audio(folder: str, extensions: frozenset[str], on_unreadable) -> list[Path]:
    """Audio files under `folder` (symlinked folders are not entered, as Path.rglob does not), unsorted.
    os.walk rather than Path.rglob: rglob passes over a folder it may not list without a word."""
    found: list[Path] = []

    def unreadable(error: OSError) -> None:
        reason = "permission denied" if isinstance(error, PermissionError) else error.strerror or str(error)
        problem = DataError(f"cannot list folder ({reason}); its audio files are left out", error.filename)
        if on_unreadable is None:
            raise problem
        on_unreadable(problem)

    for parent, _, names in os.walk(folder, onerror=unreadable):
        found.extend(p for p in map(Path(parent).joinpath, names) if p.suffix[1:].lower() in extensions and p.is_file())
    return found


def is_manifest(argument: str) -> bool:
    """A file (not a folder) named like a manifest: .csv, .jsonl, .ndjson or .parquet."""
    return argument.lower().endswith(MANIFEST_SUFFIXES) and not os.path.isdir(argument)


def manifest_rows(manifest: Path) -> Iterator[tuple[int, str, str]]:
    """(line, id, path) per row of a manifest; the line is the file's line (CSV, JSONL) or the row number
    counted from 1 (Parquet). DataError naming the manifest and line for a missing column or an empty path."""
    if not manifest.is_file():
        raise DataError("manifest not found", manifest)
    if manifest.suffix.lower() == ".parquet":
        rows = _parquet_rows(manifest)
    else:  # the package's one CSV / JSONL reader
        rows = read_rows(manifest, required=("path",), fmt="csv" if manifest.suffix.lower() == ".csv" else "jsonl")
    for line, row in rows:
        path = _text(row.get("path"))
        if not path:
            raise DataError("empty path; expected the audio file's path", manifest, line)
        file_id = _text(row.get("id")) or None
        if not os.path.isabs(path):
            path = os.path.join(os.path.dirname(manifest), path)  # as the manifest corpus does
        yield line, file_id or path, path


def _parquet_rows(manifest: Path) -> Iterator[tuple[int, dict]]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(f"{manifest}: reading a Parquet manifest needs pyarrow: pip install 'serkit[ray]' "
                          "(or pip install pyarrow), or give a .csv / .jsonl manifest") from None

    try:
        table = pq.ParquetFile(manifest)
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"not a readable Parquet file ({error})", manifest) from None
    names = table.schema_arrow.names
    if "path" not in names:
        raise DataError(f"missing columns ['path'] (columns: {names})", manifest)
    # a batch at a time: a big manifest is never a list of dicts at once
    batches = table.iter_batches(columns=[c for c in ("path", "id") if c in names])
    yield from enumerate((row for batch in batches for row in batch.to_pylist()), start=1)


def _text(value) -> str:
    return "" if value is None else str(value).strip()
