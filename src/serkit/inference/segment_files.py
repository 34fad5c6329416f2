"""Segments a user already has: a diarisation (RTTM) or a table (CSV) of start, end and speaker per segment.

RTTM (NIST; what pyannote and most diarisers write): one `SPEAKER <file-id> <channel> <onset> <duration>
<NA> <NA> <speaker> ...` line per turn, times in seconds. Lines of other types, blank lines and `;;` comments
are skipped. A turn belongs to the audio file whose name without extension is its file-id.

CSV: a header row with `start` and `end` (seconds), optionally `speaker` and `file`. With a `file` column a
row belongs to the audio file whose path as given, file name, or name without extension it holds; without
one, every row belongs to every input.

Every problem is a DataError naming the segments file and its line: a missing column, a time that is not a
number, a negative start, an end not after its start, or (once the audio is open) an end past the audio's
last sample (by more than END_TOLERANCE_S) or an audio file with no segments in the table.

>>> import tempfile, pathlib
>>> table = pathlib.Path(tempfile.mkdtemp()) / "talk.rttm"
>>> _ = table.write_text("SPEAKER talk 1 0.50 2.25 <NA> <NA> alice <NA> <NA>\\n"
...                      "SPEAKER talk 1 3.00 1.00 <NA> <NA> bob <NA> <NA>\\n")
>>> [(row.start, row.end, row.speaker) for row in SegmentTable.from_file(table).rows]
[(0.5, 2.75, 'alice'), (3.0, 4.0, 'bob')]
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from ..data.audio import END_TOLERANCE_S
from ..data.rows import read_rows, read_text
from ..errors import ConfigError, DataError
from .inputs import AudioSource, Region

SUFFIXES = (".rttm", ".csv")
RTTM_FIELDS = 8  # type, file-id, channel, onset, duration, ortho, speaker type, speaker name (then optional)


@dataclass(frozen=True)
class SegmentRow:
    """One segment of the table, where it was written (line) and which audio it belongs to (None: any)."""

    start: float
    end: float
    speaker: str | None
    file: str | None
    line: int


class SegmentTable:
    """A segments file, read and checked once; called with an opened input -> that input's regions in time
    order (a Segmenter, see segments.py)."""

    def __init__(self, path: Path, rows: list[SegmentRow], match_stem_only: bool):
        self.path = path
        self.rows = rows
        self.match_stem_only = match_stem_only  # RTTM file-ids name files without their extension

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "SegmentTable":
        path = Path(os.fsdecode(path))
        if path.suffix.lower() not in SUFFIXES:
            raise ConfigError(f"segments file {path}: expected a .rttm (diarisation) or .csv (start,end[,speaker]"
                              "[,file]) file")
        if not path.is_file():
            raise DataError("segments file not found", path)
        rows = _rttm_rows(read_text(path).split("\n"), path) if path.suffix.lower() == ".rttm" else _csv_rows(path)
        if not rows:
            raise DataError("holds no segments", path)
        return cls(path, rows, match_stem_only=path.suffix.lower() == ".rttm")

    def __call__(self, source: AudioSource) -> list[Region]:
        name = source.name
        rows = [row for row in self.rows if row.file is None or (name is not None and self._matches(row.file, name))]
        if not rows:
            files = sorted({row.file for row in self.rows if row.file is not None})
            how = "file name without extension" if self.match_stem_only else "path, file name or name without extension"
            raise DataError(f"no segments for {name or 'this input'} (the table names: {', '.join(files[:10])}"
                            f"{', ...' if len(files) > 10 else ''}; matched by {how})", self.path)
        regions = []
        for row in sorted(rows, key=lambda row: (row.start, row.end)):
            if row.start >= source.duration or row.end > source.duration + END_TOLERANCE_S:
                raise DataError(f"segment {row.start:g}-{row.end:g} s is past the end of {name or 'the audio'} "
                                f"({source.duration:.3f} s)", self.path, row.line)
            regions.append(Region(row.start, min(row.end, source.duration), row.speaker))
        return regions

    def _matches(self, file: str, audio: str) -> bool:
        audio_path = Path(audio)
        if self.match_stem_only:
            return file == audio_path.stem
        return file in (audio, audio_path.name, audio_path.stem)


def _rttm_rows(lines, path: Path) -> list[SegmentRow]:
    rows = []
    for line_number, text in enumerate(lines, start=1):
        fields = text.split()
        if not fields or fields[0] != "SPEAKER":  # blank, a `;;` comment, or another RTTM line type
            continue
        if len(fields) < RTTM_FIELDS:
            raise DataError(f"a SPEAKER line needs {RTTM_FIELDS} fields (SPEAKER file-id channel onset duration "
                            f"<NA> <NA> speaker), found {len(fields)}", path, line_number)
        onset = _seconds(fields[3], "onset", path, line_number)
        duration = _seconds(fields[4], "duration", path, line_number)
        if duration <= 0:
            raise DataError(f"duration {fields[4]} is not positive (a turn must last some time)", path, line_number)
        rows.append(_row(onset, onset + duration, fields[7], fields[1], path, line_number))
    return rows


def _csv_rows(path: Path) -> list[SegmentRow]:
    rows = []
    for line_number, row in read_rows(path, fmt="csv"):  # the package's one CSV reader
        missing = [name for name in ("start", "end") if name not in row]
        if missing:
            raise DataError(f"expected columns start,end (optional speaker, file); missing {', '.join(missing)} "
                            f"(found: {', '.join(row)})", path, 1)
        if not any((value or "").strip() for value in row.values()):
            continue  # a blank line
        start = _seconds(row["start"], "start", path, line_number)
        end = _seconds(row["end"], "end", path, line_number)
        speaker = (row.get("speaker") or "").strip() or None
        file = (row.get("file") or "").strip() or None
        rows.append(_row(start, end, speaker, file, path, line_number))
    return rows


def _row(start: float, end: float, speaker, file, path: Path, line: int) -> SegmentRow:
    if start < 0:
        raise DataError(f"start {start:g} s is negative", path, line)
    if end <= start:
        raise DataError(f"end {end:g} s is not after start {start:g} s", path, line)
    return SegmentRow(start, end, speaker, file, line)


def _seconds(text, what: str, path: Path, line: int) -> float:
    if text is None or not text.strip():
        raise DataError(f"{what} is missing (expected a number of seconds)", path, line)
    try:
        value = float(text.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DataError(f"{what} {text!r} is not a number of seconds", path, line)
    return value
