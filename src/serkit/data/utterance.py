"""The manifest row every corpus produces, and plain-JSONL manifests."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import DataError
from ..util.atomic import write_text
from .rows import read_rows


@dataclass(frozen=True)
class Utterance:
    """One labelled utterance.

    `path` is absolute (or relative to the manifest's folder); `start`/`end` are seconds inside that file
    (`end=None`: to the end of the file); `duration` is seconds of the used segment; `speaker` is the real
    speaker; `group` is the key the fold rule uses (IEMOCAP session, RAVDESS actor, a manifest's fold column).
    """

    id: str
    path: str
    label: str
    speaker: str
    group: str
    duration: float
    start: float = 0.0
    end: float | None = None
    text: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_FIELDS = {f.name for f in dataclasses.fields(Utterance)}
_REQUIRED = {f.name for f in dataclasses.fields(Utterance) if f.default is dataclasses.MISSING}
_TEXT_FIELDS = ("id", "path", "label", "speaker", "group")


def write_jsonl(utterances: Iterable[Utterance], path: str | Path) -> None:
    """Write one JSON object per line (atomically: a crash never leaves half a manifest)."""
    write_text(path, "".join(json.dumps(utt.to_dict(), ensure_ascii=False) + "\n" for utt in utterances))


def read_jsonl(path: str | Path) -> list[Utterance]:
    """Read a manifest written by `write_jsonl`; a bad line raises DataError naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError("manifest not found", path)
    return [_typed_utterance(obj, path, lineno) for lineno, obj in read_rows(path, sorted(_REQUIRED), fmt="jsonl")]


def _seconds(value) -> float | None:
    """A JSON number of seconds as float, or None if it is not a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an integer beyond float range
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _typed_utterance(obj: dict, path: Path, lineno: int) -> Utterance:
    """Utterance(**obj) once every field has its documented type (a row from elsewhere may hold anything)."""
    unknown = obj.keys() - _FIELDS
    if unknown:
        raise DataError(f"unknown fields {sorted(unknown)}", path, lineno)
    bad = [f for f in _TEXT_FIELDS if not isinstance(obj[f], str)]
    bad += [f for f in ("text",) if obj.get(f) is not None and not isinstance(obj[f], str)]
    numbers = {f: _seconds(obj.get(f, 0.0)) for f in ("duration", "start")}
    if obj.get("end") is not None:
        numbers["end"] = _seconds(obj["end"])
    bad += [f for f, v in numbers.items() if v is None]
    if bad:
        raise DataError(f"fields {bad} have the wrong type or value: id, path, label, speaker, group are text; "
                        "duration, start (and end) finite seconds >= 0; text is text or null", path, lineno)
    values = {**obj, **numbers}
    if values.get("end") is not None and values["end"] <= values["start"]:
        raise DataError(f"end {values['end']} s is not after start {values['start']} s", path, lineno)
    return Utterance(**values)
