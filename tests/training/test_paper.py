"""`serkit paper`: selected experiments cross-validated, then Table 1 beside the published figures."""

from __future__ import annotations

import csv
import json

import pytest

from serkit.cli import main
from serkit.demo import demo_adapter
from serkit.errors import ConfigError
from serkit.training.paper import run_paper
from serkit.upstream.tiny import save_tiny_bert


def test_run_paper_writes_table1_for_the_experiments_run(synth_iemocap_root, tmp_path):
    lines = []
    results, paths = run_paper(
        synth_iemocap_root, tmp_path, experiments=[9, 10],
        overrides=["folds=[1]"],
        # the adapter runs after key=value overrides, so the short schedule goes through it
        adapt=demo_adapter({"text": str(save_tiny_bert(tmp_path / "bert", ["so", "happy", "sad"])),
                            "wav2vec2": "unused", "hubert": "unused"}, train={"max_epochs": 1, "top_k": 1}),
        progress=lines.append,
    )
    assert sorted(results) == [9, 10] and len(lines) == 2 and lines[0].startswith("[1/2] experiment 9")
    rows = {int(r["number"]): r for r in csv.DictReader(paths["csv"].open())}
    assert sorted(rows) == list(range(1, 12))
    for number in (9, 10):
        assert rows[number]["folds_run"] == "1" and rows[number]["ours_ua_mean_pct"] != ""
    assert rows[1]["ours_ua_mean_pct"] == "" and rows[9]["paper_ua_pct"] == "57.60"
    table = json.loads(paths["json"].read_text())
    assert table["rows"][8]["ours_ua_mean_pct"] == pytest.approx(100 * results[9].stat("ua").mean, abs=1e-3)
    for name in ("09_fbank_ecapa", "10_bert_text"):
        assert (tmp_path / name / "fold_1" / "model" / "model.safetensors").is_file()


def test_unknown_experiment_is_refused_before_any_training(tmp_path, capsys):
    assert main(["paper", "--root", str(tmp_path), "--experiments", "3,12"]) == 1
    assert "experiment 12" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="comma-separated"):
        from serkit.commands.parsing import parse_numbers
        parse_numbers("1,x", "--experiments")


def test_an_override_that_fits_no_experiment_is_refused_before_any_training(tmp_path, capsys):
    # experiment 9 is the filterbank ECAPA-TDNN, 1 uses mean pooling: `channels` is a key of ecapa only
    assert main(["paper", "--root", str(tmp_path), "--experiments", "9,1", "--out", str(tmp_path / "p"),
                 "model.aggregators.0.channels=16"]) == 1
    assert "experiment 1 (" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
    assert main(["paper", "--root", str(tmp_path), "--experiments", ","]) == 1
    assert "--experiments ','" in capsys.readouterr().err


def test_demo_refuses_an_unknown_experiment_before_building_anything(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--experiments", "3,12"]) == 1
    assert "experiment 12" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
