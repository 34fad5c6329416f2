"""The duration-bucketed batch sampler: coverage, budget, determinism, and DDP shards."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serkit.data.sampler import DurationBatchSampler


def durations(n: int = 200, seed: int = 0) -> list[float]:
    return np.random.default_rng(seed).uniform(0.5, 12.0, n).round(3).tolist()


def padded_seconds(batch: list[int], lengths: list[float]) -> float:
    return len(batch) * max(lengths[i] for i in batch)


def epoch(sampler: DurationBatchSampler, number: int) -> list[list[int]]:
    sampler.set_epoch(number)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    return batches


@pytest.mark.parametrize("shuffle", [True, False])
def test_every_utterance_once_within_budget(shuffle):
    lengths = durations()
    sampler = DurationBatchSampler(lengths, max_batch_seconds=40.0, shuffle=shuffle, seed=1)
    for number in range(3):
        batches = epoch(sampler, number)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        assert all(padded_seconds(b, lengths) <= 40.0 for b in batches)
        assert sum(len(b) for b in batches) / len(batches) > 3  # batches are actually filled


def test_buckets_keep_similar_lengths_together():
    lengths = durations(400)
    batches = epoch(DurationBatchSampler(lengths, 60.0, shuffle=True, seed=0, num_buckets=10), 0)
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])
    assert spread < 2.0  # the whole range is 11.5 s; one of 10 buckets spans ~1.2 s


def test_too_long_utterance_gets_its_own_batch():
    lengths = [1.0] * 10 + [50.0]
    batches = epoch(DurationBatchSampler(lengths, 20.0, shuffle=True, seed=0), 0)
    assert [10] in batches
    assert all(padded_seconds(b, lengths) <= 20.0 for b in batches if b != [10])


def test_deterministic_per_seed_and_epoch_and_different_across_epochs():
    lengths = durations()
    a = DurationBatchSampler(lengths, 40.0, shuffle=True, seed=7)
    b = DurationBatchSampler(lengths, 40.0, shuffle=True, seed=7)
    assert epoch(a, 0) == epoch(b, 0)
    assert epoch(a, 3) == epoch(b, 3)
    assert epoch(a, 0) != epoch(a, 1)
    assert epoch(a, 0) != epoch(DurationBatchSampler(lengths, 40.0, shuffle=True, seed=8), 0)


def test_without_shuffle_batches_follow_length_order():
    lengths = durations()
    sampler = DurationBatchSampler(lengths, 40.0, shuffle=False, num_buckets=1)
    batches = epoch(sampler, 0)
    assert batches == epoch(sampler, 5)
    order = [i for b in batches for i in b]
    assert [lengths[i] for i in order] == sorted(lengths)


def _shards(lengths, replicas: int, number: int, **kwargs) -> list[list[list[int]]]:
    return [
        epoch(DurationBatchSampler(lengths, 30.0, seed=3, num_replicas=replicas, rank=rank, **kwargs), number)
        for rank in range(replicas)
    ]


@pytest.mark.parametrize("replicas", [2, 3])
@pytest.mark.parametrize("n", [200, 31, 7])
def test_ddp_shards_are_disjoint_covering_and_equal(replicas, n):
    lengths = durations(n, seed=n)
    for number in (0, 1):
        shards = _shards(lengths, replicas, number)
        assert len({len(shard) for shard in shards}) == 1
        seen = [i for shard in shards for batch in shard for i in batch]
        assert sorted(seen) == list(range(n))
        assert all(padded_seconds(b, lengths) <= 30.0 for shard in shards for b in shard)


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.floats(0.1, 20.0), min_size=0, max_size=60),
    replicas=st.integers(1, 4),
    budget=st.floats(5.0, 40.0),
    shuffle=st.booleans(),
)
def test_ddp_shards_property(lengths, replicas, budget, shuffle):
    shards = [
        list(DurationBatchSampler(lengths, budget, shuffle=shuffle, num_replicas=replicas, rank=r))
        for r in range(replicas)
    ]
    assert len({len(shard) for shard in shards}) == 1
    seen = sorted(i for shard in shards for batch in shard for i in batch)
    assert set(seen) == set(range(len(lengths)))
    if len(seen) != len(lengths):  # repeats only when no batch could be halved instead
        assert all(len(batch) == 1 for shard in shards for batch in shard)
        assert len(seen) - len(lengths) < replicas
    for shard in shards:
        for batch in shard:
            assert len(batch) == 1 or padded_seconds(batch, lengths) <= budget


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_batch_seconds"):
        DurationBatchSampler([1.0], 0)
    with pytest.raises(ValueError, match="rank"):
        DurationBatchSampler([1.0], 10, num_replicas=2, rank=2)
