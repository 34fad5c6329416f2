"""Speech segments for a timeline: from voice activity (shaped for emotion), or given (a diarisation or a table).

A Region is seconds [start, end) of an input, with the speaker when the source of the segments names one.
Voice activity becomes regions in five steps over the detector's frame probabilities p [F]:

  1. hysteresis: speech starts at a frame with p >= threshold and lasts until p < threshold - 0.15
     (silero's own rule): one doubtful frame inside a word does not cut it;
  2. pauses shorter than max_pause_seconds are bridged: a breath between phrases keeps one segment, since
     emotion is judged over phrases, not words;
  3. regions shorter than min_speech_seconds are dropped: clicks, coughs, lip smacks;
  4. regions longer than max_segment_seconds are cut at their least speech-like frame in the middle third,
     again until none is longer: a timeline of a monologue still shows how it changes;
  5. each region is widened by pad_seconds on either side (at most half the gap to a neighbour, never past
     the input's ends): silero's 32 ms frames start a little after a word's first sound (by 33 ms at the
     median on RAVDESS, benchmarks/timeline.py).

>>> p = np.array([0, 0, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0], dtype=np.float32)  # 1 s frames
>>> speech_regions(p, frame_seconds=1.0, duration=16.0,
...                settings=VadSettings(min_speech_seconds=1.5, max_pause_seconds=1.5, pad_seconds=0.0))
[Region(start=2.0, end=8.0, speaker=None)]

A region longer than the window the model takes (EmotionRecognizer.window_seconds) is predicted window by
window and its windows' probabilities are averaged by duration (region_spans), as for a whole long input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Protocol, Sequence

import numpy as np

from ..data.audio import END_TOLERANCE_S
from ..errors import ConfigError
from .inputs import AudioSource, Region
from .timeline import SpanPlan
from .windows import plan_spans


@dataclass(frozen=True)
class VadSettings:
    """How voice activity becomes segments (see the module docstring). Defaults: silero's own threshold; pauses
    under 0.5 s bridged (a breath inside a phrase); segments of at most 10 s, the model's default window, so a
    segment is one model call. Checked on RAVDESS sentences between silences with noise at 10-20 dB SNR
    (tests/inference/test_timeline_ravdess.py, benchmarks/timeline.py, which also shows the limits)."""

    threshold: float = 0.5
    min_speech_seconds: float = 0.25
    max_pause_seconds: float = 0.5
    max_segment_seconds: float = 10.0
    pad_seconds: float = 0.05

    # field -> (lowest, highest, what it is): the checks behind __post_init__ and check_field
    LIMITS = {
        "threshold": (0.01, 0.99, "a speech probability"),
        "min_speech_seconds": (0.0, 60.0, "seconds"),
        "max_pause_seconds": (0.0, 60.0, "seconds"),
        "max_segment_seconds": (1.0, 3600.0, "seconds"),
        "pad_seconds": (0.0, 5.0, "seconds"),
    }

    def __post_init__(self):
        for item in fields(self):
            self.check_field(item.name, getattr(self, item.name))

    @classmethod
    def check_field(cls, name: str, value: float) -> float:
        """value if it is a finite number within the field's limits, else a ConfigError naming the field."""
        lowest, highest, what = cls.LIMITS[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not lowest <= value <= highest:
            raise ConfigError(f"VAD setting {name} is {value!r}; expected {what} from {lowest:g} to {highest:g}")
        return float(value)


class Segmenter(Protocol):
    """Where the segments of an input come from: called with the opened input, -> its regions."""

    def __call__(self, source: AudioSource) -> list[Region]: ...


class VadSegmenter:
    """Regions of speech found by Silero VAD (the `vad` extra), shaped by `settings`."""

    def __init__(self, settings: VadSettings | None = None):
        from .vad import load_vad

        self.settings = settings or VadSettings()
        self.vad = load_vad()  # here, so that a missing extra fails before any file is read

    def __call__(self, source: AudioSource) -> list[Region]:
        from .vad import FRAME_SECONDS

        return speech_regions(self.vad.probabilities(source), FRAME_SECONDS, source.duration, self.settings)


class GivenRegions:
    """The same regions for every input (a Python caller's list); each is checked against the input's length."""

    def __init__(self, regions: Sequence[Region | tuple]):
        self.regions = [Region(*region) for region in regions]

    def __call__(self, source: AudioSource) -> list[Region]:
        name = source.name or "<array>"
        checked = []
        for index, region in enumerate(self.regions):
            start, end = float(region.start), float(region.end)
            if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
                raise ConfigError(f"segment {index} ({start}, {end}) of {name}: expected 0 <= start < end seconds")
            # timestamps are rounded (a diarisation writes 3 decimals): an end past the audio by up to
            # END_TOLERANCE_S is its end, as manifests have it
            if end > source.duration + END_TOLERANCE_S:
                raise ConfigError(f"segment {index} of {name}: end {end:g} s is past the end of the audio "
                                  f"({source.duration:.3f} s)")
            checked.append(Region(start, min(end, source.duration), region.speaker))
        return checked


def make_segmenter(segments, vad: VadSettings | None = None) -> Segmenter:
    """What `segments=` may be: 'vad', a .rttm / .csv file of segments, a list of (start, end[, speaker]) or a
    Segmenter -> a Segmenter."""
    from .segment_files import SegmentTable

    if isinstance(segments, str) and segments == "vad":
        return VadSegmenter(vad)
    if isinstance(segments, (str, bytes)) or hasattr(segments, "__fspath__"):
        return SegmentTable.from_file(segments)
    if callable(segments):
        return segments
    if isinstance(segments, (list, tuple)):
        return GivenRegions(segments)
    raise ConfigError(f"segments is {segments!r}; expected 'vad', a .rttm or .csv file of segments, or a list "
                      "of (start, end[, speaker]) in seconds")


# -- from frame probabilities to regions ---------------------------------------------------------------------

def speech_regions(probabilities: np.ndarray, frame_seconds: float, duration: float,
                   settings: VadSettings = VadSettings()) -> list[Region]:
    """Speech probabilities [F] per frame of frame_seconds -> regions (steps 1-5 of the module docstring)."""
    frames = hysteresis(np.asarray(probabilities, np.float32), settings.threshold, settings.threshold - 0.15)
    frames = bridge_pauses(frames, round(settings.max_pause_seconds / frame_seconds))
    frames = [(a, b) for a, b in frames if (b - a) * frame_seconds >= settings.min_speech_seconds]
    limit = max(1, math.floor(settings.max_segment_seconds / frame_seconds))
    frames = [piece for region in frames for piece in split_long(region, probabilities, limit)]
    return pad_regions([(a * frame_seconds, min(b * frame_seconds, duration)) for a, b in frames],
                       settings.pad_seconds, duration)


def hysteresis(probabilities: np.ndarray, threshold: float, release: float) -> list[tuple[int, int]]:
    """[F] -> frame ranges [(first, stop)] that start at p >= threshold and end before a frame with p < release."""
    regions, start = [], None
    for index, p in enumerate(probabilities.tolist()):
        if start is None and p >= threshold:
            start = index
        elif start is not None and p < release:
            regions.append((start, index))
            start = None
    if start is not None:
        regions.append((start, len(probabilities)))
    return regions


def bridge_pauses(regions: list[tuple[int, int]], max_gap: int) -> list[tuple[int, int]]:
    """Join consecutive frame ranges whose gap is shorter than max_gap frames."""
    joined: list[tuple[int, int]] = []
    for first, stop in regions:
        if joined and first - joined[-1][1] < max_gap:
            joined[-1] = (joined[-1][0], stop)
        else:
            joined.append((first, stop))
    return joined


def split_long(region: tuple[int, int], probabilities: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """A frame range longer than `limit` frames -> pieces of at most `limit`, each cut at the least speech-like
    frame of the middle third (ties go to the frame nearest the middle), so no piece is under a third of its
    parent."""
    first, stop = region
    if stop - first <= limit:
        return [region]
    low, high = first + (stop - first) // 3, stop - (stop - first) // 3
    candidates = np.asarray(probabilities[low:high], np.float64)
    middle = (first + stop) / 2
    # a tiny pull to the middle breaks ties (all 1.0 in continuous speech) without outweighing a real dip
    distance = np.abs(np.arange(low, high) - middle) / max(1, stop - first) * 1e-3
    cut = low + int(np.argmin(candidates + distance))
    return split_long((first, cut), probabilities, limit) + split_long((cut, stop), probabilities, limit)


def pad_regions(regions: list[tuple[float, float]], pad: float, duration: float) -> list[Region]:
    """Widen each region by `pad` seconds per side, at most half the gap to its neighbour, within [0, duration]."""
    padded = []
    for index, (start, end) in enumerate(regions):
        before = start - regions[index - 1][1] if index else math.inf
        after = regions[index + 1][0] - end if index + 1 < len(regions) else math.inf
        padded.append(Region(round(max(0.0, start - min(pad, before / 2)), 3),
                             round(min(duration, end + min(pad, after / 2)), 3)))
    return padded


# -- regions -> the pieces the model sees ------------------------------------------------------------------

def plan_source(source: AudioSource, window_seconds: float, hop_seconds: float, segmenter: Segmenter | None = None
                ) -> SpanPlan:
    """The pieces `source` is predicted in: its windows (segmenter None), or its segments' (region_spans)."""
    if segmenter is None:
        return SpanPlan(plan_spans(source.frames, source.sample_rate, window_seconds, hop_seconds), source.sample_rate)
    regions = segmenter(source)
    spans, owners = region_spans(regions, source.sample_rate, window_seconds, hop_seconds)
    return SpanPlan(spans, source.sample_rate, regions, owners)

def region_spans(regions: Sequence[Region], sample_rate: int, window_seconds: float, hop_seconds: float
                 ) -> tuple[list[tuple[int, int]], list[int]]:
    """-> (spans [(first, stop)] native-rate frames, owners [index of each span's region]): a region not longer
    than one window is one span, a longer one its windows (windows.plan_spans within it)."""
    spans, owners = [], []
    for index, region in enumerate(regions):
        first = round(region.start * sample_rate)
        stop = max(first + 1, round(region.end * sample_rate))  # a sliver still gets one sample
        for a, b in plan_spans(stop - first, sample_rate, window_seconds, hop_seconds):
            spans.append((first + a, first + b))
            owners.append(index)
    return spans, owners

