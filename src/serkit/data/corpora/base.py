"""The corpus contract: a pure `prepare(root, **options)` plus a fold rule, registered by name.

A corpus is a class of classmethods (no state): `prepare` reads the corpus's own files and returns
`Prepared` (utterances + what was left out and why); `split` cuts one fold into train/valid/test.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ...registry import Registry
from ..utterance import Utterance


@dataclass
class Prepared:
    """What `prepare` found. `skipped` counts rows left out, by reason (e.g. "label fru not kept": 1849)."""

    utterances: list[Utterance]
    skipped: Counter = field(default_factory=Counter)


@dataclass(frozen=True)
class FoldSplit:
    fold: int
    train: list[Utterance]
    valid: list[Utterance]
    test: list[Utterance]


class Corpus:
    """Base of registered corpora. Subclasses set the class attributes and implement both classmethods."""

    name: ClassVar[str]
    labels: ClassVar[tuple[str, ...]]  # default class set, in label-index order
    num_folds: ClassVar[int]

    @classmethod
    def prepare(cls, root: str | Path, **options) -> Prepared:
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


CORPORA: Registry[type[Corpus]] = Registry("corpus")
