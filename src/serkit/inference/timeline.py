"""What a timeline returns: emotion per speech segment, and the whole input's summary over its speech.

    Segment    seconds start..end of the input, speaker (when the segments gave one), label, probabilities
    Timeline   the whole input: label and probabilities (duration-weighted mean of the segments'), duration,
               speech_seconds (the segments' total), source, segments

An input where no speech was found has no segments, label None and empty probabilities: it is not guessed.
Overlapping segments (two speakers of a diarisation at once) each count for their own duration.

>>> a = Segment(0.5, 2.5, "hap", {"neu": 0.2, "hap": 0.8})
>>> b = Segment(3.0, 4.0, "neu", {"neu": 0.8, "hap": 0.2}, speaker="bob")
>>> t = Timeline.from_segments([a, b], labels=["neu", "hap"], duration=5.0, source="talk.wav")
>>> t.label, {k: round(v, 3) for k, v in t.probabilities.items()}, t.speech_seconds
('hap', {'neu': 0.4, 'hap': 0.6}, 3.0)
>>> t.to_dict()["segments"][1]["speaker"]
'bob'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from .results import Prediction, WindowPrediction, argmax_label, probability_dict
from .windows import weighted_mean


@dataclass
class Segment:
    """One speech segment: seconds `start` to `end` of the input, its argmax label and probabilities."""

    start: float
    end: float
    label: str
    probabilities: dict[str, float]
    speaker: str | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "speaker": self.speaker, **asdict(self)}


@dataclass
class Timeline:
    """The whole input as segments (see the module docstring)."""

    label: str | None
    probabilities: dict[str, float]
    duration: float
    speech_seconds: float
    source: str | None = None
    segments: list[Segment] = field(default_factory=list)

    @classmethod
    def from_segments(cls, segments: list[Segment], labels: Sequence[str], duration: float,
                      source: str | None = None) -> "Timeline":
        weights = [segment.duration for segment in segments]
        if not segments or sum(weights) <= 0:
            return cls(None, {}, duration, 0.0, source, list(segments))
        values = np.array([[segment.probabilities[label] for label in labels] for segment in segments])
        whole = weighted_mean(values, weights)
        return cls(argmax_label(labels, whole), probability_dict(labels, whole), duration,
                   round(float(sum(weights)), 6), source, list(segments))

    def to_dict(self) -> dict:
        """JSON-safe: only str, float, list, dict and None; source first."""
        return {"source": self.source, **asdict(self), "segments": [segment.to_dict() for segment in self.segments]}


@dataclass
class SpanPlan:
    """The pieces an input is predicted in, and what the model said of each: one rule for `EmotionRecognizer`
    and the Ray engine (segments.plan_source makes it).

    spans: N (first, stop) frames at the input's native `sample_rate`. With segments, `regions` (segments.Region)
    and owners [N]: the region each span belongs to (several spans when a region is longer than a window).
    probabilities / embeddings: per span [C] / [E], filled in as batches run."""

    spans: list[tuple[int, int]]
    sample_rate: int
    regions: list | None = None
    owners: list[int] | None = None
    probabilities: list = field(init=False)
    embeddings: list = field(init=False)

    def __post_init__(self):
        self.probabilities = [None] * len(self.spans)
        self.embeddings = [None] * len(self.spans)

    def seconds(self) -> list[float]:
        return [(stop - first) / self.sample_rate for first, stop in self.spans]

    def per_region(self, values: Sequence[np.ndarray]) -> list[np.ndarray]:
        """values N x [D], one per span -> one [D] per region: the duration-weighted mean of its spans'."""
        seconds, groups = self.seconds(), [[] for _ in self.regions]
        for k, owner in enumerate(self.owners):
            groups[owner].append(k)
        return [weighted_mean([values[k] for k in group], [seconds[k] for k in group]) for group in groups]

    def result(self, labels: Sequence[str], duration: float, source: str | None = None) -> Prediction | Timeline:
        """With regions a Timeline; else one span is the whole input, and several are windows whose
        duration-weighted mean is the whole."""
        if self.regions is not None:
            segments = [Segment(region.start, region.end, argmax_label(labels, p), probability_dict(labels, p),
                                region.speaker)
                        for region, p in zip(self.regions, self.per_region(self.probabilities))]
            return Timeline.from_segments(segments, labels, duration, source)
        if len(self.spans) == 1:
            whole, windows = self.probabilities[0].astype(np.float64), []
        else:
            whole = weighted_mean(self.probabilities, self.seconds())
            windows = [WindowPrediction(first / self.sample_rate, stop / self.sample_rate, argmax_label(labels, p),
                                        probability_dict(labels, p))
                       for (first, stop), p in zip(self.spans, self.probabilities)]
        return Prediction(argmax_label(labels, whole), probability_dict(labels, whole), duration, source, windows)

    def embedding(self) -> np.ndarray:
        """-> [E] float32: the duration-weighted mean of the spans' embeddings."""
        return weighted_mean(self.embeddings, self.seconds()).astype(np.float32)

    def row_embeddings(self) -> list[np.ndarray | None]:
        """The embedding of each row of `result` as output.prediction_rows writes it: the whole input first
        (None when it has no spans: no speech found), then each window (its own) or segment (per_region)."""
        if self.regions is not None:
            parts = self.per_region(self.embeddings)
        else:
            parts = self.embeddings if len(self.spans) > 1 else []
        return [self.embedding() if self.spans else None, *(np.asarray(part, np.float32) for part in parts)]
