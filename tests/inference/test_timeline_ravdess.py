"""Speech segmentation on real speech: a 2-3 minute recording made of 32 RAVDESS clips (8 emotions, 24 actors
taking turns), separated by random silences of 0.3-2 s, with pink background noise at 10-20 dB SNR per clip
(serkit_synth/montage.py, seed 0). Truth is each clip's speech span found on the clean clip by an energy rule
independent of the detector: 25 ms frames above -25 dB relative to the clip's loudest frame, runs joined
across gaps under 0.3 s, runs under 0.1 s dropped (montage.speech_span says why -25 dB).

The detected segments (Silero VAD with VadSettings' defaults) must match: onset and offset within 0.25 s for
at least 90 % of the clips, no segment covering two clips, no clip missed. benchmarks/timeline.py prints the
same figures for more seeds: on 10 seeds the onset/offset criterion holds on 8 and no clip is missed on 7;
the misses are shouted RAVDESS clips (strong anger or fear, mostly actor 6) that Silero scores below 0.5
even without noise.

Skips cleanly without ../shared (a user's clone) or without the vad extra."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("silero_vad", reason="the vad extra (pip install 'serkit[vad]') is not installed")

TOLERANCE_S = 0.25
CLIPS, SEED = 32, 0
RAVDESS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ravdess"


@pytest.fixture(scope="module")
def montage():
    from serkit.data.corpora.ravdess import Ravdess
    from serkit_synth.montage import build_montage, pick_clips

    if not RAVDESS.is_dir():
        pytest.skip(f"optional resource {RAVDESS} is absent (only developers' and CI machines have ../shared)")
    utterances = Ravdess.prepare(RAVDESS).utterances
    return build_montage(pick_clips(utterances, CLIPS, SEED), SEED)  # the first seed, not a chosen one


def test_the_recording_is_what_the_test_claims(montage):
    assert 120 <= montage.duration <= 180
    clips = [placed.clip for placed in montage.clips]
    assert len(clips) == CLIPS and len({c.label for c in clips}) == 8 and len({c.speaker for c in clips}) == 24
    assert all(a.label != b.label and a.speaker != b.speaker for a, b in zip(clips, clips[1:]))
    gaps = [b.clip_start - a.clip_end for a, b in zip(montage.clips, montage.clips[1:])]
    assert 0.3 <= min(gaps) and max(gaps) <= 2.0
    assert all(10 <= placed.snr_db <= 20 for placed in montage.clips)


def test_detected_segments_match_each_clips_speech(montage):
    from serkit.evaluation.segmentation import score_segments
    from serkit.inference.inputs import ArraySource
    from serkit.inference.segments import VadSegmenter

    regions = VadSegmenter()(ArraySource(montage.samples, montage.sample_rate))
    score = score_segments([(placed.start, placed.end) for placed in montage.clips],
                           [(region.start, region.end) for region in regions])
    outside = [(round(m.start, 2), m.onset_error, m.offset_error) for m in score.outside(TOLERANCE_S)]
    assert score.missed == 0, f"clips missed: {outside}"
    assert score.merged == 0, f"segments covering two clips: {score.merged_segments}"
    assert score.within_fraction(TOLERANCE_S) >= 0.9, f"outside {TOLERANCE_S} s: {outside}"
    assert score.false_alarms == 0
    assert all(region.end - region.start <= 10.0 + 1e-6 for region in regions)
    onsets = score.errors("onset")
    assert abs(np.median(onsets)) <= 0.1  # no systematic lead or lag
