"""Any corpus as a CSV or JSONL manifest; `root` is the manifest file.

Columns (CSV header or JSON keys; others are ignored):
- path (required): audio file, relative to the manifest's folder (may not leave it through `..`) or absolute;
- label, speaker (required, non-empty);
- id (default: the relative path without suffix, plus @start-end for a segment; ids must be unique);
- fold or group (the fold key; `fold` wins when both exist); text; start, end (seconds, a segment);
- duration (seconds, > 0 and at most MAX_DURATION_S; optional).
Every row's audio header is read: start/end must lie in the file, and a declared duration must match the
segment's length in the audio (and end - start) within END_TOLERANCE_S, the slack allowed for rounded
timestamps; the utterance's duration is the audio's. A mismatch is a problem of that row (listed with
`manifest:line` by `serkit data ... --check`), since batching trusts durations: a declared 1e308 s, or a
too-small one that packs long files into one batch, would otherwise go unnoticed.
JSONL written by `serkit.data.utterance.write_jsonl` is a valid manifest, so prepared corpora round-trip.

Folds: the distinct fold keys in natural order (numbers numerically), one fold each; with num_folds=K they are
dealt to K folds back and forth (folds.deal). Without a fold/group column, speakers are dealt to num_folds
(default 5, or fewer when there are fewer speakers) folds and `group` holds the fold number.
valid="next_fold" (default) or "none" as in folds.split_by_group. Labels are an open vocabulary: the class
set defaults to every label found; rows outside a given class set are skipped and counted.

Every problem is a DataError naming the manifest file and line.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from ...errors import AudioError, ConfigError, DataError
from ..audio import END_TOLERANCE_S, audio_info
from ..labels import apply_labels, parse_label_map, parse_labels
from ..rows import read_rows
from ..utterance import Utterance
from .base import CORPORA, Corpus, FoldSplit, Prepared, Problems
from .folds import deal, natural_sorted, parse_count, split_by_group

REQUIRED_COLUMNS = ("path", "label", "speaker")
# Longest declared duration: an utterance is seconds to minutes; a day is a typo or garbage.
MAX_DURATION_S = 24 * 3600.0
DEFAULT_SPEAKER_FOLDS = 5


@dataclass
class ManifestOptions:
    """num_folds: folds to deal the fold keys (or speakers) to (None: one per fold key, or 5 speaker folds);
    valid: "next_fold" | "none"."""

    num_folds: int | None = None
    valid: str = "next_fold"


@CORPORA.register("manifest")
class Manifest(Corpus):
    Options = ManifestOptions
    name: ClassVar[str] = "manifest"
    labels: ClassVar[tuple[str, ...]] = ()  # open vocabulary: every label found
    num_folds: ClassVar[int] = DEFAULT_SPEAKER_FOLDS  # nominal; fold_count follows the data

    @classmethod
    def prepare(cls, root: str | Path, labels=None, label_map=None, *, keep_going: bool = False,
                **options) -> Prepared:
        labels, label_map = parse_labels(labels), parse_label_map(label_map)
        manifest = Path(root)
        if not manifest.is_file():
            raise DataError("manifest file not found (expected a .csv or .jsonl file)", manifest)
        if manifest.suffix.lower() not in (".csv", ".jsonl", ".ndjson"):
            raise DataError(f"unknown manifest format {manifest.suffix.lower()!r} (expected .csv or .jsonl)", manifest)
        utterances, seen_ids, problems = [], {}, Problems(keep_going)
        for line, row in read_rows(manifest, REQUIRED_COLUMNS):  # missing required columns name the line
            try:
                utt = _utterance(manifest, line, row)
            except _UnusableAudio as e:
                problems.add(e.audio, e, f"{manifest}:{line}")
                continue
            if utt.id in seen_ids:
                raise DataError(f"duplicate id {utt.id!r} (first on line {seen_ids[utt.id]})", manifest, line)
            # group is "" exactly when the row has no fold/group key (an empty one is refused)
            if utterances and bool(utt.group) != bool(utterances[-1].group):
                raise DataError("fold/group key present on some rows only (give it on all or none)", manifest, line)
            seen_ids[utt.id] = line
            utterances.append(utt)
        if not utterances:
            if problems:
                return Prepared([], Counter(), list(problems))
            raise DataError("manifest has no rows", manifest)
        try:
            if not utterances[0].group:
                utterances = _deal_speakers(utterances, options.get("num_folds"))
            mapped = {label_map.get(utt.label, utt.label) for utt in utterances}
            absent = [label for label in labels if label not in mapped]
            if absent:
                raise ConfigError(f"labels: {absent} never occur in {manifest}; found: {', '.join(sorted(mapped))}")
        except ConfigError as error:
            if problems:  # (keep_going) the unusable rows left out may be the cause: name them with it
                shown = "; ".join(f"{p.path}: {p.reason}" for p in problems[:3])
                raise ConfigError(f"{error} once the {len(problems)} unusable rows were left out ({shown}"
                                  f"{'; ...' if len(problems) > 3 else ''})") from None
            raise
        kept, skipped = apply_labels(utterances, labels, label_map)
        return Prepared(kept, skipped, list(problems))

    @classmethod
    def split(cls, utterances: list[Utterance], fold: int, **options) -> FoldSplit:
        num_folds = cls.fold_count(utterances, **options)
        fold_of_group = deal(natural_sorted(utt.group for utt in utterances), num_folds)
        return split_by_group(utterances, fold_of_group, fold, num_folds, options.get("valid", "next_fold"), cls.name)

    @classmethod
    def fold_count(cls, utterances: list[Utterance], **options) -> int:
        num_groups = len({utt.group for utt in utterances})
        if num_groups < 2:
            raise ConfigError(f"manifest: folds need at least 2 fold/group keys (or speakers), found {num_groups}")
        if options.get("num_folds") is None:
            return num_groups
        return parse_count(options["num_folds"], "num_folds", 2, num_groups)


class _UnusableAudio(AudioError):
    """A row whose audio file is missing or unreadable: raised, or recorded under keep_going."""

    def __init__(self, reason: str, manifest: Path, line: int, audio: Path):
        super().__init__(reason, manifest, line)
        self.audio = audio


def _utterance(manifest: Path, line: int, row: dict) -> Utterance:
    """One row -> its Utterance; group is "" when the row carries no fold/group key."""

    def text(column: str) -> str:
        value = row.get(column)
        return "" if value is None else str(value).strip()

    for column in REQUIRED_COLUMNS:
        if not text(column):
            raise DataError(f"empty {column}", manifest, line)
    audio = _audio_path(manifest, line, text("path"))
    start = _seconds(manifest, line, "start", text("start")) or 0.0
    end = _seconds(manifest, line, "end", text("end"))
    if end is not None and end <= start:
        raise DataError(f"end {end} s is not after start {start} s", manifest, line)
    declared = _seconds(manifest, line, "duration", text("duration"))
    if declared is not None and not 0 < declared <= MAX_DURATION_S:
        raise DataError(f"duration: expected seconds > 0 and at most {MAX_DURATION_S:g} (a day), got "
                        f"{text('duration')!r}", manifest, line)
    if declared is not None and end is not None and abs(declared - (end - start)) > END_TOLERANCE_S:
        raise DataError(f"duration {declared:g} s does not match end - start = {end - start:g} s", manifest, line)
    duration = _duration_from_audio(manifest, line, audio, start, end, declared)
    fold_column = "fold" if "fold" in row else "group" if "group" in row else None
    if fold_column is not None and not text(fold_column):
        raise DataError(f"empty {fold_column}", manifest, line)
    return Utterance(id=text("id") or _default_id(manifest, audio, start, end), path=str(audio), label=text("label"),
                     speaker=text("speaker"), group=text(fold_column) if fold_column else "", duration=duration,
                     start=start, end=end, text=text("text") or None)


def _audio_path(manifest: Path, line: int, value: str) -> Path:
    path = Path(value)
    if not path.is_absolute():
        # Lexical check (not resolve()): a symlinked data folder inside the manifest's folder is fine.
        normal = os.path.normpath(value)
        if normal == ".." or normal.startswith(".." + os.sep):
            raise DataError(f"path {value!r} leaves the manifest's folder (use an absolute path)", manifest, line)
        path = manifest.parent.absolute() / normal
    try:
        exists = path.exists()
    except OSError as error:  # a name the file system cannot hold (too long, ...): unusable like a missing file
        raise _UnusableAudio(f"audio path {str(path)[:200]!r} cannot be looked up: {error.strerror}", manifest, line,
                             path) from None
    if not exists:
        raise _UnusableAudio(f"audio file {path} not found", manifest, line, path)
    if not path.is_file():
        raise _UnusableAudio(f"{path} is not a regular file (a folder, device or pipe; expected an audio file)",
                             manifest, line, path)
    return path


def _seconds(manifest: Path, line: int, column: str, value: str) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise DataError(f"{column}: expected a number of seconds >= 0, got {value!r}", manifest, line)
    return seconds


def _duration_from_audio(manifest: Path, line: int, audio: Path, start: float, end: float | None,
                         declared: float | None = None) -> float:
    """Seconds of the segment start..end in the audio (its header); _UnusableAudio if the segment is not in
    the file or `declared` (the row's duration) differs from it by more than END_TOLERANCE_S."""
    try:
        file_duration = audio_info(audio).duration
    except AudioError as e:
        raise _UnusableAudio(str(e), manifest, line, audio) from None
    if start >= file_duration or (end is not None and end > file_duration + END_TOLERANCE_S):
        raise _UnusableAudio(f"segment {start}-{end} s lies outside {audio} ({file_duration:.3f} s long)", manifest,
                             line, audio)
    duration = min(end, file_duration) - start if end is not None else file_duration - start
    if declared is not None and abs(declared - duration) > END_TOLERANCE_S:
        segment = "" if not start and end is None else f" (segment {start:g}-{'end' if end is None else f'{end:g}'} s)"
        raise _UnusableAudio(f"duration {declared:g} s does not match the audio: {audio}{segment} holds "
                             f"{duration:.3f} s", manifest, line, audio)
    return duration


def _default_id(manifest: Path, audio: Path, start: float, end: float | None) -> str:
    try:
        stem = audio.relative_to(manifest.parent.absolute()).with_suffix("").as_posix()
    except ValueError:
        stem = audio.with_suffix("").as_posix()
    if start or end is not None:
        stem += f"@{start:g}-{'' if end is None else f'{end:g}'}"
    return stem


def _deal_speakers(utterances: list[Utterance], num_folds) -> list[Utterance]:
    """No fold column: speakers (natural order) dealt to folds; group = the fold number as text."""
    speakers = natural_sorted(utt.speaker for utt in utterances)
    if len(speakers) < 2:
        raise ConfigError(f"manifest: folds need at least 2 speakers (or a fold/group column), found {len(speakers)}")
    if num_folds is None:
        num_folds = min(DEFAULT_SPEAKER_FOLDS, len(speakers))
    fold_of_speaker = deal(speakers, parse_count(num_folds, "num_folds", 2, len(speakers)))
    return [replace(utt, group=str(fold_of_speaker[utt.speaker])) for utt in utterances]
