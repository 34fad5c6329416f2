"""The linear probe on a tiny synthetic corpus and a tiny random wav2vec2 saved by the test: it runs the
corpus's own folds, chooses layer view and C on validation only, learns, and shares `serkit cv`'s feature cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from serkit.baselines import probe
from serkit.cli import main
from serkit.data.config import DataConfig
from serkit.data.prepare import read_corpus
from serkit.evaluation.metrics import compute_metrics
from serkit.evaluation.prediction_table import read_predictions
from serkit.upstream import UpstreamConfig
from serkit.upstream.hf import HFConfig
from serkit.upstream.tiny import save_tiny_speech_model


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return save_tiny_speech_model(tmp_path_factory.mktemp("tiny_w2v2"), "wav2vec2")


def _cfg(encoder) -> UpstreamConfig:
    return HFConfig(source=str(encoder), layers="weighted", freeze="all")


def test_probe_runs_every_fold_chooses_on_validation_and_learns(manifest, encoder, tmp_path):
    torch.set_num_threads(1)
    summary, fits = probe.run_probe(DataConfig(corpus="manifest", root=str(manifest), check=False), tmp_path, _cfg(encoder), c_grid=(1e-2, 1.0))
    assert [f.fold for f in fits] == [1, 2, 3, 4]
    num_layers = 3  # input embedding + 2 transformer layers
    for fit in fits:
        assert set(fit.valid_ua) == {"last", "mean", *(f"layer_{i}" for i in range(num_layers))}
        assert all(set(by_c) == {1e-2, 1.0} for by_c in fit.valid_ua.values())
        assert fit.valid.ua == max(max(by_c.values()) for by_c in fit.valid_ua.values())
        assert fit.valid_ua[fit.view][fit.c] == fit.valid.ua
    # pitch and loudness survive even a random encoder's mean-pooled layers
    assert summary.stat("ua").mean >= 0.65, [f.test.ua for f in fits]  # chance: 0.5
    record = json.loads((tmp_path / "probe.json").read_text())
    assert [r["view"] for r in record["per_fold"]] == [f.view for f in fits] and record["num_layers"] == num_layers
    assert record["trainable_params"] == (32 + 1) * 2 and record["cpu_seconds"] > 0
    assert (tmp_path / "cv.md").is_file() and (tmp_path / "confusion.png").is_file()
    for fit in fits:  # per-utterance predictions (for `serkit ensemble`) give the reported scores
        labels, parts = read_predictions(tmp_path / f"fold_{fit.fold}" / "predictions.csv")
        for name, metrics in (("valid", fit.valid), ("test", fit.test)):
            assert compute_metrics(parts[name].probabilities.argmax(-1), parts[name].targets, labels).ua == metrics.ua
            np.testing.assert_allclose(parts[name].probabilities.sum(-1), 1, atol=1e-4)


def test_the_choice_never_reads_test_labels(manifest, encoder):
    data = read_corpus(DataConfig(corpus="manifest", root=str(manifest), check=False))
    prepared, classes = data.prepared, data.classes
    pooled = probe.pooled_layers(prepared.utterances, _cfg(encoder))
    assert pooled.shape == (24, 3, 32) and np.isfinite(pooled).all()
    parts = {"train": np.arange(0, 12), "valid": np.arange(12, 18), "test": np.arange(18, 24)}
    targets = {name: np.array([classes.index(prepared.utterances[i].label) for i in rows]) for name, rows in parts.items()}
    features = {name: pooled[rows] for name, rows in parts.items()}
    first = probe.fit_probe(features, targets, classes, c_grid=(1e-3, 1e-1, 10.0))
    scrambled = dict(targets, test=1 - targets["test"])  # every test label flipped
    second = probe.fit_probe(features, scrambled, classes, c_grid=(1e-3, 1e-1, 10.0))
    assert first[:2] == second[:2] and first[4] == second[4]  # same view, C and validation grid
    assert first[2].ua == second[2].ua
    assert first[3].ua != second[3].ua  # the test score did see the (flipped) labels, after the choice


def test_refit_keeps_the_choice_and_tests_a_model_that_also_learned_the_validation_rows(manifest, encoder):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = read_corpus(DataConfig(corpus="manifest", root=str(manifest), check=False))
    prepared, classes = data.prepared, data.classes
    pooled = probe.pooled_layers(prepared.utterances, _cfg(encoder))
    parts = {"train": np.arange(0, 10), "valid": np.arange(10, 18), "test": np.arange(18, 24)}
    targets = {name: np.array([classes.index(prepared.utterances[i].label) for i in rows])
               for name, rows in parts.items()}
    features = {name: pooled[rows] for name, rows in parts.items()}
    grid = (1e-3, 1e-1, 10.0)
    plain = probe.fit_probe(features, targets, classes, c_grid=grid)
    refit = probe.fit_probe(features, targets, classes, c_grid=grid, refit=True)
    assert refit[:3] == plain[:3] and refit[4] == plain[4]  # same view, C, validation metrics and grid
    np.testing.assert_array_equal(refit[5]["valid"], plain[5]["valid"])  # validation: the training-only model
    # the tested model: the chosen view and C trained on train + valid, as scikit-learn fits it here
    view, c = refit[0], refit[1]
    views = {part: probe.layer_views(features[part])[view] for part in parts}
    expected = make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=3000,
                                                                  random_state=0))
    expected.fit(np.concatenate([views["train"], views["valid"]]), np.concatenate([targets["train"], targets["valid"]]))
    np.testing.assert_allclose(refit[5]["test"][:, expected.classes_], expected.predict_proba(views["test"]), atol=1e-9)
    assert not np.allclose(refit[5]["test"], plain[5]["test"])  # 8 more rows did change the model


def test_probe_shares_the_cv_feature_cache(manifest, encoder, tmp_path, monkeypatch):
    from serkit.model import ModelConfig, build_model
    from serkit.upstream.cache import install_feature_cache
    from serkit.upstream.hf import HFSpeechUpstream

    prepared = read_corpus(DataConfig(corpus="manifest", root=str(manifest), check=False)).prepared
    utterances = prepared.utterances[:5]
    cache = tmp_path / "cache"
    first = probe.pooled_layers(utterances, _cfg(encoder), cache)
    # the directory cv's model would use for the same upstream with weighted layers is the one just filled
    model = build_model(ModelConfig(upstreams=[_cfg(encoder)]), num_classes=2)
    (model_cache,) = install_feature_cache(model, cache).values()
    assert model_cache.directory.is_dir()
    assert len(list(model_cache.directory.rglob("*.safetensors"))) == 5
    monkeypatch.setattr(HFSpeechUpstream, "forward", lambda *a, **k: pytest.fail("the encoder ran on a cached clip"))
    assert np.array_equal(probe.pooled_layers(utterances, _cfg(encoder), cache), first)


def test_stats_pooling_is_mean_then_std_of_the_real_frames(manifest, encoder):
    from serkit.errors import ConfigError
    from serkit.upstream import build_upstream

    utterances = read_corpus(DataConfig(corpus="manifest", root=str(manifest), check=False)).prepared.utterances[:4]
    mean = probe.pooled_layers(utterances, _cfg(encoder))
    stats = probe.pooled_layers(utterances, _cfg(encoder), pooling="stats")
    assert stats.shape == (4, 3, 64)
    np.testing.assert_allclose(stats[..., :32], mean, atol=1e-5)
    # the std half, against numpy on one clip encoded alone (no padding: every frame is real)
    from serkit.data.audio import load_audio
    upstream = build_upstream(_cfg(encoder))
    wav = torch.from_numpy(load_audio(utterances[0].path))
    with torch.no_grad():
        hidden, _ = upstream(wav[None], torch.tensor([len(wav)]))
    expected = np.stack([layer[0].numpy().std(axis=0) for layer in hidden])
    np.testing.assert_allclose(stats[0, :, 32:], expected, rtol=1e-3, atol=1e-5)
    with pytest.raises(ConfigError, match="probe pooling 'max': expected one of mean, stats"):
        probe.pooled_layers(utterances, _cfg(encoder), pooling="max")


def test_probe_command(manifest, encoder, tmp_path, capsys):
    out = tmp_path / "probe"
    assert main(["baseline", "probe", "--corpus", "manifest", "--root", str(manifest), "--encoder", str(encoder),
                 "--folds", "1,2", "--c", "0.1", "--no-cache", "--pooling", "stats", "--refit", "--out", str(out)]) == 0
    assert "layer view and C chosen per fold" in capsys.readouterr().out
    record = json.loads((out / "probe.json").read_text())
    assert record["folds"] == [1, 2] and record["pooling"] == "stats" and record["refit_on_train_and_valid"]
    assert record["trainable_params"] == (2 * 32 + 1) * 2
    assert main(["baseline", "probe", "--corpus", "manifest", "--root", str(manifest), "--out", str(out)]) != 0
    assert "--encoder is required" in capsys.readouterr().err
    # a bad C grid is refused before any clip is encoded (the encoder below does not even exist)
    assert main(["baseline", "probe", "--corpus", "manifest", "--root", str(manifest), "--encoder",
                 str(tmp_path / "no_such_encoder"), "--c", "0.1,0", "--out", str(out)]) != 0
    assert "--c: expected positive numbers, got [0.1, 0.0]" in capsys.readouterr().err


def test_probe_variants_default_to_folders_of_their_own(manifest, encoder, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    common = ["baseline", "probe", "--corpus", "manifest", "--root", str(manifest), "--encoder", f"{encoder}/",
              "--folds", "1", "--c", "0.1", "--no-cache", "--quiet"]
    assert main(common) == 0 and main([*common, "--pooling", "stats", "--refit"]) == 0
    made = sorted(p.name for p in (tmp_path / "runs").iterdir())
    name = f"baseline_probe_manifest_{encoder.name}"
    assert made == [f"{name}_mean", f"{name}_stats_refit"]
    assert json.loads((tmp_path / "runs" / made[1] / "probe.json").read_text())["refit_on_train_and_valid"]


def test_encoding_reports_progress_unless_quiet(manifest, encoder, capsys):
    prepared = read_corpus(DataConfig(corpus="manifest", root=str(manifest), check=False)).prepared
    probe.pooled_layers(prepared.utterances[:6], _cfg(encoder), progress=True)
    assert "encoding: 6/6" in capsys.readouterr().err
    probe.pooled_layers(prepared.utterances[:6], _cfg(encoder))
    assert "encoding" not in capsys.readouterr().err


def test_wave_copies_are_training_rows_only_and_the_choice_is_on_plain_validation(manifest, encoder):
    """fit_probe with copies: the tested model is the chosen view and C trained on the training rows and their
    copies (with refit, the validation rows' too); validation is scored on the plain clips; test rows are never
    perturbed. A copy is made from the utterance's own segment (start..end), as `serkit cv`'s loader makes it,
    so the two share feature-cache entries."""
    from dataclasses import replace

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from serkit.data.audio import load_audio
    from serkit.data.dataset import UtteranceDataset
    from serkit.data.wave_copies import WaveCopies

    data = read_corpus(DataConfig(corpus="manifest", root=str(manifest), check=False))
    prepared, classes = data.prepared, data.classes
    utts = prepared.utterances
    pooled = probe.pooled_layers(utts, _cfg(encoder))
    copies = WaveCopies(variants=2, speed=[0.8, 1.2])
    make = [lambda wav, utt, k=k: copies.make(wav, utt.id, k) for k in (1, 2)]
    copied = [probe.pooled_layers(utts, _cfg(encoder), transform=m) for m in make]
    assert not np.allclose(copied[0], pooled, atol=1e-3)
    # a segment's copy: what the probe encodes is what cv's training loader yields for (index, k)
    segment = replace(utts[0], start=0.1, end=0.6)
    loaded = UtteranceDataset([segment], classes, copies=copies)[(0, 2)].wav
    by_probe = probe.pooled_layers([segment], _cfg(encoder), transform=make[1])
    by_loader = probe.pooled_layers([segment], _cfg(encoder), transform=lambda wav, utt: loaded.numpy())
    np.testing.assert_array_equal(by_probe, by_loader)
    assert len(loaded) < len(load_audio(utts[0].path)) // 2  # the segment, not the whole file
    parts = {"train": np.arange(0, 10), "valid": np.arange(10, 18), "test": np.arange(18, 24)}
    targets = {name: np.array([classes.index(utts[i].label) for i in rows]) for name, rows in parts.items()}
    features = {name: pooled[rows] for name, rows in parts.items()}
    extra = [{name: rows[parts[name]] for name in ("train", "valid")} for rows in copied]
    grid = (1e-3, 1e-1, 10.0)
    for refit in (False, True):
        view, c, valid, test, _, probabilities = probe.fit_probe(features, targets, classes, c_grid=grid,
                                                                 refit=refit, copies=extra)
        views = lambda rows: probe.layer_views(rows)[view]  # noqa: E731
        train = [views(features["train"])] + [views(e["train"]) for e in extra]
        train_targets = [targets["train"]] * 3
        if refit:
            train += [views(features["valid"])] + [views(e["valid"]) for e in extra]
            train_targets += [targets["valid"]] * 3
        expected = make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=3000,
                                                                      random_state=0))
        expected.fit(np.concatenate(train), np.concatenate(train_targets))
        np.testing.assert_allclose(probabilities["test"][:, expected.classes_],
                                   expected.predict_proba(views(features["test"])), atol=1e-9)
        assert valid.ua == compute_metrics(probabilities["valid"].argmax(-1), targets["valid"], classes).ua


def test_probe_command_with_wave_copies_records_them_and_refuses_bad_ranges(manifest, encoder, tmp_path, capsys,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    common = ["baseline", "probe", "--corpus", "manifest", "--root", str(manifest), "--encoder", str(encoder),
              "--folds", "1", "--c", "0.1", "--quiet", "--cache", str(tmp_path / "cache")]
    assert main([*common, "--wave-variants", "2", "--wave-gain-db", "0,0"]) == 0
    (out,) = (tmp_path / "runs").iterdir()
    assert out.name.endswith("_mean_wave2_gain-db0_0")  # a range other than the default: a folder of its own
    record = json.loads((out / "probe.json").read_text())
    assert record["wave_copies"] == {"variants": 2, "speed": [0.9, 1.1], "gain_db": [0.0, 0.0], "noise_snr_db": None}
    # the clips, and 2 copies of the clips fold 1 trains on, went through the shared cache
    from serkit.baselines.folds import BaselineFolds

    trained = len(BaselineFolds(DataConfig(corpus="manifest", root=str(manifest), check=False), [1]).part_ids(1)["train"])
    assert 0 < trained < 24 and len(list((tmp_path / "cache").rglob("*.safetensors"))) == 24 + 2 * trained
    assert main([*common, "--wave-variants", "2", "--wave-speed", "0.90,1.10"]) == 0  # the default, written out
    assert sorted(p.name for p in (tmp_path / "runs").iterdir())[0].endswith("_mean_wave2")
    assert main([*common, "--wave-variants", "1", "--wave-speed", "1.2,0.9"]) != 0
    assert "--wave-speed is [1.2, 0.9]; expected [low, high]" in capsys.readouterr().err
    assert main([*common, "--wave-noise-snr-db", "10,20"]) != 0
    assert "--wave-variants is 0" in capsys.readouterr().err


def test_speaker_norm_standardises_each_speaker_and_each_copy_on_its_own(manifest, encoder, tmp_path, monkeypatch):
    """--speaker-norm: the rows the probe fits and scores are every speaker's pooled rows standardised by that
    speaker's own rows (test speakers' too: no label read), each wave copy's by the same speaker's rows of that
    copy; the record says so."""
    from serkit.data.speaker_norm import speaker_standardise
    from serkit.data.wave_copies import WaveCopies

    torch.set_num_threads(1)
    seen = []
    fit = probe.fit_probe
    monkeypatch.setattr(probe, "fit_probe", lambda features, targets, labels, *a, **k: (
        seen.append((features, k["copies"])), fit(features, targets, labels, *a, **k))[1])
    data_cfg = DataConfig(corpus="manifest", root=str(manifest), check=False)
    wave = WaveCopies(variants=1, speed=[0.8, 1.2])
    probe.run_probe(data_cfg, tmp_path, _cfg(encoder), folds=[1, 2], c_grid=(0.1,), wave=wave, speaker_norm=True)
    assert json.loads((tmp_path / "probe.json").read_text())["speaker_norm"] is True
    utts = read_corpus(data_cfg).prepared.utterances
    speakers = [u.speaker for u in utts]
    expected = speaker_standardise(probe.pooled_layers(utts, _cfg(encoder)), speakers)
    copy = speaker_standardise(probe.pooled_layers(utts, _cfg(encoder), transform=lambda w, u: wave.make(w, u.id, 1)),
                               speakers)
    assert not np.allclose(copy, expected, atol=1e-3)
    row = {u.id: i for i, u in enumerate(utts)}
    ids = {fold: probe.BaselineFolds(data_cfg).part_ids(fold) for fold in (1, 2)}
    for fold, (features, copies) in zip((1, 2), seen):
        for part in ("train", "valid", "test"):
            rows = [row[u] for u in ids[fold][part]]
            np.testing.assert_allclose(features[part], expected[rows], atol=1e-5)
        np.testing.assert_allclose(copies[0]["train"], copy[[row[u] for u in ids[fold]["train"]]], atol=1e-5)
        test_speakers = {speakers[row[u]] for u in ids[fold]["test"]}
        assert len(test_speakers) == 1  # a whole speaker, standardised by its own clips alone
        np.testing.assert_allclose(features["test"].mean(0), 0, atol=1e-5)


def _rewritten(manifest, out, change) -> str:
    """A copy of the fixture's manifest at `out`, its paths absolute, each (path, label, speaker) row -> change(row)."""
    header, *rows = manifest.read_text().splitlines()
    rows = [change((str(manifest.parent / path), label, speaker))
            for path, label, speaker in (row.split(",") for row in rows)]
    out.write_text("\n".join([header, *(",".join(row) for row in rows)]) + "\n")
    return str(out)


