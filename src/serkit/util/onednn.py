"""oneDNN's primitive cache, kept small in the processes that predict and train.

oneDNN (torch's CPU convolutions) keeps the kernels it built for each input shape, up to 1024 of them by
default. A process that predicts files of every length meets a new shape with nearly every file (group-norm
wav2vec2 models even run one utterance per call), so that cache only grows, and each entry holds memory:
`serkit predict --threads 1` over 600 short files of a wav2vec2-shaped model peaked at ~1.2 GB, against
~0.65 GB with 64 entries, at the same speed (benchmarks/predict_files_memory.py). Training meets the same:
length buckets decide which clips share a batch, not its width (the longest clip's, also in Whisper's crop
mode, which runs a batch at that width rather than the 30 s window), so nearly every batch is a new shape;
`run_cv` caps the cache too (benchmarks/train_memory.py).
"""

from __future__ import annotations

import os

CACHE_CAPACITY = 64
ENV = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
LEGACY_ENV = "DNNL_PRIMITIVE_CACHE_CAPACITY"  # oneDNN reads this name when the first is not set


def cap_primitive_cache(capacity: int = CACHE_CAPACITY) -> None:
    """Ask oneDNN for at most `capacity` cached primitives, unless the user set either of its variables.
    oneDNN reads them once, when this process builds its first primitive: call this before any model runs
    (later, it changes only what child processes inherit)."""
    if ENV not in os.environ and LEGACY_ENV not in os.environ:
        os.environ[ENV] = str(capacity)
