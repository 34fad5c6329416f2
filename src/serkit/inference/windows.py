"""Sliding windows over long inputs, and how window results combine into the whole input's.

An input not longer than one window is predicted whole. A longer one is cut into windows of `window` seconds
starting every `hop` seconds; the last window ends at the end of the input (it is then shorter, but longer
than window - hop, since the window before it had not reached the end). The whole-input probabilities are
the duration-weighted mean of the windows', so a short last window counts for what it covers.

>>> plan_spans(frames=25, sample_rate=1, window_seconds=10, hop_seconds=5)
[(0, 10), (5, 15), (10, 20), (15, 25)]
>>> plan_spans(frames=8, sample_rate=1, window_seconds=10, hop_seconds=5)
[(0, 8)]
>>> weighted_mean([[1.0, 0.0], [0.0, 1.0]], [3.0, 1.0]).tolist()
[0.75, 0.25]
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..errors import ConfigError

DEFAULT_WINDOW_SECONDS = 10.0
DEFAULT_HOP_SECONDS = 5.0
# Below these, windows stop making sense for emotion (a few pitch periods) and their number explodes: a
# window of 1e-9 s made one window per sample (52,855 of them in the case that found it).
MIN_WINDOW_SECONDS = 0.1
MIN_HOP_SECONDS = 0.01


def check_windowing(window_seconds: float, hop_seconds: float,
                    names: tuple[str, str] = ("window_seconds", "hop_seconds")) -> None:
    """ConfigError unless MIN_WINDOW_SECONDS <= window_seconds and MIN_HOP_SECONDS <= hop_seconds <=
    window_seconds (all finite). names: what the caller calls the two (the command line: --window, --hop)."""
    window_name, hop_name = names
    if not (math.isfinite(window_seconds) and window_seconds >= MIN_WINDOW_SECONDS):
        raise ConfigError(f"{window_name} is {window_seconds}; expected a number of seconds >= "
                          f"{MIN_WINDOW_SECONDS} (shorter windows hold too little speech to judge)")
    if not (math.isfinite(hop_seconds) and MIN_HOP_SECONDS <= hop_seconds <= window_seconds):
        raise ConfigError(
            f"{hop_name} is {hop_seconds}; expected a number of seconds >= {MIN_HOP_SECONDS}, at most "
            f"{window_name} ({window_seconds}) so that the windows cover the whole input"
        )


def plan_spans(frames: int, sample_rate: int, window_seconds: float, hop_seconds: float) -> list[tuple[int, int]]:
    """[(first, stop)] frames (native rate) of each window; [(0, frames)] when the input fits one window."""
    window = max(1, round(window_seconds * sample_rate))
    hop = max(1, round(hop_seconds * sample_rate))
    if frames <= window:
        return [(0, frames)]
    spans, first = [], 0
    while True:
        stop = min(first + window, frames)
        spans.append((first, stop))
        if stop >= frames:
            return spans
        first += hop


def weighted_mean(values: Sequence[Sequence[float]] | np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """values [N, C], weights [N] (window durations) -> [C] weighted mean (float64)."""
    values = np.asarray(values, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    return (values * weights[:, None]).sum(axis=0) / weights.sum()
