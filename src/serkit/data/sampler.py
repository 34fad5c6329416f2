"""Length-bucketed batches filled by audio duration, with per-rank shards for DDP.

Why not lhotse's DynamicBucketingSampler: it wants lhotse CutSets (Recording + Supervision manifests), so
we would convert our Utterance lists both ways and take on a large dependency for ~100 lines of logic.
This sampler needs only each utterance's duration.

One epoch (deterministic for (seed, epoch, epochs); every rank computes the same global list):
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
5. training (`epochs` given): step 3 packs a different number of batches in different epochs, but Lightning
   reads `len()` once, at its first epoch, and then ends every epoch at that count (a batch more is silently
   dropped) and validates only on reaching it (an epoch a batch short skips validation: its checkpoint is never
   ranked). So every epoch of 0..epochs-1 yields the same count, the most any of them packs: an epoch that packs
   fewer halves its largest batches (still within budget) until it has as many.

Used as `DataLoader(dataset, batch_sampler=sampler)`. Call `set_epoch(epoch)` before each epoch; Lightning
does it by itself (it calls `loader.batch_sampler.sampler.set_epoch`, hence the `sampler` property). With
DDP, give the Trainer `use_distributed_sampler=False` so it keeps this sampler. `len()` is exact for the current
epoch; with `epochs` it is the same for all of them (past `epochs`, an epoch may pack more).
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
                 num_buckets: int = DEFAULT_NUM_BUCKETS, num_replicas: int = 1, rank: int = 0,
                 epochs: int | None = None):
        if max_batch_seconds <= 0:
            raise ValueError(f"max_batch_seconds must be > 0, got {max_batch_seconds}")
        if epochs is not None and epochs < 1:
            raise ValueError(f"epochs must be >= 1 (or None), got {epochs}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        self.durations = np.asarray(durations, dtype=np.float64)
        self.max_batch_seconds, self.shuffle, self.seed = float(max_batch_seconds), shuffle, seed
        self.num_buckets, self.num_replicas, self.rank = max(1, num_buckets), num_replicas, rank
        self.epoch, self.epochs = 0, epochs
        self._cache: tuple[int, list[list[int]]] | None = None
        self._count: int | None = None  # every epoch's global batch count, with `epochs` (docstring, step 5)

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
            batches = _equalise(self._global_batches(self.epoch), self.num_replicas, self._epoch_count())
            self._cache = (self.epoch, batches[self.rank :: self.num_replicas])
        return self._cache[1]

    def _epoch_count(self) -> int:
        """The global batch count every epoch is brought up to: the most any of the `epochs` packs (0: none)."""
        if self.epochs is None or not self.shuffle:  # without shuffle every epoch packs the same batches
            return 0
        if self._count is None:
            self._count = max(len(_equalise(self._global_batches(e), self.num_replicas)) for e in range(self.epochs))
        return self._count

    def _global_batches(self, epoch: int) -> list[list[int]]:
        """Every rank's batches for `epoch`, in the order they will be dealt."""
        rng = np.random.default_rng([self.seed, epoch])
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


def _equalise(batches: list[list[int]], num_replicas: int, at_least: int = 0) -> list[list[int]]:
    """Make len(batches) a multiple of num_replicas and >= at_least (itself a multiple): halve the largest batches,
    else (every batch a single utterance) repeat batches."""
    batches = list(batches)
    while len(batches) % num_replicas or len(batches) < at_least:
        largest = max(range(len(batches)), key=lambda i: len(batches[i]), default=None)
        if largest is None or len(batches[largest]) < 2:
            break
        batch = batches[largest]
        half = len(batch) // 2
        batches[largest : largest + 1] = [batch[:half], batch[half:]]
    if batches and (len(batches) % num_replicas or len(batches) < at_least):
        target = max(at_least, -(-len(batches) // num_replicas) * num_replicas)
        batches += [batches[i % len(batches)] for i in range(target - len(batches))]
    return batches
