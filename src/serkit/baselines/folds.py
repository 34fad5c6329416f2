"""What every classical baseline shares: the corpus's own folds (exactly those `serkit cv` uses) and, per fold,
the rows of a per-utterance feature array with their class indices."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ..data.config import DataConfig
from ..data.prepare import prepare_corpus
from ..data.utterance import Utterance

PARTS = ("train", "valid", "test")


class BaselineFolds:
    """The corpus read as `serkit cv` reads it; `folds`: the selected ones (None: all), checked to exist."""

    def __init__(self, data: DataConfig, folds: Sequence[int] | None = None):
        self.data = prepare_corpus(data)
        self.classes = self.data.classes
        self.utterances: list[Utterance] = self.data.utterances
        self.folds = self.data.select_folds(folds)

    def split(self, features: np.ndarray) -> Iterator[tuple[int, dict[str, np.ndarray], dict[str, np.ndarray]]]:
        """features [N, ...] (row i for utterances[i]) -> per fold: (fold, {part: rows}, {part: class indices [n]})."""
        row_of = {utt.id: i for i, utt in enumerate(self.utterances)}
        index_of = {label: i for i, label in enumerate(self.classes)}
        for fold in self.folds:
            split = self.data.split(fold)
            parts = {name: getattr(split, name) for name in PARTS}
            yield (fold, {name: features[[row_of[u.id] for u in part]] for name, part in parts.items()},
                   {name: np.array([index_of[u.label] for u in part], dtype=np.int64) for name, part in parts.items()})

    def part_ids(self, fold: int) -> dict[str, list[str]]:
        """{"train"|"valid"|"test": utterance ids} of one fold, in the order `split` gives their rows."""
        split = self.data.split(fold)
        return {name: [u.id for u in getattr(split, name)] for name in PARTS}
