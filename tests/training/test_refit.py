"""train.refit: after the usual fit chose its top-k epochs on validation, a fresh model trains on train + valid
for those epochs, is averaged at them, tested and bundled (training/refit.py).

One fold of the tiny fbank -> ECAPA config, 4 epochs, top 2, run with and without refit (same seed): the first
fit must be the same in both, so the choice, the validation predictions and the "best"/"averaged" scores are.
"""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

import serkit.training.fold as fold_module
import serkit.training.refit as refit_module
from serkit.checkpoint import load_state_dict, read_metadata
from serkit.cli import main
from serkit.config import load_config
from serkit.data.corpora import CORPORA, FoldSplit
from serkit.data.prepare import prepare_corpus
from serkit.evaluation.metrics import compute_metrics
from serkit.evaluation.prediction_table import read_predictions
from serkit.training.fold import FoldResult

TOP_K = 2


def cv_args(tiny_config, root, out, *overrides: str) -> list[str]:
    return ["cv", str(tiny_config), "--root", str(root), "--out", str(out), "--folds", "1", "--quiet",
            "train.max_epochs=4", f"train.top_k={TOP_K}", *overrides]


def fits(fold_dir) -> int:
    return len((fold_dir / "fits.jsonl").read_text().splitlines())


@pytest.fixture(scope="module")
def runs(tiny_config, synth_iemocap_root, tmp_path_factory) -> dict:
    """Both runs, with what the refit trained on, which files it averaged and the model it returned."""
    root = tmp_path_factory.mktemp("refit")
    runs = {"plain": root / "plain", "refit": root / "refit"}
    assert main(cv_args(tiny_config, synth_iemocap_root, runs["plain"], "train.keep_checkpoints=true")) == 0
    seen = {}
    patch = pytest.MonkeyPatch()
    real_module, real_average, real_refit = refit_module.FoldDataModule, refit_module.average_checkpoints, \
        fold_module.refit_and_test

    def data_module(split, *args, **kwargs):
        seen["train"], seen["valid"] = [u.id for u in split.train], [u.id for u in split.valid]
        seen["refit_loader_epochs"] = kwargs.get("epochs")
        return real_module(split, *args, **kwargs)

    def first_fit_data_module(*args, **kwargs):
        seen["first_fit_loader_epochs"] = kwargs.get("epochs")
        return real_module(*args, **kwargs)

    def average(paths):
        seen["averaged_epochs"] = [int(read_metadata(p)["epoch"]) for p in paths]
        return real_average(paths)

    def refit(*args, **kwargs):
        model, metrics, predictions = real_refit(*args, **kwargs)
        seen["model_state"] = {k: v.clone() for k, v in model.state_dict().items()}
        return model, metrics, predictions

    patch.setattr(refit_module, "FoldDataModule", data_module)
    patch.setattr(fold_module, "FoldDataModule", first_fit_data_module)
    patch.setattr(refit_module, "average_checkpoints", average)
    patch.setattr(fold_module, "refit_and_test", refit)
    try:
        assert main(cv_args(tiny_config, synth_iemocap_root, runs["refit"], "train.refit=true")) == 0
    finally:
        patch.undo()
    return {**runs, "seen": seen}


def result(run) -> dict:
    return json.loads((run / "fold_1" / "result.json").read_text())


def test_the_choice_and_validation_are_the_first_fits(runs):
    plain, refit = result(runs["plain"]), result(runs["refit"])
    assert refit["reported"] == "refit" and plain["reported"] == "averaged"
    assert refit["best"] == plain["best"] and refit["averaged"] == plain["averaged"]
    kept = sorted(runs["plain"].glob("fold_1/checkpoints/*.safetensors"),  # best first, as the fold averaged them
                  key=lambda p: (-float(read_metadata(p)["val_ua"]), int(read_metadata(p)["step"])))
    chosen = [int(read_metadata(p)["epoch"]) for p in kept]
    recorded = json.loads((runs["refit"] / "fold_1" / fold_module.TRAIN_ONLY).read_text())
    assert recorded["result"]["chosen_epochs"] == refit["chosen_epochs"] == plain["chosen_epochs"] == chosen
    assert runs["seen"]["averaged_epochs"] == chosen
    _, plain_preds = read_predictions(runs["plain"] / "fold_1" / "predictions.csv")
    _, refit_preds = read_predictions(runs["refit"] / "fold_1" / "predictions.csv")
    assert refit_preds["valid"].ids == plain_preds["valid"].ids
    np.testing.assert_allclose(refit_preds["valid"].probabilities, plain_preds["valid"].probabilities, atol=1e-6)


