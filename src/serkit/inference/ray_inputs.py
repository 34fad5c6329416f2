"""What `serkit predict --engine ray` predicts on: (id, path) pairs from folders, manifests and lists of files.

Each INPUT argument is one of
- a folder: its audio files, recursively and sorted (files.audio_paths: the local engine's own listing);
- a manifest: a `.csv`, `.jsonl` / `.ndjson` or `.parquet` table with a `path` column and an optional `id`
  column (other columns are ignored). A relative path is taken relative to the manifest's folder, as the
  manifest corpus and transcript tables take theirs;
- `-`: paths on stdin, one per line;
- anything else: an audio file, whatever its extension (one that cannot be decoded becomes an error row).

The id of a file is the manifest's `id` when it has one, else its path as listed (so resume a run from the
same folder with the same arguments). Ids key the output: a restart skips the ids already written, so an id
may name one file only. A repeated id is a DataError naming where both come from, found before anything runs.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "list.csv").write_text("id,path\\nutt1,a.wav\\nutt2,/data/b.flac\\n")
>>> inputs = archive_inputs([str(root / "list.csv")])
>>> inputs.ids, [pathlib.Path(p).name for p in inputs.paths]
(['utt1', 'utt2'], ['a.wav', 'b.flac'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ..errors import DataError
from .files import audio_paths, is_manifest, manifest_rows

@dataclass
class ArchiveInputs:
    """The files to predict, in order: ids[k] names paths[k]. Two plain lists of str rather than one object
    per file: the driver of a million-file job holds these, and nothing else per file."""

    ids: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    # id -> where it came from, for the message of a repeated id; an int is the index of the argument
    _origin: dict[str, tuple[str, int | None]] = field(default_factory=dict, repr=False)

    def add(self, file_id: str, path: str, where: str, line: int | None = None) -> None:
        if file_id in self._origin:
            first = _where(*self._origin[file_id])
            raise DataError(f"id {file_id!r} is also given by {first}; ids key the output (a restart skips ids "
                            "already written), so each must name one file", where, line)
        self._origin[file_id] = (where, line)
        self.ids.append(file_id)
        self.paths.append(path)

    def __len__(self) -> int:
        return len(self.ids)


def archive_inputs(arguments: list[str], stdin: TextIO | None = None) -> ArchiveInputs:
    """Expand INPUT arguments (see the module docstring) into ids and paths, in order; DataError for a
    manifest that cannot be read (naming its line) or an id given twice."""
    inputs = ArchiveInputs()
    for argument in arguments:
        if is_manifest(argument):
            manifest = Path(argument)
            for line, file_id, path in manifest_rows(manifest):
                inputs.add(file_id, path, str(manifest), line)
        else:
            # folders, `-` and plain files: exactly the local engine's expansion (a folder it cannot list fails)
            where = "stdin" if argument == "-" else argument
            for path in audio_paths([argument], stdin):
                inputs.add(path, path, where)
    return inputs


def _where(source: str, line: int | None) -> str:
    return f"{source}:{line}" if line is not None else source
