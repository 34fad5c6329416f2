"""What a prediction returns: typed, JSON-safe results.

    Prediction          the whole input: label, per-class probabilities, duration, source, windows
    WindowPrediction    one window of a long input (start / end in seconds)
    PredictionFailure   an input that could not be predicted (only with skip_errors=True)

>>> p = Prediction(label="hap", probabilities={"neu": 0.25, "hap": 0.75}, duration=2.5, source="a.wav")
>>> p.to_dict()["label"], p.windows
('hap', [])
>>> round(sum(p.probabilities.values()), 6)
1.0
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np


@dataclass
class WindowPrediction:
    """One window of a long input: seconds `start` to `end` of it, its argmax label and probabilities."""

    start: float
    end: float
    label: str
    probabilities: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Prediction:
    """The whole input. label: argmax of `probabilities` (per class, sums to 1); duration: seconds of audio;
    source: the file path (None for arrays); windows: one per window of an input longer than one window,
    else empty (the whole-input probabilities are then the duration-weighted mean of the windows')."""

    label: str
    probabilities: dict[str, float]
    duration: float
    source: str | None = None
    windows: list[WindowPrediction] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-safe: only str, float, list, dict and None; source first."""
        return {"source": self.source, **asdict(self)}


@dataclass
class PredictionFailure:
    """An input that failed (returned instead of raising only when the caller asked for skip_errors):
    source: its path (None for arrays), error: the message of the serkit error, which names the file."""

    source: str | None
    error: str

    def to_dict(self) -> dict:
        return asdict(self)


def probability_dict(labels: Sequence[str], probabilities: np.ndarray) -> dict[str, float]:
    """probabilities [C] in label order -> {label: float}."""
    return {label: float(p) for label, p in zip(labels, probabilities)}


def argmax_label(labels: Sequence[str], probabilities: np.ndarray) -> str:
    return labels[int(np.argmax(probabilities))]
