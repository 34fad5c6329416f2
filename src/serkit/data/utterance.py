"""The manifest row every corpus produces, and plain-JSONL manifests."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import DataError


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


def write_jsonl(utterances: Iterable[Utterance], path: str | Path) -> None:
    """Write one JSON object per line (atomically: a crash never leaves half a manifest)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for utt in utterances:
            f.write(json.dumps(utt.to_dict(), ensure_ascii=False) + "\n")
    tmp.replace(path)


def read_jsonl(path: str | Path) -> list[Utterance]:
    """Read a manifest written by `write_jsonl`; a bad line raises DataError naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError("manifest not found", path)
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"not valid JSON ({e.msg})", path, lineno) from None
            if not isinstance(obj, dict):
                raise DataError("expected a JSON object", path, lineno)
            missing = _REQUIRED - obj.keys()
            unknown = obj.keys() - _FIELDS
            if missing or unknown:
                raise DataError(
                    f"missing fields {sorted(missing)}, unknown fields {sorted(unknown)}", path, lineno
                )
            rows.append(Utterance(**obj))
    return rows
