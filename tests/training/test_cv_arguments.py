"""`serkit cv`'s command line: --root and --folds taken as given, config paths told from overrides, and inputs
that cannot train refused before any training."""

from __future__ import annotations

import shutil

import pytest
import yaml

from serkit.cli import main
from serkit.commands.cv import _split_overrides
from serkit.config import load_config


def _args(config, overrides=(), root=None, folds=None):
    import argparse
    return argparse.Namespace(config=list(config), overrides=list(overrides), root=root, folds=folds)


def test_root_and_folds_are_taken_as_given_not_as_yaml(tiny_config):
    for root in ("/data/rav #2", "/data/rav: v2", "/data/[x]"):
        sources, overrides = _split_overrides(_args([str(tiny_config)], root=root, folds="3,1"))
        cfg = load_config(*sources, overrides=overrides)
        assert cfg.data.root == root and cfg.folds == [3, 1]


def test_a_config_path_with_an_equals_sign_is_a_config_and_key_value_is_an_override(tiny_config, tmp_path):
    path = tmp_path / "lr=1" / "c.yaml"
    path.parent.mkdir()
    shutil.copy(tiny_config, path)
    sources, overrides = _split_overrides(_args([str(path), "train.max_epochs=3"], ["seed=4"]))
    cfg = load_config(*sources, overrides=overrides)
    assert cfg.name == yaml.safe_load(tiny_config.read_text())["name"] and cfg.train.max_epochs == 3 and cfg.seed == 4


@pytest.mark.parametrize("argv, message", [
    (["train.max_epochs=3"], "no experiment YAML given"),
    (["CONFIG", "--folds", "1,1"], "--folds '1,1': a fold is named twice"),
    (["CONFIG", "--folds", ","], "--folds ',': expected comma-separated numbers"),
    (["CONFIG", "--folds", "a"], "--folds 'a': expected comma-separated numbers"),
    (["CONFIG", "--folds", "1", "folds=[2]"], "--folds and folds=... both given"),
    (["CONFIG", "data.root=/x"], "--root and data.root=... both given"),
])
def test_arguments_that_cannot_run_are_refused_naming_the_flag(tiny_config, tmp_path, capsys, argv, message):
    argv = [str(tiny_config) if a == "CONFIG" else a for a in argv]
    assert main(["cv", *argv, "--root", str(tmp_path), "--out", str(tmp_path / "run")]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_corpus_too_small_for_its_folds_is_refused_before_training(tmp_path, capsys):
    """2 speakers, 2 folds: fold 1 tests on one, validates on the other, and has nothing to train on."""
    import numpy as np
    import soundfile as sf

    rows = ["path,label,speaker"]
    for speaker in ("s1", "s2"):
        for i, label in enumerate(("a", "b", "a", "b")):
            name = f"{speaker}_{i}.wav"
            sf.write(tmp_path / name, np.random.default_rng(i).normal(0, 0.1, 8000).astype("float32"), 16000)
            rows.append(f"{name},{label},{speaker}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"model": {"upstreams": [{"name": "fbank", "layers": "last", "freeze": "all"}],
                                                "aggregators": [{"name": "mean"}]},
                                      "data": {"corpus": "manifest"}}))
    assert main(["cv", str(config), "--root", str(tmp_path / "m.csv"), "--out", str(tmp_path / "run"),
                 "--quiet"]) == 1
    assert "fold 1 has no training utterances" in capsys.readouterr().err
    assert not list((tmp_path / "run").glob("fold_*"))


@pytest.mark.parametrize("override", ["train.accelerator=foo", "train.strategy=foo"])
def test_an_accelerator_or_strategy_lightning_cannot_use_is_a_config_error_naming_the_keys(
        tiny_config, synth_iemocap_root, tmp_path, capsys, override):
    assert main(["cv", str(tiny_config), "--root", str(synth_iemocap_root), "--folds", "1", override,
                 "--out", str(tmp_path / "run"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "serkit cv: error: train.accelerator=" in err and "Lightning cannot train so here" in err
    assert "Traceback" not in err
