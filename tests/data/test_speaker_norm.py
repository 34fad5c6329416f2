"""Speaker normalisation (data/speaker_norm.py): each speaker's rows standardised by that speaker's own rows."""

from __future__ import annotations

import numpy as np
import pytest

from serkit.data.speaker_norm import speaker_standardise
from serkit.errors import ConfigError


def _rows(seed=0, shape=(3, 4)):
    rng = np.random.default_rng(seed)
    speakers = ["a"] * 5 + ["b"] * 7 + ["c"] * 4
    return rng.normal(size=(len(speakers), *shape)) * 3 + 10, speakers


def test_each_speaker_has_zero_mean_and_unit_std_per_element():
    x, speakers = _rows()
    out = speaker_standardise(x, speakers)
    assert out.shape == x.shape and out.dtype == np.float32
    for speaker in set(speakers):
        mine = out[np.array(speakers) == speaker]
        np.testing.assert_allclose(mine.mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(mine.std(0), 1, atol=1e-3)


def test_a_speakers_offset_and_scale_vanish_and_other_speakers_do_not_matter():
    """What it is for: a per-speaker affine change of the features (a voice higher, louder, ...) leaves the
    standardised rows as they were, and one speaker's rows never depend on another's."""
    x, speakers = _rows()
    base = speaker_standardise(x, speakers)
    b = np.array(speakers) == "b"
    shifted = x.copy()
    shifted[b] = shifted[b] * 2.5 - 40  # speaker b's every feature scaled and shifted
    np.testing.assert_allclose(speaker_standardise(shifted, speakers), base, atol=1e-4)
    others = x.copy()
    others[~b] = np.random.default_rng(1).normal(size=others[~b].shape)  # everyone else's rows replaced
    np.testing.assert_array_equal(speaker_standardise(others, speakers)[b], base[b])


def test_a_constant_feature_becomes_zero_not_inf():
    x, speakers = _rows()
    x[:, 0, 0] = 7.0
    out = speaker_standardise(x, speakers)
    assert np.isfinite(out).all() and (out[:, 0, 0] == 0).all()


def test_refuses_speakers_with_one_clip_naming_them_and_a_row_count_mismatch():
    x, speakers = _rows()
    speakers = speakers[:-1] + ["lonely"]
    with pytest.raises(ConfigError, match=r"2 reference clips of every speaker; 1 speaker\(s\) have fewer: 'lonely' \(1\)"):
        speaker_standardise(x, speakers, "the corpus")
    many = [f"s{i}" for i in range(len(x))]
    with pytest.raises(ConfigError, match=r"16 speaker\(s\) have fewer: .* and 11 more"):
        speaker_standardise(x, many)
    with pytest.raises(ConfigError, match="of wave copy 2: 16 rows but 3 speakers"):
        speaker_standardise(x, ["a", "b", "c"], "wave copy 2")


def test_a_reference_subset_gives_the_statistics_and_every_row_is_standardised_by_them():
    x, speakers = _rows()
    reference = np.zeros(len(x), dtype=bool)
    reference[[0, 2, 5, 6, 7, 12, 15]] = True  # a, a, b, b, b, c, c
    out = speaker_standardise(x, speakers, reference=reference)
    for speaker in set(speakers):
        rows = np.array(speakers) == speaker
        ref = x[rows & reference]
        np.testing.assert_allclose(out[rows], (x[rows] - ref.mean(0)) / (ref.std(0) + 1e-5), rtol=1e-5, atol=1e-5)
    assert not np.allclose(out, speaker_standardise(x, speakers), atol=1e-2)
    reference[12] = False  # c keeps one reference clip
    with pytest.raises(ConfigError, match=r"1 speaker\(s\) have fewer: 'c' \(1\)"):
        speaker_standardise(x, speakers, reference=reference)
    with pytest.raises(ConfigError, match=r"bool mask of 16 rows, got bool of shape \(3,\)"):
        speaker_standardise(x, speakers, reference=np.ones(3, dtype=bool))


def test_scale_false_centres_each_speaker_and_keeps_the_scale():
    x, speakers = _rows()
    out = speaker_standardise(x, speakers, scale=False)
    for speaker in set(speakers):
        rows = np.array(speakers) == speaker
        np.testing.assert_allclose(out[rows], x[rows] - x[rows].mean(0), atol=1e-4)


def test_refuses_non_finite_values_and_a_mask_that_is_not_bool_naming_them():
    x, speakers = _rows()
    x[7, 1, 2] = np.nan
    with pytest.raises(ConfigError, match=r"1 row\(s\) hold NaN or inf values, the first row 7 \(speaker 'b'\)"):
        speaker_standardise(x, speakers, "the corpus")
    x, speakers = _rows()
    with pytest.raises(ConfigError, match="reference must be a bool mask of 16 rows, got int64"):
        speaker_standardise(x, speakers, reference=np.ones(16, dtype=np.int64))
