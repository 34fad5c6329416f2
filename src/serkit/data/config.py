"""The data section of an experiment config."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import ConfigError
from .sampler import DEFAULT_NUM_BUCKETS


@dataclass
class DataConfig:
    """corpus: registry key ("iemocap", "ravdess", "manifest"); root: its folder (or the manifest file).
    labels: the class set in index order (empty: the corpus default); label_map: merge/rename labels
    before filtering (e.g. {exc: hap}); options: corpus-specific keyword arguments for prepare/split
    (e.g. valid: superb | speaker for IEMOCAP). max_batch_seconds: audio per batch (bucketed sampler);
    num_buckets: length buckets of that sampler (more: less padding, less shuffling).
    check: decode every utterance before training and refuse the corpus if any file is missing, unreadable or
    undecodable (results cached in the run dir, see data/check.py). skip: a skip list (one audio path per
    line, as `serkit data --check --write-skip FILE` writes it): those files are left out of training.
    num_workers: DataLoader worker processes (0: load in the training process).
    Every number is checked against its range when the config is built: a bad value names its key."""

    corpus: str = "iemocap"
    root: str | None = None
    labels: list[str] = field(default_factory=list)
    label_map: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    max_batch_seconds: float = 60.0
    num_buckets: int = DEFAULT_NUM_BUCKETS
    num_workers: int = 0
    check: bool = True
    skip: str | None = None

    def __post_init__(self):
        ranges = {  # key -> (check, what is expected)
            "max_batch_seconds": (math.isfinite(self.max_batch_seconds) and self.max_batch_seconds > 0,
                                  "a positive, finite number of seconds of audio per batch"),
            "num_buckets": (self.num_buckets >= 1, "1 or more length buckets"),
            "num_workers": (self.num_workers >= 0, "0 (load in the training process) or more worker processes"),
        }
        for key, (ok, expected) in ranges.items():
            if not ok:
                raise ConfigError(f"key 'data.{key}' is {getattr(self, key)!r}; expected {expected}")
        for key in ("labels", "label_map"):  # one place for the class set: its own keys, not a corpus option
            if key in self.options:
                raise ConfigError(f"key 'data.options.{key}': the class set goes in data.{key} "
                                  f"(--{key.replace('_', '-')} on the command line), not among the corpus options")
