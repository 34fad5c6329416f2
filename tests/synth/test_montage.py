"""Montages without a corpus: clips of the synthetic voice between silences, their truth found by the energy rule."""

from __future__ import annotations

import numpy as np
import soundfile

from serkit_synth.montage import Clip, build_montage, speech_span, synthetic_talk


def test_speech_span_finds_the_voice_between_silences():
    samples, spans = synthetic_talk([(0.8, 1.5)], seed=1, tail_seconds=0.7)
    first, stop = speech_span(samples, 16000)
    (start, end), = spans
    # synthesize() leads in with up to 0.12 s of near-silence and fades the last syllable out
    assert start - 0.01 <= first / 16000 <= start + 0.15
    assert end - 0.25 <= stop / 16000 <= end + 0.03


def test_clips_keep_order_speech_spans_and_snr_and_a_seed_gives_the_same_recording(tmp_path):
    clips = []
    for index, (label, speaker) in enumerate([("ang", "a"), ("sad", "b"), ("neu", "a")]):
        samples, _ = synthetic_talk([(0.5, 1.0 + index / 2)], seed=index, tail_seconds=0.4)
        path = tmp_path / f"{index}.wav"
        soundfile.write(path, samples, 16000, subtype="FLOAT")
        clips.append(Clip(path, label, speaker))
    montage = build_montage(clips, seed=3)
    again = build_montage(clips, seed=3)
    assert np.array_equal(montage.samples, again.samples)
    assert not np.array_equal(montage.samples[:16000], build_montage(clips, seed=4).samples[:16000])
    assert [placed.clip for placed in montage.clips] == clips
    assert abs(np.abs(montage.samples).max() - 0.9) < 1e-6
    previous_end = 0.0
    for placed in montage.clips:
        assert previous_end + 0.3 <= placed.clip_start <= placed.start < placed.end <= placed.clip_end
        assert 10 <= placed.snr_db <= 20
        previous_end = placed.clip_end
    assert 0.3 <= montage.duration - previous_end <= 2.0
