"""Length-bucketed batches filled by audio duration, with per-rank shards for DDP.

Why not lhotse's DynamicBucketingSampler: it wants lhotse CutSets (Recording + Supervision manifests), so
we would convert our Utterance lists both ways and take on a large dependency for ~100 lines of logic.
This sampler needs only each utterance's duration.

One epoch (deterministic for (seed, epoch); every rank computes the same global list):
1. sort utterances by duration and cut the order into `num_buckets` buckets of equal count, so a batch
   mixes similar lengths (little padding);
2. with shuffle, permute within each bucket (so batches differ between epochs);
3. fill batches greedily along the buckets while batch size x longest duration (the padded audio the
   model sees) stays within `max_batch_seconds`; an utterance longer than the budget gets a batch of its
   own; with shuffle, permute the batch order;
4. DDP: rank r takes batches r, r + R, r + 2R, ... Every rank must step the same number of times or
   DDP hangs, so when the count is not a multiple of R the largest batches are halved (still within
   budget) until it is: shards stay disjoint and covering. Only when every batch is a single utterance
   (fewer utterances than ranks, or none fit two to a batch) are batches repeated from the start of the
   list, so a few utterances are seen twice that epoch.

Used as `DataLoader(dataset, batch_sampler=sampler)`. Call `set_epoch(epoch)` before each epoch; Lightning
does it by itself (it calls `loader.batch_sampler.sampler.set_epoch`, hence the `sampler` property). With
DDP, give the Trainer `use_distributed_sampler=False` so it keeps this sampler. The batch count may differ by a few
between epochs because step 3 sees a different order; `len()` is exact for the current epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


# 30: on an IEMOCAP-like long-tailed length distribution (0.6 s to > 30 s) 10 buckets keep 0.88 of the padded
# audio real, 30 keep 0.95 (benchmarks/batching.py); more buckets barely help and shuffle less.
DEFAULT_NUM_BUCKETS = 30


class DurationBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices; `durations[i]` is utterance i's length in seconds."""

    def __init__(self, durations: Sequence[float], max_batch_seconds: float, shuffle: bool = True, seed: int = 0,
                 num_buckets: int = DEFAULT_NUM_BUCKETS, num_replicas: int = 1, rank: int = 0):
        if max_batch_seconds <= 0:
            raise ValueError(f"max_batch_seconds must be > 0, got {max_batch_seconds}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        self.durations = np.asarray(durations, dtype=np.float64)
        self.max_batch_seconds, self.shuffle, self.seed = float(max_batch_seconds), shuffle, seed
        self.num_buckets, self.num_replicas, self.rank = max(1, num_buckets), num_replicas, rank
        self.epoch = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def sampler(self) -> DurationBatchSampler:
        # Lightning's fit loop calls set_epoch on `dataloader.sampler` and `dataloader.batch_sampler.sampler`,
        # not on the batch sampler itself; answering as our own sampler puts us on that path.
        return self

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._rank_batches())

    def __len__(self) -> int:
        return len(self._rank_batches())

    def _rank_batches(self) -> list[list[int]]:
        if self._cache is None or self._cache[0] != self.epoch:
            batches = _equalise(self._global_batches(), self.num_replicas)
            self._cache = (self.epoch, batches[self.rank :: self.num_replicas])
        return self._cache[1]

    def _global_batches(self) -> list[list[int]]:
        """Every rank's batches for this epoch, in the order they will be dealt."""
        rng = np.random.default_rng([self.seed, self.epoch])
        by_length = np.argsort(self.durations, kind="stable")
        if self.shuffle:
            buckets = np.array_split(by_length, min(self.num_buckets, max(1, len(by_length))))
            by_length = np.concatenate([rng.permutation(bucket) for bucket in buckets])
        # One pass over the buckets in order, so a bucket's last few utterances join the next bucket's
        # first batch instead of forming a small batch of their own.
        batches = self._fill(by_length)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def _fill(self, indices: np.ndarray) -> list[list[int]]:
        batches, batch, longest = [], [], 0.0
        for index in indices.tolist():
            duration = self.durations[index]
            if batch and (len(batch) + 1) * max(longest, duration) > self.max_batch_seconds:
                batches.append(batch)
                batch, longest = [], 0.0
            batch.append(index)
            longest = max(longest, duration)
        if batch:
            batches.append(batch)
        return batches


def _equalise(batches: list[list[int]], num_replicas: int) -> list[list[int]]:
    """Make len(batches) a multiple of num_replicas: halve the largest batches, else repeat batches."""
    batches = list(batches)
    while len(batches) % num_replicas:
        largest = max(range(len(batches)), key=lambda i: len(batches[i]), default=None)
        if largest is None or len(batches[largest]) < 2:
            break
        batch = batches[largest]
        half = len(batch) // 2
        batches[largest : largest + 1] = [batch[:half], batch[half:]]
    if batches and len(batches) % num_replicas:
        shortfall = num_replicas - len(batches) % num_replicas
        batches += [batches[i % len(batches)] for i in range(shortfall)]
    return batches