def test_speaker_norm_reads_no_test_label(manifest, encoder, tmp_path, monkeypatch):
    """Flipping every label of fold 1's test speaker changes nothing the probe fits or chooses: the statistics
    come from the clips, not from their labels."""
    seen = []
    fit = probe.fit_probe
    monkeypatch.setattr(probe, "fit_probe", lambda features, targets, labels, *a, **k: (
        seen.append(features), fit(features, targets, labels, *a, **k))[1])
    data_cfg = DataConfig(corpus="manifest", root=str(manifest), check=False)
    (test_speaker,) = {u.split("_")[0] for u in probe.BaselineFolds(data_cfg).part_ids(1)["test"]}
    flip = {"calm": "excited", "excited": "calm"}
    flipped = _rewritten(manifest, tmp_path / "flipped.csv",
                         lambda row: (row[0], flip[row[1]] if row[2] == test_speaker else row[1], row[2]))
    fits = [probe.run_probe(DataConfig(corpus="manifest", root=root, check=False), tmp_path / name, _cfg(encoder),
                            folds=[1], c_grid=(0.01, 1.0), speaker_norm=True)[1][0]
            for name, root in (("plain", str(manifest)), ("flipped", flipped))]
    assert (fits[0].view, fits[0].c, fits[0].valid_ua) == (fits[1].view, fits[1].c, fits[1].valid_ua)
    for part in ("train", "valid", "test"):
        np.testing.assert_array_equal(seen[0][part], seen[1][part])
    assert fits[0].test.ua != fits[1].test.ua  # the test score did read the flipped labels, after the choice


