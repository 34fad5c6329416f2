"""`serkit ensemble`: runs' per-utterance probabilities averaged fold by fold, aligned by utterance id, and
every mismatch (other utterances, labels, classes, folds) refused or named."""

from __future__ import annotations

import json

import numpy as np
import pytest

from serkit.cli import main
from serkit.errors import ConfigError, DataError
from serkit.evaluation.ensemble import ensemble_runs
from serkit.evaluation.prediction_table import SplitPredictions, read_predictions, write_predictions

LABELS = ["ang", "hap", "sad"]
IDS = [f"utt{i}" for i in range(6)]
TARGETS = np.array([0, 0, 1, 1, 2, 2])


def make_run(path, probs_by_fold: dict[int, np.ndarray], order=None, labels=LABELS, cost=None):
    order = list(range(len(IDS))) if order is None else order
    for fold, probs in probs_by_fold.items():
        write_predictions(path / f"fold_{fold}" / "predictions.csv", labels, {
            "valid": SplitPredictions(IDS[:2], probs[:2], TARGETS[:2]),
            "test": SplitPredictions([IDS[i] for i in order], probs[order], TARGETS[order])})
    if cost:
        (path / "cost.json").write_text(json.dumps(cost))
    return path


def onehot(classes) -> np.ndarray:
    return np.eye(3)[classes] * 0.7 + 0.1


def test_the_mean_of_probabilities_decides_and_rows_are_aligned_by_id(tmp_path):
    # member a is right on utt0-3, b on utt2-5; where they disagree, b is the more confident
    a = onehot([0, 0, 1, 1, 0, 0])
    b = onehot([1, 1, 1, 1, 2, 2]) * 1.0
    b[:2] = [0.2, 0.8, 0.0]
    run_a = make_run(tmp_path / "a", {1: a, 2: a}, cost={"trainable_params": 10, "cpu_seconds": 1.5})
    run_b = make_run(tmp_path / "b", {1: b, 2: b}, order=[5, 3, 1, 0, 2, 4], cost={"trainable_params": 5,
                                                                                  "cpu_seconds": 2.0})
    summary = ensemble_runs([run_a, run_b], tmp_path / "ens")
    expected = ((a + b) / 2).argmax(-1)  # [1, 1, 1, 1, 2, 2]: b's confident wrong calls win on utt0-1
    assert summary.stat("ua").mean == pytest.approx(np.mean([(expected[TARGETS == c] == c).mean() for c in range(3)]))
    _, parts = read_predictions(tmp_path / "ens" / "fold_1" / "predictions.csv")
    np.testing.assert_allclose(parts["test"].probabilities, (a + b) / 2, atol=1e-6)
    assert json.loads((tmp_path / "ens" / "cost.json").read_text()) == {"trainable_params": 15, "cpu_seconds": 3.5}
    record = json.loads((tmp_path / "ens" / "ensemble.json").read_text())
    assert record["folds"] == [1, 2] and record["test_ua_per_fold"][str(run_a)] == [pytest.approx(2 / 3)] * 2


def test_weights_move_the_decision_and_the_cli_writes_the_report(tmp_path, capsys):
    a, b = onehot([0, 0, 1, 1, 2, 2]), onehot([1, 1, 1, 1, 1, 1])
    run_a, run_b = make_run(tmp_path / "a", {1: a}), make_run(tmp_path / "b", {1: b})
    assert main(["ensemble", str(run_a), str(run_b), "--out", str(tmp_path / "w"), "--weights", "3,1"]) == 0
    assert json.loads((tmp_path / "w" / "cv.json").read_text())["summary"]["ua"]["mean"] == 1.0
    assert main(["ensemble", str(run_a), str(run_b), "--out", str(tmp_path / "v"), "--weights", "1,3"]) == 0
    assert json.loads((tmp_path / "v" / "cv.json").read_text())["summary"]["ua"]["mean"] == pytest.approx(1 / 3)
    assert "report:" in capsys.readouterr().out


