"""The corpus contract: a pure `prepare(root, **options)` plus a fold rule, registered by name.

A corpus is a class of classmethods (no state): `prepare` reads the corpus's own files and returns
`Prepared` (utterances + what was left out and why); `split` cuts one fold into train/valid/test.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ...errors import DataError
from ...registry import Registry
from ..utterance import Utterance


@dataclass(frozen=True)
class FileProblem:
    """An audio file a corpus refers to but cannot use (missing, unreadable header, ...), and why."""

    path: str
    reason: str


@dataclass
class Prepared:
    """What `prepare` found. `skipped` counts rows left out, by reason (e.g. "label fru not kept": 1849).
    `problems`: audio files left out because they are missing or unreadable; only `prepare(keep_going=True)`
    fills it (by default the first such file raises)."""

    utterances: list[Utterance]
    skipped: Counter = field(default_factory=Counter)
    problems: list[FileProblem] = field(default_factory=list)


@dataclass(frozen=True)
class FoldSplit:
    fold: int
    train: list[Utterance]
    valid: list[Utterance]
    test: list[Utterance]


@dataclass
class NoOptions:
    """A corpus without options of its own."""


class Corpus:
    """Base of registered corpora. Subclasses set the class attributes and implement both classmethods.
    `Options`: the dataclass of the corpus's `data.options` (prepare_corpus checks every key and type against it)."""

    Options: ClassVar[type] = NoOptions
    name: ClassVar[str]
    labels: ClassVar[tuple[str, ...]]  # default class set, in label-index order
    num_folds: ClassVar[int]

    @classmethod
    def prepare(cls, root: str | Path, *, keep_going: bool = False, **options) -> Prepared:
        """keep_going: a missing or unreadable audio file leaves its utterance out and is recorded in
        `Prepared.problems` instead of raising, so a check can list every problem at once."""
        raise NotImplementedError

    @classmethod
    def split(cls, utterances: list[Utterance], fold: int, **options) -> FoldSplit:
        """Fold `fold` (1-based) of `utterances` (as `prepare` returned them, order preserved)."""
        raise NotImplementedError

    @classmethod
    def fold_count(cls, utterances: list[Utterance], **options) -> int:
        """How many folds `split` offers for these utterances and options (folds are 1..count).

        Default: the class's `num_folds`; corpora whose folds follow an option or the data override it."""
        return cls.num_folds


def reason_of(error: DataError) -> str:
    """The message of `error` without the location prefix (`path: ` or `path:line: `) that DataError puts first."""
    if error.path is None:
        return str(error)
    return str(error).removeprefix(f"{error.path}:{error.line}: " if error.line is not None else f"{error.path}: ")


class Problems(list):
    """The FileProblems of one `prepare`, one helper for every corpus: with keep_going `add` records an unusable
    audio file (its utterance is left out), without it `add` raises the file's error. Prepared gets a plain
    list(...) of it (dataclasses.asdict could not rebuild this class)."""

    def __init__(self, keep_going: bool):
        super().__init__()
        self.keep_going = keep_going

    def add(self, path: str | Path, error: DataError, where: str = "") -> None:
        """Record audio file `path` with the reason of `error` (met reading it) and, if given, where the file is
        referenced (e.g. "labelled at Ses01F_impro01.txt:12"); without keep_going, raise `error` instead."""
        if not self.keep_going:
            raise error
        self.append(FileProblem(str(path), f"{reason_of(error)} ({where})" if where else reason_of(error)))


CORPORA: Registry[type[Corpus]] = Registry("corpus", "serkit.data.corpora", "serkit.corpora")
