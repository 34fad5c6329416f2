r"""Prediction rows as `serkit predict` writes them: JSON lines or CSV.

Per input, first the whole-file row (window empty, start 0, end = duration), then one row per window of a
long input (window = 0, 1, ...; duration = end - start). An input that failed (with --skip-errors) gives one
row with its `error`.

A timeline (`--segments`: inference.timeline.Timeline) has a `segment` column instead of `window`, plus
`speaker` and `speech_seconds`: the whole-file row (segment empty, start 0, end = duration, speech_seconds =
the segments' total, label and probabilities the duration-weighted mean of the segments'; label and
probabilities empty when no speech was found), then one row per segment (segment = 0, 1, ... in time order,
speaker as the segments file gave it, else empty). JSONL rows carry the probabilities as an object; CSV has one column per class (named
by the class; `p_<class>` if a class name collides with another column).

Text is written so that any reader can take it: bytes of a file name that are not UTF-8 (legal on Linux;
Python holds them as surrogate escapes) are written as `\xNN` (Python's backslashreplace) in the file and
error fields of both formats, so every row is valid UTF-8 (`bad\xff.wav`; a name holding a real backslash
followed by `x` and two hex digits reads the same). In CSV, a text cell (file, label, error, class column
name) that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, as OWASP advises
against formula injection: a spreadsheet shows `'=cmd.wav` as text instead of running it. Numbers are never
changed.

>>> printable("bad\udcff.wav"), csv_text("=1+1.wav")
('bad\\xff.wav', "'=1+1.wav")

>>> import io
>>> from serkit.inference.results import Prediction
>>> out = io.StringIO()
>>> writer = CsvWriter(out, ["neu", "hap"])
>>> writer.write(Prediction("hap", {"neu": 0.25, "hap": 0.75}, 2.0, "a.wav"))
>>> print(out.getvalue().strip())
file,window,start,end,duration,label,neu,hap,error
a.wav,,0.0,2.0,2.0,hap,0.25,0.75,
"""

from __future__ import annotations

import csv
import json
from typing import Sequence, TextIO

from .results import Prediction, PredictionFailure
from .timeline import Timeline

_FIXED = ("file", "window", "start", "end", "duration", "label")
_TIMELINE_FIXED = ("file", "segment", "start", "end", "duration", "speech_seconds", "speaker", "label")


def prediction_rows(result: Prediction | Timeline | PredictionFailure) -> list[dict]:
    """One input's rows (see the module docstring); probabilities as a dict."""
    if isinstance(result, PredictionFailure):
        return [{"file": printable(result.source), "error": printable(result.error)}]
    if isinstance(result, Timeline):
        return timeline_rows(result)
    source = printable(result.source)
    rows = [{"file": source, "window": None, "start": 0.0, "end": result.duration,
             "duration": result.duration, "label": result.label, "probabilities": result.probabilities}]
    for index, window in enumerate(result.windows):
        rows.append({"file": source, "window": index, "start": window.start, "end": window.end,
                     "duration": window.end - window.start, "label": window.label,
                     "probabilities": window.probabilities})
    return rows


def timeline_rows(result: Timeline) -> list[dict]:
    source = printable(result.source)
    rows = [{"file": source, "segment": None, "start": 0.0, "end": result.duration, "duration": result.duration,
             "speech_seconds": result.speech_seconds, "speaker": None, "label": result.label,
             "probabilities": result.probabilities}]
    for index, segment in enumerate(result.segments):
        rows.append({"file": source, "segment": index, "start": segment.start, "end": segment.end,
                     "duration": round(segment.end - segment.start, 6), "speech_seconds": None,
                     "speaker": printable(segment.speaker), "label": segment.label,
                     "probabilities": segment.probabilities})
    return rows


class JsonlWriter:
    def __init__(self, stream: TextIO, labels: Sequence[str] | None = None, timeline: bool = False):
        self.stream = stream

    def write(self, result: Prediction | Timeline | PredictionFailure) -> None:
        for row in prediction_rows(result):
            self.stream.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.stream.flush()


class CsvWriter:
    """timeline: the columns of a timeline (segment, speech_seconds, speaker) instead of window's."""

    def __init__(self, stream: TextIO, labels: Sequence[str], timeline: bool = False):
        self.stream = stream
        self.labels = list(labels)
        self.fixed = _TIMELINE_FIXED if timeline else _FIXED
        self.writer = csv.writer(stream, lineterminator="\n")
        self.writer.writerow([*self.fixed, *map(csv_text, class_columns(self.labels, (*self.fixed, "error"))), "error"])

    def write(self, result: Prediction | Timeline | PredictionFailure) -> None:
        for row in prediction_rows(result):
            probabilities = row.get("probabilities") or {}
            self.writer.writerow([_cell(row.get(column)) for column in self.fixed]
                                 + [_cell(probabilities.get(label)) for label in self.labels]
                                 + [_cell(row.get("error"))])
        self.stream.flush()


def make_writer(fmt: str, stream: TextIO, labels: Sequence[str], timeline: bool = False) -> JsonlWriter | CsvWriter:
    return {"jsonl": JsonlWriter, "csv": CsvWriter}[fmt](stream, labels, timeline=timeline)


def class_columns(labels: Sequence[str], fixed: Sequence[str]) -> list[str]:
    """A column per class, named by the class, `p_<class>` if that name is one of the `fixed` columns."""
    return [f"p_{label}" if label in fixed else label for label in labels]


def printable(text: str | None) -> str | None:
    """text with surrogate escapes (the bytes of a file name that are not UTF-8) as `\\xNN`: valid UTF-8."""
    if text is None:
        return None
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that stands for no byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


# What a spreadsheet takes as the start of a formula (OWASP, "CSV Injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_text(text: str) -> str:
    """A text cell a spreadsheet shows as text: a leading `'` when it would start a formula."""
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


def _cell(value) -> str:
    if value is None:
        return ""
    return csv_text(value) if isinstance(value, str) else str(value)
