"""scripts/seed_refit.py: a refit run seeded from the run without train.refit gives what the refit run gives
from scratch (the same chosen epochs, validation predictions, refit model and test scores) without fitting the
first time again; bad sources are refused before anything is written."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from serkit.cli import main
from serkit.evaluation.prediction_table import read_predictions

ARGS = ["--folds", "1", "--quiet", "train.max_epochs=3", "train.top_k=2"]


@pytest.fixture(scope="module")
def seed_refit(load_script):
    return load_script("seed_refit")


@pytest.fixture(scope="module")
def runs(tiny_config, synth_iemocap_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("seed_refit")

    def cv(out, *extra):
        assert main(["cv", str(tiny_config), "--root", str(synth_iemocap_root), "--out", str(out), *ARGS, *extra]) == 0

    cv(root / "plain")
    cv(root / "scratch", "train.refit=true")
    return root, cv


def test_a_seeded_refit_is_the_refit_from_scratch_without_a_second_first_fit(runs, seed_refit, monkeypatch, capsys):
    root, cv = runs
    assert seed_refit.main([str(root / "plain"), str(root / "seeded"), "1"]) == 0
    assert "first fit from" in capsys.readouterr().out
    fold = root / "seeded" / "fold_1"
    assert (fold / "train_only.json").is_file() and not (fold / "result.json").exists()
    import serkit.training.fold as fold_module

    def no_first_fit(*args, **kwargs):
        raise AssertionError("the first fit ran again")

    monkeypatch.setattr(fold_module, "_first_fit", no_first_fit)
    cv(root / "seeded", "train.refit=true")
    seeded = json.loads((fold / "result.json").read_text())
    scratch = json.loads((root / "scratch" / "fold_1" / "result.json").read_text())
    assert seeded["reported"] == "refit" and seeded["chosen_epochs"] == scratch["chosen_epochs"]
    for part in ("best", "averaged", "refit"):
        assert seeded[part] == scratch[part], part
    _, a = read_predictions(fold / "predictions.csv")
    _, b = read_predictions(root / "scratch" / "fold_1" / "predictions.csv")
    for split in ("valid", "test"):
        assert a[split].ids == b[split].ids
        np.testing.assert_allclose(a[split].probabilities, b[split].probabilities, atol=1e-6)
    timing = ("cpu_seconds", "wall_seconds", "seeded_from")
    seeded_record = json.loads((fold / "train_only.json").read_text())
    scratch_record = json.loads((root / "scratch" / "fold_1" / "train_only.json").read_text())
    assert seeded_record["seeded_from"] == str(root / "plain" / "fold_1")
    assert {k: v for k, v in seeded_record.items() if k not in timing} == \
        {k: v for k, v in scratch_record.items() if k not in timing}  # what a killed refit leaves, but the times
    assert seed_refit.main([str(root / "plain"), str(root / "seeded"), "1"]) == 0  # again: left as it is
    assert "exists, left as it is" in capsys.readouterr().out


def test_unfinished_missing_or_refit_sources_are_refused_and_nothing_is_written(runs, seed_refit, tmp_path):
    root, _ = runs
    dest = tmp_path / "dest"
    with pytest.raises(SystemExit, match="no fold_2"):
        seed_refit.main([str(root / "plain"), str(dest), "1", "2"])
    with pytest.raises(SystemExit, match="already a refit fold"):
        seed_refit.main([str(root / "scratch"), str(dest), "1"])
    unfinished = tmp_path / "unfinished"
    (unfinished / "fold_1").mkdir(parents=True)
    (unfinished / "fold_1" / "config.yaml").write_text((root / "plain" / "fold_1" / "config.yaml").read_text())
    with pytest.raises(SystemExit, match=r"not a finished serkit cv fold \(result.json missing\)"):
        seed_refit.main([str(unfinished), str(dest), "1"])
    with pytest.raises(SystemExit, match="same folder"):
        seed_refit.main([str(root / "plain"), str(root / "plain"), "1"])
    assert not dest.exists() or not any(dest.iterdir())


def test_a_seed_without_split_json_is_checked_by_its_predictions_and_given_one(runs, seed_refit, tiny_config,
                                                                              synth_iemocap_root, tmp_path, capsys):
    """An archived source (docs/runs) keeps no split.json: the refit checks the first fit's predicted utterances
    against the split instead, and writes split.json for the runs after it."""
    root, cv = runs
    archived = tmp_path / "archived"
    shutil.copytree(root / "plain", archived)
    (archived / "fold_1" / "split.json").unlink()
    seed_refit.main([str(archived), str(tmp_path / "a"), "1"])
    assert not (tmp_path / "a" / "fold_1" / "split.json").exists()
    cv(tmp_path / "a", "train.refit=true")
    assert json.loads((tmp_path / "a" / "fold_1" / "split.json").read_text()) == \
        json.loads((root / "plain" / "fold_1" / "split.json").read_text())
    seed_refit.main([str(archived), str(tmp_path / "b"), "1"])
    predictions = tmp_path / "b" / "fold_1" / "predictions.csv"
    predictions.write_text("".join(predictions.read_text().splitlines(keepends=True)[:-1]))  # one test row fewer
    capsys.readouterr()
    assert main(["cv", str(tiny_config), "--root", str(synth_iemocap_root), "--out", str(tmp_path / "b"), *ARGS,
                 "train.refit=true"]) == 1
    assert re.search(r"its first fit predicted \d+ test utterances, this split has \d+ \(1 differ\)",
                     capsys.readouterr().err)
    assert not (tmp_path / "b" / "fold_1" / "result.json").exists()
