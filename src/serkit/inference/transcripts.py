"""Transcripts for models with a text branch: a sidecar file beside the audio, or a table of path -> text.

Lookup order for an audio file `dir/a.wav`: the table (a CSV or JSONL file with a path and a text column;
relative paths in it are taken relative to the table's own folder, then as given), then the sidecar
`dir/a.txt`, then `dir/a.wav.txt`. None when nothing is found.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "a.txt").write_text("I am so happy today\\n")
>>> _ = (root / "table.csv").write_text("path,text\\nb.wav,the cat sat\\n")
>>> lookup = Transcripts.from_file(root / "table.csv")
>>> lookup.text_for(root / "a.wav"), lookup.text_for(root / "b.wav"), lookup.text_for(root / "c.wav")
('I am so happy today', 'the cat sat', None)
"""

from __future__ import annotations

import os
from pathlib import Path

from ..data.rows import read_rows
from ..errors import ConfigError, DataError


class Transcripts:
    """path -> transcript; `text_for(audio_path)` also looks for sidecar files."""

    def __init__(self, table: dict[str, str] | None = None):
        self.table = {_key(path): text for path, text in (table or {}).items()}

    @classmethod
    def from_file(cls, path: str | Path, path_column: str = "path", text_column: str = "text") -> "Transcripts":
        """A CSV (header row) or JSONL (one object per line) table with `path_column` and `text_column`."""
        path = Path(path)
        if not path.is_file():
            raise DataError("transcripts file not found", path)
        rows = read_rows(path)
        table: dict[str, str] = {}
        for line, row in rows:
            for column in (path_column, text_column):
                if not isinstance(row.get(column), str):
                    raise DataError(f"expected a text column {column!r} (columns: {', '.join(row)})", path, line)
            audio = Path(row[path_column])
            table[str(audio if audio.is_absolute() else path.parent / audio)] = row[text_column]
            table.setdefault(row[path_column], row[text_column])  # also as written, relative to the cwd
        return cls(table)

    def text_for(self, audio_path: str | Path) -> str | None:
        text = self.table.get(_key(audio_path))
        if text is not None:
            return text
        audio_path = Path(audio_path)
        for sidecar in (audio_path.with_suffix(".txt"), Path(f"{audio_path}.txt")):
            if sidecar.is_file():
                return sidecar.read_text(encoding="utf-8").strip()
        return None


def _key(path: str | Path) -> str:
    return os.path.normpath(os.path.abspath(path))


def missing_transcript(name: str | None) -> ConfigError:
    """The error for an input without the transcript that a model with a text branch needs."""
    return ConfigError(f"{name or '<array>'}: this model has a text branch and needs the transcript of every input "
                       "(Python: text=...; `serkit predict`: a sidecar <audio>.txt or --transcripts FILE)")
