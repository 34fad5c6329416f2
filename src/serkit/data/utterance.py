"""The manifest row every corpus produces, and writing prepared utterances as a JSONL manifest."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..util.atomic import write_text


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


def write_jsonl(utterances: Iterable[Utterance], path: str | Path) -> None:
    """Write one JSON object per line (atomically: a crash never leaves half a manifest): a valid manifest for the
    `manifest` corpus (data/corpora/manifest.py), so prepared corpora round-trip."""
    write_text(path, "".join(json.dumps(utt.to_dict(), ensure_ascii=False) + "\n" for utt in utterances))