def test_the_refit_trains_on_train_and_valid_and_stops_after_the_last_chosen_epoch(runs):
    split = json.loads((runs["refit"] / "fold_1" / "split.json").read_text())
    assert runs["seen"]["train"] == split["train"] + split["valid"] and runs["seen"]["valid"] == []
    cost = json.loads((runs["refit"] / "fold_1" / "cost.json").read_text())
    chosen = runs["seen"]["averaged_epochs"]
    assert cost["refit_epochs"] == max(chosen) + 1 and cost["epochs"] == 4
    # both fits' training loaders keep one batch count over the schedule's epochs (DurationBatchSampler, step 5)
    assert runs["seen"]["first_fit_loader_epochs"] == runs["seen"]["refit_loader_epochs"] == 4
    with open(runs["refit"] / "fold_1" / "refit" / "logs" / "metrics.csv") as f:
        epochs = {int(float(row["epoch"])) for row in csv.DictReader(f) if row.get("epoch")}
    assert max(epochs) == max(chosen)
    assert not (runs["refit"] / "fold_1" / "refit" / "checkpoints").exists()  # snapshots deleted once averaged


def test_test_scores_predictions_and_bundle_are_the_refit_models(runs):
    refit = result(runs["refit"])
    _, preds = read_predictions(runs["refit"] / "fold_1" / "predictions.csv")
    labels = json.loads((runs["refit"] / "fold_1" / "model" / "labels.json").read_text())
    test = compute_metrics(preds["test"].probabilities.argmax(-1), preds["test"].targets, labels)
    assert test.ua == pytest.approx(refit["refit"]["test"]["ua"])
    assert test.wa == pytest.approx(refit["refit"]["test"]["wa"])
    _, plain_preds = read_predictions(runs["plain"] / "fold_1" / "predictions.csv")
    assert not np.allclose(preds["test"].probabilities, plain_preds["test"].probabilities, atol=1e-4)
    bundled = load_state_dict(runs["refit"] / "fold_1" / "model" / "model.safetensors")
    returned = runs["seen"]["model_state"]
    assert set(bundled) == set(returned) and all(torch.equal(bundled[k], returned[k]) for k in bundled)
    cv = json.loads((runs["refit"] / "cv.json").read_text())  # the run's table reports the refit model
    assert cv["folds"][0]["metrics"]["ua"] == pytest.approx(refit["refit"]["test"]["ua"])
    # and sets no "best single checkpoint" beside it: that one trained on other data, so no averaging gain is shown
    assert not cv.get("best_single") and cv["folds"][0].get("best_single") is None
    assert json.loads((runs["plain"] / "cv.json").read_text()).get("best_single")


def test_a_fold_killed_during_its_refit_does_not_fit_again(runs, tiny_config, synth_iemocap_root, tmp_path,
                                                            monkeypatch):
    out = tmp_path / "run"

    def killed(*args, **kwargs):
        raise RuntimeError("killed during the refit")

    monkeypatch.setattr(fold_module, "refit_and_test", killed)
    with pytest.raises(RuntimeError, match="killed during"):
        main(cv_args(tiny_config, synth_iemocap_root, out, "train.refit=true"))
    monkeypatch.undo()
    fold = out / "fold_1"
    assert (fold / fold_module.TRAIN_ONLY).is_file() and not (fold / "result.json").exists()
    assert not (fold / "checkpoints").exists()  # the first fit's files went once its record was written
    stale = fold / "refit" / "checkpoints" / ".epoch000.safetensors.1234.tmp"  # what a kill mid-write leaves
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half")

    def first_fit_again(*args, **kwargs):
        raise AssertionError("the first fit ran again")

    monkeypatch.setattr(fold_module, "_first_fit", first_fit_again)
    assert main(cv_args(tiny_config, synth_iemocap_root, out, "train.refit=true")) == 0
    assert result(out) == result(runs["refit"])  # the refit gave what an uninterrupted run gives
    assert not stale.parent.exists()
    cost = json.loads((fold / "cost.json").read_text())
    first = json.loads((fold / fold_module.TRAIN_ONLY).read_text())
    assert first["cpu_seconds"] > 0 and cost["cpu_seconds"] > first["cpu_seconds"]  # the first fit's cost counted


