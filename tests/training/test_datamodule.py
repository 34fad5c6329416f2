"""The fold's loaders: with the run's epochs the training loader keeps one batch count (Lightning reads it once);
evaluation is every clip once, in a fixed order."""

from __future__ import annotations

import numpy as np

from serkit.data.config import DataConfig
from serkit.data.corpora import FoldSplit
from serkit.data.utterance import Utterance
from serkit.training.datamodule import FoldDataModule


def utterances(n: int, seed: int) -> list[Utterance]:
    lengths = np.random.default_rng(seed).uniform(0.5, 12.0, n).round(3)
    return [Utterance(f"u{i}", f"/nowhere/u{i}.wav", "neu", "s1", "g1", float(d)) for i, d in enumerate(lengths)]


def test_training_loader_keeps_one_batch_count_over_the_epochs():
    split = FoldSplit(1, train=utterances(40, seed=1), valid=utterances(9, seed=2), test=[])
    cfg = DataConfig(corpus="ravdess", max_batch_seconds=30.0, num_buckets=3)
    counts, natural = set(), set()
    for number in range(6):
        loader = FoldDataModule(split, ["neu"], cfg, seed=1, epochs=6).train_dataloader()
        loader.batch_sampler.set_epoch(number)
        batches = list(loader.batch_sampler)
        counts.add(len(batches))
        assert len(loader) == len(batches)
        assert sorted(i for b in batches for i in b) == list(range(40))
        plain = FoldDataModule(split, ["neu"], cfg, seed=1).train_dataloader().batch_sampler
        plain.set_epoch(number)
        natural.add(len(plain))
    assert len(natural) > 1 and counts == {max(natural)}
    valid = FoldDataModule(split, ["neu"], cfg, seed=1, epochs=6).val_dataloader().batch_sampler
    assert sorted(i for b in valid for i in b) == list(range(9))
