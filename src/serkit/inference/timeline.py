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

from dataclasses import dataclass, field
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
        return {"start": self.start, "end": self.end, "speaker": self.speaker, "label": self.label,
                "probabilities": dict(self.probabilities)}


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
        """JSON-safe: only str, float, list, dict and None."""
        return {
            "source": self.source,
            "label": self.label,
            "probabilities": dict(self.probabilities),
            "duration": self.duration,
            "speech_seconds": self.speech_seconds,
            "segments": [segment.to_dict() for segment in self.segments],
        }


def timeline_from_spans(regions, owners: Sequence[int], probabilities: Sequence[np.ndarray],
                        span_seconds: Sequence[float], labels: Sequence[str], duration: float,
                        source: str | None = None) -> Timeline:
    """The recognizer's results -> a Timeline: regions (segments.Region), owners [N] (each predicted span's
    region, in order), probabilities N x [C] and span_seconds [N] of the spans. A region's probabilities are
    the duration-weighted mean of its spans' (one span unless it is longer than a window)."""
    spans_of: dict[int, list[int]] = {}
    for k, owner in enumerate(owners):
        spans_of.setdefault(owner, []).append(k)
    segments = []
    for index, region in enumerate(regions):
        mine = spans_of[index]
        values = weighted_mean([probabilities[k] for k in mine], [span_seconds[k] for k in mine])
        segments.append(Segment(region.start, region.end, argmax_label(labels, values),
                                probability_dict(labels, values), region.speaker))
    return Timeline.from_segments(segments, labels, duration, source)


def combine_spans(spans: Sequence[tuple[int, int]], probabilities: Sequence[np.ndarray], sample_rate: int,
                  labels: Sequence[str], duration: float, source: str | None = None, regions=None,
                  owners: Sequence[int] | None = None) -> Prediction | Timeline:
    """An input's predicted spans -> its result, one rule for `EmotionRecognizer` and the Ray engine.

    spans: N (first, stop) samples at `sample_rate`; probabilities: N x [C]. With `regions` (and `owners`, each
    span's region) the result is a Timeline; else one span is the whole input, and several are windows whose
    duration-weighted mean is the whole."""
    seconds = [(stop - first) / sample_rate for first, stop in spans]
    if regions is not None:
        return timeline_from_spans(regions, owners, probabilities, seconds, labels, duration, source)
    if len(spans) == 1:
        whole, windows = probabilities[0].astype(np.float64), []
    else:
        whole = weighted_mean(probabilities, seconds)
        windows = [WindowPrediction(first / sample_rate, stop / sample_rate, argmax_label(labels, p),
                                    probability_dict(labels, p)) for (first, stop), p in zip(spans, probabilities)]
    return Prediction(argmax_label(labels, whole), probability_dict(labels, whole), duration, source, windows)