def test_a_first_fit_record_of_another_model_config_is_refused(runs, tiny_config, synth_iemocap_root, tmp_path,
                                                                capsys):
    out = tmp_path / "run"
    (out / "fold_1").mkdir(parents=True)
    for name in (fold_module.TRAIN_ONLY, "predictions.csv"):
        shutil.copy(runs["refit"] / "fold_1" / name, out / "fold_1" / name)
    code = main(cv_args(tiny_config, synth_iemocap_root, out, "train.refit=true", "model.classifier.dropout=0.5"))
    assert code != 0 and "another model config" in capsys.readouterr().err


def test_the_refit_replays_the_first_fit_exactly_on_the_same_data_and_stops_after_the_last_epoch(
        tiny_config, synth_iemocap_root, tmp_path, monkeypatch):
    """Given no validation utterances, the refit trains on exactly the first fit's data: its weights at the
    chosen epochs must equal the first fit's checkpoints there, bit for bit (same seed, schedule, epoch count),
    and it must stop after the last chosen epoch."""
    torch.set_num_threads(1)
    cfg = load_config(tiny_config, overrides=[f"data.root={synth_iemocap_root}", "train.max_epochs=4",
                                              "train.top_k=4", "train.keep_checkpoints=true"])
    data = prepare_corpus(cfg.data, tmp_path / "audio_check.json")
    split = CORPORA.get("iemocap").split(data.prepared.utterances, 1, **cfg.data.options)
    fold_module.run_fold(cfg, split, data.classes, tmp_path / "first")
    first = {int(read_metadata(p)["epoch"]): load_state_dict(p)
             for p in (tmp_path / "first").glob("checkpoints/*.safetensors")}
    assert sorted(first) == [0, 1, 2, 3]
    averaged, trained = {}, []
    real_average, real_end = refit_module.average_checkpoints, refit_module.EpochSnapshots.on_train_epoch_end

    def average(paths):
        averaged.update({int(read_metadata(p)["epoch"]): load_state_dict(p) for p in paths})
        return real_average(paths)

    def epoch_end(self, trainer, pl_module):
        trained.append(trainer.current_epoch)
        real_end(self, trainer, pl_module)

    monkeypatch.setattr(refit_module, "average_checkpoints", average)
    monkeypatch.setattr(refit_module.EpochSnapshots, "on_train_epoch_end", epoch_end)
    same = FoldSplit(split.fold, train=split.train, valid=[], test=split.test)
    refit_module.refit_and_test(cfg, same, data.classes, tmp_path / "refit", [1, 0], fold_module._trainer_options(cfg))
    assert trained == [0, 1]  # stopped after epoch 1 of 4
    assert sorted(averaged) == [0, 1]
    for epoch in (0, 1):
        assert set(averaged[epoch]) == set(first[epoch])
        assert all(torch.equal(averaged[epoch][k], first[epoch][k]) for k in first[epoch]), epoch


def test_refit_refuses_more_than_one_process(tiny_config, synth_iemocap_root, tmp_path, capsys):
    code = main(cv_args(tiny_config, synth_iemocap_root, tmp_path / "run", "train.refit=true",
                        "train.accelerator=cpu", "train.devices=2", "train.strategy=ddp"))
    assert code != 0
    assert "train.refit runs on one device" in capsys.readouterr().err
    assert not (tmp_path / "run" / "fold_1" / "fits.jsonl").exists()  # refused before any training


def test_fold_results_written_before_refit_still_read():
    old = {"fold": 2, "reported": "best", "best": {"test": {"wa": 0.5, "ua": 0.4, "macro_f1": 0.3, "confusion":
                                                            [[1, 1], [0, 2]], "labels": ["a", "b"], "n": 4}},
           "averaged": None}
    parsed = FoldResult.from_dict(old)
    assert parsed.refit is None and parsed.test.ua == 0.4
    assert FoldResult.from_dict(parsed.to_dict()) == parsed
