"""How well detected segments match known speech spans (one span per clip of a montage, serkit_synth/montage.py).

For each truth span, the detected segments that overlap it are its segments:

- missed: none overlaps it;
- onset error: start of its first segment minus the span's start (negative: the segment starts early);
  offset error: end of its last segment minus the span's end; `within` a tolerance when both are;
- split: more than one segment overlaps it (onset and offset are still its first and last segment's);
- merged: a segment that overlaps two or more spans (it would give two clips one emotion);
- false alarm: a segment that overlaps no span (noise or silence called speech).

>>> truth = [(1.0, 3.0), (5.0, 7.0), (9.0, 10.0)]
>>> score = score_segments(truth, [(0.9, 3.1), (4.8, 7.4), (11.0, 11.5)])
>>> score.missed, score.merged, score.false_alarms, round(score.within_fraction(0.25), 3)
(1, 0, 1, 0.333)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


@dataclass
class SpanMatch:
    """One truth span and what the segments made of it (errors in seconds; None when missed)."""

    start: float
    end: float
    onset_error: float | None
    offset_error: float | None
    segments: int

    def within(self, tolerance: float) -> bool:
        return self.segments > 0 and abs(self.onset_error) <= tolerance and abs(self.offset_error) <= tolerance


@dataclass
class SegmentationScore:
    spans: list[SpanMatch]
    merged: int  # segments overlapping two or more spans
    false_alarms: int  # segments overlapping no span
    segments: int  # segments in all
    merged_segments: list[tuple[float, float]] = field(default_factory=list)

    @property
    def missed(self) -> int:
        return sum(match.segments == 0 for match in self.spans)

    @property
    def split(self) -> int:
        return sum(match.segments > 1 for match in self.spans)

    def within_fraction(self, tolerance: float) -> float:
        """Share of all truth spans (missed ones count as outside) whose onset and offset are within tolerance."""
        return sum(match.within(tolerance) for match in self.spans) / len(self.spans)

    def errors(self, which: str) -> np.ndarray:
        """'onset' or 'offset' -> [N] errors in seconds of the spans that were found."""
        values = [getattr(match, f"{which}_error") for match in self.spans if match.segments]
        return np.asarray(values, np.float64)

    def outside(self, tolerance: float) -> list[SpanMatch]:
        return [match for match in self.spans if not match.within(tolerance)]


def score_segments(truth: Sequence[tuple[float, float]], detected: Sequence[tuple[float, float]]
                   ) -> SegmentationScore:
    """truth spans and detected segments, (start, end) seconds each -> the score (module docstring)."""
    detected = sorted((float(a), float(b)) for a, b in detected)
    overlaps = [[k for k, (a, b) in enumerate(detected) if a < end and b > start] for start, end in truth]
    spans = []
    for (start, end), mine in zip(truth, overlaps):
        if mine:
            spans.append(SpanMatch(start, end, detected[mine[0]][0] - start, detected[mine[-1]][1] - end, len(mine)))
        else:
            spans.append(SpanMatch(start, end, None, None, 0))
    covered = [sum(k in mine for mine in overlaps) for k in range(len(detected))]
    merged = [detected[k] for k, count in enumerate(covered) if count > 1]
    return SegmentationScore(spans, len(merged), sum(count == 0 for count in covered), len(detected), merged)