def test_speaker_norm_refit_copies_validation_rows_by_their_speakers_copies(manifest, encoder, tmp_path,
                                                                            monkeypatch):
    from serkit.data.speaker_norm import speaker_standardise
    from serkit.data.wave_copies import WaveCopies

    seen = []
    fit = probe.fit_probe
    monkeypatch.setattr(probe, "fit_probe", lambda features, targets, labels, *a, **k: (
        seen.append(k["copies"]), fit(features, targets, labels, *a, **k))[1])
    data_cfg = DataConfig(corpus="manifest", root=str(manifest), check=False)
    wave = WaveCopies(variants=1, speed=[0.8, 1.2])
    probe.run_probe(data_cfg, tmp_path, _cfg(encoder), folds=[2], c_grid=(0.1,), wave=wave, speaker_norm=True,
                    refit=True)
    utts = read_corpus(data_cfg).prepared.utterances
    copy = speaker_standardise(probe.pooled_layers(utts, _cfg(encoder), transform=lambda w, u: wave.make(w, u.id, 1)),
                               [u.speaker for u in utts])
    row = {u.id: i for i, u in enumerate(utts)}
    ids = probe.BaselineFolds(data_cfg).part_ids(2)
    for part in ("train", "valid"):
        np.testing.assert_allclose(seen[0][0][part], copy[[row[u] for u in ids[part]]], atol=1e-5)


