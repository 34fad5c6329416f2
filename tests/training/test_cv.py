"""`serkit cv` end to end on the synthetic IEMOCAP with a tiny config: it learns, and the run dir is complete."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from serkit.bundle import load_bundle
from serkit.cli import main
from serkit.config import load_config
from serkit.data.dataset import build_loader
from serkit.data.config import DataConfig
from serkit.data.prepare import read_corpus
from serkit.evaluation.metrics import compute_metrics
from serkit.evaluation.prediction_table import read_predictions
from serkit.training.predictions import evaluate_model

CHANCE = 0.25


@pytest.fixture(scope="module")
def cv_run(tiny_config, synth_iemocap_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("cv") / "run"
    assert main(["cv", str(tiny_config), "--root", str(synth_iemocap_root), "--out", str(out)]) == 0
    return out


def test_learns_above_chance_on_every_fold(cv_run):
    summary = json.loads((cv_run / "cv.json").read_text())
    assert [f["fold"] for f in summary["folds"]] == ["1", "2", "3", "4", "5"]
    for fold in summary["folds"]:
        ua = fold["metrics"]["ua"]
        assert ua >= CHANCE + 0.15, f"fold {fold['fold']}: UA {ua:.3f} is not well above chance"


def test_run_dir_is_complete(cv_run):
    for name in ("config.yaml", "run.json", "cv.md", "cv.csv", "cv.json", "confusion.png", "folds.png"):
        assert (cv_run / name).is_file(), name
    facts = json.loads((cv_run / "run.json").read_text())
    assert facts["seed"] == 0 and facts["versions"]["torch"] and facts["labels"] == ["neu", "hap", "ang", "sad"]
    for fold in range(1, 6):
        fold_dir = cv_run / f"fold_{fold}"
        for name in ("config.yaml", "split.json", "result.json", "fits.jsonl", "model/model.safetensors",
                     "model/config.yaml", "model/labels.json", "model/metrics.json", "logs/metrics.csv"):
            assert (fold_dir / name).is_file(), f"fold {fold}: {name}"
        # finished: its top-k files (3 in the tiny config, averaged into the bundle) and last.ckpt are removed
        assert not (fold_dir / "checkpoints").exists()  # train.keep_checkpoints: false (test_keep_checkpoints.py)
        split = json.loads((fold_dir / "split.json").read_text())
        assert not set(split["train"]) & set(split["test"]) and not set(split["valid"]) & set(split["test"])


def test_report_shows_best_single_beside_averaged(cv_run):
    text = (cv_run / "cv.md").read_text()
    assert "best single checkpoint" in text and "averaged checkpoints" in text and "gain" in text


def test_bundle_reloads_and_scores_what_the_run_reported(cv_run, synth_iemocap_root):
    """The fold-1 bundle, loaded offline from disk, gives exactly the test metrics written at training time."""
    model, cfg, labels = load_bundle(cv_run / "fold_1" / "model")
    result = json.loads((cv_run / "fold_1" / "result.json").read_text())
    data = read_corpus(DataConfig(corpus="iemocap", root=str(synth_iemocap_root), check=False))
    corpus, prepared = data.corpus, data.prepared
    split = corpus.split(prepared.utterances, 1)
    loader = build_loader(split.test, labels, cfg.data.max_batch_seconds, shuffle=False)
    metrics = evaluate_model(model, loader, labels)
    reported = result[result["reported"]]["test"]
    assert metrics.n == reported["n"]
    assert np.isclose(metrics.ua, reported["ua"]) and np.isclose(metrics.wa, reported["wa"])


def test_each_fold_writes_the_bundled_models_predictions_and_two_runs_ensemble(cv_run, tmp_path):
    """fold_<k>/predictions.csv holds the reported model's valid and test probabilities (what `serkit ensemble`
    reads); an ensemble of a run with itself scores what the run scored."""
    for fold in range(1, 6):
        result = json.loads((cv_run / f"fold_{fold}" / "result.json").read_text())
        split = json.loads((cv_run / f"fold_{fold}" / "split.json").read_text())
        labels, parts = read_predictions(cv_run / f"fold_{fold}" / "predictions.csv")
        for name in ("valid", "test"):
            assert sorted(parts[name].ids) == sorted(split[name])
            metrics = compute_metrics(parts[name].probabilities.argmax(-1), parts[name].targets, labels)
            assert np.isclose(metrics.ua, result[result["reported"]][name]["ua"])
    assert main(["ensemble", str(cv_run), str(cv_run), "--out", str(tmp_path / "self")]) == 0
    ensembled = json.loads((tmp_path / "self" / "cv.json").read_text())["summary"]["ua"]["mean"]
    assert np.isclose(ensembled, json.loads((cv_run / "cv.json").read_text())["summary"]["ua"]["mean"])


def test_finished_folds_are_skipped(cv_run, tiny_config, synth_iemocap_root, capsys):
    before = {p: p.stat().st_mtime_ns for p in cv_run.glob("fold_*/result.json")}
    assert main(["cv", str(tiny_config), "--root", str(synth_iemocap_root), "--out", str(cv_run)]) == 0
    after = {p: p.stat().st_mtime_ns for p in cv_run.glob("fold_*/result.json")}
    assert before == after
    assert "mean ± std" in capsys.readouterr().out


def test_a_run_restored_from_its_archived_records_skips_every_fold_and_reports_the_same(
        cv_run, tiny_config, synth_iemocap_root, tmp_path, load_script):
    """scripts/archive_runs.py keeps a run's records without its weights; copied back, `serkit cv` on it trains
    nothing (every fold's result.json is there) and writes the same cv.json summary and predictions."""
    import shutil

    load_script("archive_runs").main([str(cv_run.parent), str(tmp_path / "archive"), cv_run.name])
    assert not list((tmp_path / "archive").rglob("*.safetensors"))
    restored = tmp_path / "restored"
    shutil.copytree(tmp_path / "archive" / cv_run.name, restored)
    assert main(["cv", str(tiny_config), "--root", str(synth_iemocap_root), "--out", str(restored), "--quiet"]) == 0
    assert not list(restored.glob("fold_*/model")) and not list(restored.glob("fold_*/checkpoints"))  # no training
    summary = json.loads((restored / "cv.json").read_text())["summary"]
    assert summary == json.loads((cv_run / "cv.json").read_text())["summary"]
    for fold in range(1, 6):
        name = f"fold_{fold}/predictions.csv"
        assert (restored / name).read_text() == (cv_run / name).read_text()


def test_overrides_and_folds_reach_the_config(tiny_config):
    cfg = load_config(tiny_config, overrides=["train.max_epochs=3", "model.aggregators.0.channels=16", "folds=[1,3]"])
    assert cfg.train.max_epochs == 3 and cfg.model.aggregators[0].channels == 16 and cfg.folds == [1, 3]


def test_run_records_its_cost(cv_run):
    """cost.json per fold and for the run: CPU seconds, epochs and trainable parameters, for the results table."""
    total = json.loads((cv_run / "cost.json").read_text())
    assert sorted(total["folds"]) == ["1", "2", "3", "4", "5"]
    for fold in total["folds"].values():
        assert fold["cpu_seconds"] > 0 and fold["wall_seconds"] > 0 and fold["epochs"] >= 1
        assert fold["trainable_params"] > 1000  # the narrow ECAPA-TDNN and its classifier
    assert total["cpu_seconds"] == pytest.approx(sum(f["cpu_seconds"] for f in total["folds"].values()), abs=0.5)


def test_cv_caps_onednn_primitive_cache_unless_the_user_set_it(tiny_config, synth_iemocap_root, tmp_path,
                                                               monkeypatch):
    # nearly every batch a new width: oneDNN's default cache of 1024 kernels grows the training process
    # (benchmarks/train_memory.py). The cap must be set before any fold runs: the stub records it then.
    import serkit.training.cv as cv_module
    from serkit.util.onednn import ENV, LEGACY_ENV, CACHE_CAPACITY

    seen = []
    monkeypatch.setattr(cv_module, "_run_cv", lambda *args: seen.append(os.environ.get(ENV)))
    monkeypatch.delenv(ENV, raising=False)  # conftest restores it after the test
    monkeypatch.delenv(LEGACY_ENV, raising=False)
    args = ["cv", str(tiny_config), "--root", str(synth_iemocap_root), "--out", str(tmp_path / "run")]
    assert main(args) == 0
    monkeypatch.setenv(ENV, "512")
    assert main(args) == 0
    assert seen == [str(CACHE_CAPACITY), "512"]  # the user's own setting wins
