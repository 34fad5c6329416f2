"""What every classical baseline shares: the corpus's own folds (exactly those `serkit cv` uses) and, per fold,
the rows of a per-utterance feature array with their class indices."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..data.summary import prepare_corpus
from ..data.utterance import Utterance
from ..errors import ConfigError

PARTS = ("train", "valid", "test")


class BaselineFolds:
    """The corpus read as `serkit cv` reads it; `folds`: the selected ones (None: all), checked to exist."""

    def __init__(self, corpus_name: str, root: str | Path, labels=None, label_map=None, options: dict | None = None,
                 folds: Sequence[int] | None = None):
        self.options = dict(options or {})
        self.corpus, prepared, self.classes = prepare_corpus(corpus_name, root, labels, label_map, self.options)
        self.utterances: list[Utterance] = prepared.utterances
        num_folds = self.corpus.fold_count(self.utterances, **self.options)
        self.folds = list(folds or range(1, num_folds + 1))
        bad = [f for f in self.folds if not 1 <= f <= num_folds]
        if bad:
            raise ConfigError(f"folds {bad} do not exist: {corpus_name} has folds 1..{num_folds}")

    def split(self, features: np.ndarray) -> Iterator[tuple[int, dict[str, np.ndarray], dict[str, np.ndarray]]]:
        """features [N, ...] (row i for utterances[i]) -> per fold: (fold, {part: rows}, {part: class indices [n]})."""
        row_of = {utt.id: i for i, utt in enumerate(self.utterances)}
        index_of = {label: i for i, label in enumerate(self.classes)}
        for fold in self.folds:
            split = self.corpus.split(self.utterances, fold, **self.options)
            parts = {name: getattr(split, name) for name in PARTS}
            yield (fold, {name: features[[row_of[u.id] for u in part]] for name, part in parts.items()},
                   {name: np.array([index_of[u.label] for u in part], dtype=np.int64) for name, part in parts.items()})

    def part_ids(self, fold: int) -> dict[str, list[str]]:
        """{"train"|"valid"|"test": utterance ids} of one fold, in the order `split` gives their rows."""
        split = self.corpus.split(self.utterances, fold, **self.options)
        return {name: [u.id for u in getattr(split, name)] for name in PARTS}
