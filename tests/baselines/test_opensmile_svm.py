"""openSMILE eGeMAPS + linear SVM baseline on a tiny synthetic manifest corpus (two 'emotions' that differ in
pitch and loudness, four speakers): it runs the corpus's own folds, picks C on validation, learns, and reuses
its feature cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("opensmile", reason="the baseline needs the optional package opensmile (pip install serkit[baseline])")

from serkit.baselines import opensmile_svm  # noqa: E402
from serkit.cli import main  # noqa: E402
from serkit.data.config import DataConfig  # noqa: E402


def test_runs_every_fold_and_learns(manifest, tmp_path):
    summary, fits = opensmile_svm.run_opensmile_svm(DataConfig(corpus="manifest", root=str(manifest), check=False), tmp_path, c_grid=(1e-3, 1e-1))
    assert [f.fold for f in fits] == [1, 2, 3, 4]  # one fold per speaker
    for fit in fits:
        assert fit.c in (1e-3, 1e-1) and set(fit.valid_ua_by_c) == {1e-3, 1e-1}
        assert fit.valid.ua == max(fit.valid_ua_by_c.values())  # C chosen by validation UA
        assert fit.test.n == 6 and fit.test.ua >= 0.8, f"fold {fit.fold}: test UA {fit.test.ua}"
    assert sorted(summary.labels) == ["calm", "excited"]
    for name in ("cv.md", "cv.csv", "cv.json", "baseline.json", "egemaps.npz", "confusion.png"):
        assert (tmp_path / name).is_file(), name
    record = json.loads((tmp_path / "baseline.json").read_text())
    assert record["per_fold"][0]["c"] == fits[0].c and len(record["per_fold"]) == 4


def test_features_are_cached_and_follow_file_changes(manifest, tmp_path, monkeypatch, voice):
    from serkit.data.prepare import read_corpus

    prepared = read_corpus(DataConfig(corpus="manifest", root=str(manifest), check=False)).prepared
    utterances = prepared.utterances[:3]
    cache = tmp_path / "features.npz"
    first = opensmile_svm.egemaps_features(utterances, cache)
    assert first.shape == (3, 88) and np.isfinite(first).all()
    assert not np.allclose(first[0], first[1])
    with monkeypatch.context() as patch:  # a second call reads every row from the cache
        patch.setattr(opensmile_svm, "_smile", lambda: pytest.fail("features were recomputed"))
        assert np.array_equal(opensmile_svm.egemaps_features(utterances, cache), first)
    path = utterances[0].path
    sf.write(path, voice(400, 0.9, seed=99), 16000)  # the file changes: its row is recomputed
    again = opensmile_svm.egemaps_features(utterances, cache)
    assert not np.allclose(again[0], first[0]) and np.array_equal(again[1:], first[1:])


def test_command_prints_the_table_and_refuses_bad_input(manifest, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["baseline", "opensmile-svm", "--corpus", "manifest", "--root", str(manifest), "--folds", "1,2",
                 "--c", "0.01", "--out", str(out), "--features", str(tmp_path / "shared.npz")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "mean ± std" in printed and "C chosen per fold: 1: 0.01, 2: 0.01" in printed
    assert json.loads((out / "baseline.json").read_text())["folds"] == [1, 2]
    assert (tmp_path / "shared.npz").is_file() and not (out / "egemaps.npz").exists()
    assert main(["baseline", "opensmile-svm", "--corpus", "manifest", "--root", str(manifest),
                 "--folds", "9", "--out", str(out)]) == 1
    assert "folds [9] do not exist" in capsys.readouterr().err
    assert main(["baseline", "opensmile-svm", "--corpus", "manifest", "--root", str(manifest), "--c", "x",
                 "--out", str(out)]) == 1
    assert "--c 'x': expected comma-separated numbers" in capsys.readouterr().err
    for probe_only in (["--refit"], ["--pooling", "stats"], ["--wave-variants", "2"], ["--wave-gain-db", "0,0"]):
        # the probe's options, refused rather than ignored
        assert main(["baseline", "opensmile-svm", "--corpus", "manifest", "--root", str(manifest), *probe_only,
                     "--out", str(out)]) == 1
        assert "--refit, --pooling and --wave-* apply to the probe" in capsys.readouterr().err


def test_speaker_norm_fits_standardised_rows_and_keeps_the_cache_raw(manifest, tmp_path, monkeypatch, capsys):
    from serkit.data.prepare import read_corpus
    from serkit.data.speaker_norm import speaker_standardise

    seen = []
    fit = opensmile_svm.fit_fold
    monkeypatch.setattr(opensmile_svm, "fit_fold", lambda features, *a: (seen.append(features), fit(features, *a))[1])
    out = tmp_path / "run"
    assert main(["baseline", "opensmile-svm", "--corpus", "manifest", "--root", str(manifest), "--folds", "1",
                 "--c", "0.1", "--speaker-norm", "--out", str(out)]) == 0
    assert json.loads((out / "baseline.json").read_text())["speaker_norm"] is True
    utts = read_corpus(DataConfig(corpus="manifest", root=str(manifest), check=False)).prepared.utterances
    raw = opensmile_svm.egemaps_features(utts, out / "egemaps.npz")  # the cache holds the raw functionals
    expected = speaker_standardise(raw, [u.speaker for u in utts])
    row = {u.id: i for i, u in enumerate(utts)}
    from serkit.baselines.folds import BaselineFolds

    ids = BaselineFolds(DataConfig(corpus="manifest", root=str(manifest), check=False)).part_ids(1)
    for part in ("train", "valid", "test"):
        np.testing.assert_allclose(seen[0][part], expected[[row[u] for u in ids[part]]], atol=1e-5)
    assert not np.allclose(raw, expected, atol=1e-2)  # the cache holds the functionals, not normalised ones
    monkeypatch.chdir(tmp_path)  # without --out: a folder of its own
    assert main(["baseline", "opensmile-svm", "--corpus", "manifest", "--root", str(manifest), "--folds", "1",
                 "--c", "0.1", "--speaker-norm", "--features", str(out / "egemaps.npz")]) == 0
    assert json.loads((tmp_path / "runs" / "baseline_opensmile_svm_manifest_spknorm" / "baseline.json").read_text()
                      )["speaker_norm"] is True