def test_folds_not_in_every_run_are_left_out_and_named(tmp_path):
    a = onehot(TARGETS)
    with pytest.warns(UserWarning, match=r"folds \[2\]"):
        ensemble_runs([make_run(tmp_path / "a", {1: a, 2: a}), make_run(tmp_path / "b", {1: a})], tmp_path / "e")
    assert json.loads((tmp_path / "e" / "ensemble.json").read_text())["skipped_folds"] == [2]


def test_the_cli_shows_left_out_folds_as_its_own_note(tmp_path, capsys):
    a = onehot(TARGETS)
    run_a, run_b = make_run(tmp_path / "a", {1: a, 2: a}), make_run(tmp_path / "b", {1: a})
    assert main(["ensemble", str(run_a), str(run_b), "--out", str(tmp_path / "e")]) == 0
    err = capsys.readouterr().err
    assert "serkit ensemble: folds [2] are not finished in every run" in err and "UserWarning" not in err


def test_mismatched_runs_are_refused_with_the_run_named(tmp_path):
    a = onehot(TARGETS)
    good = make_run(tmp_path / "good", {1: a})
    other = make_run(tmp_path / "other_labels", {1: a}, labels=["x", "y", "z"])
    with pytest.raises(DataError, match="other_labels fold 1: classes"):
        ensemble_runs([good, other], tmp_path / "e")
    fewer = tmp_path / "fewer"
    write_predictions(fewer / "fold_1" / "predictions.csv", LABELS,
                      {"test": SplitPredictions(IDS[:4], a[:4], TARGETS[:4])})
    with pytest.raises(DataError, match="fewer fold 1: its test utterances"):
        ensemble_runs([good, fewer], tmp_path / "e")
    relabelled = tmp_path / "relabelled"
    write_predictions(relabelled / "fold_1" / "predictions.csv", LABELS,
                      {"test": SplitPredictions(IDS, a, TARGETS[::-1])})
    with pytest.raises(DataError, match="different true labels"):
        ensemble_runs([good, relabelled], tmp_path / "e")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no fold_<k>/predictions.csv"):
        ensemble_runs([good, tmp_path / "empty"], tmp_path / "e")
    disjoint = make_run(tmp_path / "disjoint", {3: a})
    with pytest.raises(DataError, match="no finished fold in common"):
        ensemble_runs([good, disjoint], tmp_path / "e")


@pytest.mark.parametrize("weights, runs", [([1.0], 2), ([1.0, -1.0], 2), ([0.0, 0.0], 2), (None, 1)])
def test_bad_weights_or_a_single_run_are_config_errors(tmp_path, weights, runs):
    paths = [make_run(tmp_path / f"r{i}", {1: onehot(TARGETS)}) for i in range(runs)]
    with pytest.raises(ConfigError):
        ensemble_runs(paths, tmp_path / "e", weights)


@pytest.mark.parametrize("text, message", [
    ("id,label,p_a\n", "line 1: expected the header"),
    ("split,id,label,p_a,p_b\ntest,u1,a,0.5\n", "line 2: 4 fields"),
    ("split,id,label,p_a,p_b\ntest,u1,c,0.5,0.5\n", "line 2: 'c'"),
    ("split,id,label,p_a,p_b\ntest,u1,a,half,0.5\n", "line 2: could not convert"),
])
def test_malformed_prediction_files_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "predictions.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=f"predictions.csv: {message}"):
        read_predictions(path)


def make_split_run(path, valid: np.ndarray, test: np.ndarray, folds=(1, 2)):
    """A run whose validation predictions [6, 3] and test predictions [6, 3] differ (same utterance ids)."""
    for fold in folds:
        write_predictions(path / f"fold_{fold}" / "predictions.csv", LABELS, {
            "valid": SplitPredictions(IDS, valid, TARGETS), "test": SplitPredictions(IDS, test, TARGETS)})
    return path


