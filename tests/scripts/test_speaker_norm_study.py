"""scripts/speaker_norm_study.py on a synthetic pooled file whose speakers shift every feature: the reference
rows each option picks, the standardised versions, and the probe over folds with and without it."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def study(load_script):
    return load_script("speaker_norm_study")


def _pooled(seed: int = 0) -> dict:
    """6 speakers x 12 clips, 2 classes told apart by layer 1's first value (+-1), every speaker's features
    shifted by a large offset of its own; 3 folds of 2 test, 2 validation and 2 training speakers; 1 copy."""
    rng = np.random.default_rng(seed)
    speakers = np.repeat([f"s{i}" for i in range(6)], 12)
    labels = np.array(["a", "b"] * 36)
    plain = rng.normal(scale=0.2, size=(72, 3, 8)) + rng.normal(scale=4.0, size=(6, 3, 8)).repeat(12, axis=0)
    plain[:, 1, 0] += np.where(labels == "a", 1.0, -1.0)
    ids = np.array([f"u{i}" for i in range(72)])
    pooled = {"ids": ids, "labels": labels, "speakers": speakers, "classes": np.array(["a", "b"]),
              "plain": plain.astype(np.float32),
              "copy1": (plain + rng.normal(scale=0.1, size=plain.shape)).astype(np.float32)}
    for fold in (1, 2, 3):
        test, valid = [f"s{2 * (fold - 1)}", f"s{2 * fold - 1}"], [f"s{2 * (fold % 3)}", f"s{2 * (fold % 3) + 1}"]
        pooled[f"f{fold}_test"] = ids[np.isin(speakers, test)]
        pooled[f"f{fold}_valid"] = ids[np.isin(speakers, valid)]
        pooled[f"f{fold}_train"] = ids[~np.isin(speakers, test + valid)]
    return pooled


def test_reference_rows_pick_all_some_or_labelled_clips_of_every_speaker(study):
    pooled = _pooled()
    speakers, labels = pooled["speakers"], pooled["labels"]
    assert study.reference_rows(speakers, labels, "none") is None
    assert study.reference_rows(speakers, labels, "all").all()
    some = study.reference_rows(speakers, labels, "random:3", seed=1)
    assert all(some[speakers == s].sum() == 3 for s in set(speakers))
    assert not np.array_equal(some, study.reference_rows(speakers, labels, "random:3", seed=2))
    np.testing.assert_array_equal(some, study.reference_rows(speakers, labels, "random:3", seed=1))
    np.testing.assert_array_equal(study.reference_rows(speakers, labels, "labels:a"), labels == "a")
    for bad, message in (("random:1", "expected all, none"), ("random:13", "has only 12 clips"),
                         ("labels:c", "no clip is labelled c"), ("first:3", "expected all, none")):
        with pytest.raises(SystemExit, match=message):
            study.reference_rows(speakers, labels, bad)


def test_every_version_is_standardised_by_its_own_reference_rows(study):
    from serkit.data.speaker_norm import speaker_standardise

    pooled = _pooled()
    out = study.normalised(pooled, 1, "labels:a")
    mask = pooled["labels"] == "a"
    for version in ("plain", "copy1"):
        expected = speaker_standardise(pooled[version], list(pooled["speakers"]), reference=mask)
        np.testing.assert_array_equal(out[version], expected)
        np.testing.assert_allclose(out[version][mask & (pooled["speakers"] == "s3")].mean(0), 0, atol=1e-5)
    centred = study.normalised(pooled, 1, "labels:a", scale=False)["plain"]
    np.testing.assert_allclose(centred, speaker_standardise(pooled["plain"], list(pooled["speakers"]), reference=mask,
                                                            scale=False))
    assert not np.allclose(centred, out["plain"], atol=1e-2)
    assert study.normalised(pooled, 1, "none")["plain"] is pooled["plain"]
    with pytest.raises(SystemExit, match="no copy2"):
        study.normalised(pooled, 2, "all")
    with pytest.raises(SystemExit, match="no speakers"):
        study.normalised({k: v for k, v in pooled.items() if k != "speakers"}, 1, "all")


def test_the_probe_over_folds_gains_when_the_speakers_offsets_are_removed(study, tmp_path, capsys):
    pooled = _pooled()
    plain = study.run_folds(study.normalised(pooled, 1, "none"), 1)
    normed = study.run_folds(study.normalised(pooled, 1, "all"), 1)
    assert [r["fold"] for r in normed] == [1, 2, 3]
    assert np.mean([r["test"] for r in normed]) >= 95
    assert np.mean([r["test"] for r in plain]) <= 85, [r["test"] for r in plain]
    path = tmp_path / "pooled.npz"
    np.savez(path, **pooled)
    assert study.main([str(path), "--copies", "1", "--reference", "random:6"]) == 0
    assert "reference random:6 copies 1: valid UA" in capsys.readouterr().out
    assert study.main([str(path), "--copies", "1", "--reference", "random:6", "--center-only"]) == 0
    assert "reference random:6 centred only copies 1: valid UA" in capsys.readouterr().out
    assert study.main([str(path), "--copies", "1", "--write", str(tmp_path / "n.npz")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "n.npz")["plain"], study.normalised(pooled, 1, "all")["plain"])