def test_speaker_norm_refuses_a_one_clip_speaker_before_encoding(manifest, encoder, tmp_path, monkeypatch, capsys):
    root = _rewritten(manifest, tmp_path / "manifest.csv",  # one clip of spk1 said by a speaker of its own
                      lambda row: (row[0], row[1], "lonely" if row[0].endswith("spk1_0.wav") else row[2]))
    monkeypatch.setattr(probe, "pooled_layers", lambda *a, **k: pytest.fail("encoded before refusing"))
    code = main(["baseline", "probe", "--corpus", "manifest", "--root", root, "--encoder", str(encoder),
                 "--speaker-norm", "--no-cache", "--out", str(tmp_path / "out")])
    assert code != 0
    assert "speaker normalisation of the corpus needs at least 2 reference clips of every speaker; 1 speaker(s) " \
           "have fewer: 'lonely' (1)" in capsys.readouterr().err


def test_speaker_norm_probe_gets_a_folder_of_its_own(manifest, encoder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["baseline", "probe", "--corpus", "manifest", "--root", str(manifest), "--encoder", str(encoder),
                 "--folds", "1", "--c", "0.1", "--no-cache", "--quiet", "--pooling", "stats", "--speaker-norm"]) == 0
    (made,) = (tmp_path / "runs").iterdir()
    assert made.name == f"baseline_probe_manifest_{encoder.name}_stats_spknorm"
    assert json.loads((made / "probe.json").read_text())["speaker_norm"] is True