def test_select_chooses_the_weights_on_validation_only(tmp_path, capsys):
    right, wrong = onehot(TARGETS), onehot([1, 2, 2, 0, 0, 1])
    half = onehot([0, 0, 1, 1, 0, 0])  # 2 of 3 classes right
    # b is the best on validation and the worst on test; a the reverse: selection must follow validation
    run_a = make_split_run(tmp_path / "a", valid=wrong, test=right)
    run_b = make_split_run(tmp_path / "b", valid=right, test=wrong)
    run_c = make_split_run(tmp_path / "c", valid=half, test=half)
    assert main(["ensemble", str(run_a), str(run_b), str(run_c), "--out", str(tmp_path / "s"), "--select", "4"]) == 0
    record = json.loads((tmp_path / "s" / "ensemble.json").read_text())
    assert record["weights"] == [0.0, 1.0, 0.0]  # b alone: 100 % on validation from the first round
    assert record["selection"]["best_round"] == 1 and record["selection"]["history"][0]["valid_ua"] == 1.0
    assert json.loads((tmp_path / "s" / "cv.json").read_text())["summary"]["ua"]["mean"] == 0.0  # b's test UA
    assert "report:" in capsys.readouterr().out


def test_select_mixes_members_when_the_mix_is_better_on_validation(tmp_path):
    a = onehot([0, 0, 1, 1, 0, 0])  # right on ang, hap
    b = onehot([2, 2, 2, 2, 2, 2])  # right on sad only
    b[:, 2] = 0.45  # unsure: it only wins where a is unsure too
    a[4:] = [0.4, 0.3, 0.3]
    run_a = make_split_run(tmp_path / "a", valid=a, test=a)
    run_b = make_split_run(tmp_path / "b", valid=b, test=b)
    ensemble_runs([run_a, run_b], tmp_path / "s", select_rounds=3)
    record = json.loads((tmp_path / "s" / "ensemble.json").read_text())
    assert record["weights"][0] > 0 and record["weights"][1] > 0
    assert record["selection"]["history"][-1]["valid_ua"] >= record["selection"]["history"][0]["valid_ua"]


def test_select_refuses_members_without_validation_and_weights_with_select(tmp_path):
    run_a = make_split_run(tmp_path / "a", valid=onehot(TARGETS), test=onehot(TARGETS))
    run_b = make_split_run(tmp_path / "b", valid=onehot(TARGETS), test=onehot(TARGETS))
    nested = tmp_path / "ens"
    ensemble_runs([run_a, run_b], nested)  # an ensemble's folds hold test predictions only
    with pytest.raises(DataError, match=r"ens fold 1: no validation predictions to select on"):
        ensemble_runs([run_a, nested], tmp_path / "s", select_rounds=2)
    with pytest.raises(ConfigError, match="not both"):
        ensemble_runs([run_a, run_b], tmp_path / "s", [1.0, 2.0], select_rounds=2)


@pytest.mark.parametrize("out", ["a", "a/inner"])
def test_an_out_folder_that_is_a_member_or_inside_one_is_refused_and_the_member_kept(tmp_path, out):
    run_a = make_run(tmp_path / "a", {1: onehot([0, 0, 1, 1, 2, 2])})
    run_b = make_run(tmp_path / "b", {1: onehot([1] * 6)})
    before = (run_a / "fold_1" / "predictions.csv").read_bytes()
    with pytest.raises(ConfigError, match="member run .* or inside it"):
        ensemble_runs([run_b, run_a], tmp_path / out)
    assert (run_a / "fold_1" / "predictions.csv").read_bytes() == before


def test_select_0_and_negative_weights_are_refused_in_plain_words(tmp_path, capsys):
    run_a, run_b = make_run(tmp_path / "a", {1: onehot([0] * 6)}), make_run(tmp_path / "b", {1: onehot([1] * 6)})
    with pytest.raises(SystemExit):
        main(["ensemble", str(run_a), str(run_b), "--out", str(tmp_path / "e"), "--select", "0"])
    assert "expected 1 or more" in capsys.readouterr().err
    assert main(["ensemble", str(run_a), str(run_b), "--out", str(tmp_path / "e"), "--weights", "1,-1"]) == 1
    assert "got [1.0, -1.0]" in capsys.readouterr().err
