"""Temperature scaling: the fit recovers a known temperature, scaling keeps every decision, and `serkit ensemble
--calibrate` fits on validation only, stops an overconfident weak member from outvoting a better unsure one, and
records what it fitted."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import softmax

from serkit.cli import main
from serkit.errors import DataError
from serkit.evaluation.calibration import T_RANGE, fit_temperature, scale
from serkit.evaluation.ensemble import ensemble_runs
from serkit.evaluation.metrics import compute_metrics
from serkit.evaluation.prediction_table import SplitPredictions, write_predictions

LABELS = ["ang", "hap", "neu", "sad"]


def sampled(n: int, seed: int, spread: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Logits [n, 4] and labels drawn from softmax(logits): probabilities calibrated at T = 1 by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=spread, size=(n, len(LABELS)))
    targets = np.array([rng.choice(len(LABELS), p=p) for p in softmax(logits, axis=-1)])
    return logits, targets


@pytest.mark.parametrize("spread, true_t, seed", [(1.0, 0.5, 0), (2.0, 1.0, 1), (4.0, 3.0, 2)])
def test_the_fit_recovers_the_temperature_that_made_the_probabilities(spread, true_t, seed):
    logits, targets = sampled(4000, seed=seed, spread=spread)
    # a member that reports softmax(logits / true_t) is miscalibrated by exactly true_t
    fitted = fit_temperature(softmax(logits / true_t, axis=-1), targets)
    assert fitted == pytest.approx(1.0 / true_t, rel=0.1)


def test_scaling_keeps_every_decision_and_a_distribution():
    logits, _ = sampled(200, seed=1)
    probabilities = softmax(logits, axis=-1)
    for t in (0.1, 1.0, 7.0):
        scaled = scale(probabilities, t)
        np.testing.assert_array_equal(scaled.argmax(-1), probabilities.argmax(-1))
        np.testing.assert_allclose(scaled.sum(-1), 1.0)
    np.testing.assert_allclose(scale(probabilities, 1.0), probabilities, atol=1e-12)
    assert np.isfinite(scale(np.array([[1.0, 0.0, 0.0, 0.0]]), 0.05)).all()  # a written 0 is no log(0)


def test_a_degenerate_fit_stays_inside_the_bounds_and_empty_input_is_refused():
    targets = np.array([0, 1, 2, 3])
    assert T_RANGE[0] <= fit_temperature(np.eye(4), targets) < 1.0  # all right: sharpen (the loss is flat near 0)
    with pytest.warns(UserWarning, match="run x fold 1: its temperature reached the bound 20"):
        assert fit_temperature(np.eye(4)[[1, 2, 3, 0]], targets, "run x fold 1") == pytest.approx(T_RANGE[1], rel=1e-3)
    with pytest.raises(DataError, match="run x fold 2: no validation predictions"):
        fit_temperature(np.zeros((0, 4)), np.zeros(0, int), "run x fold 2")
    with pytest.raises(DataError, match="run x fold 3: validation probabilities that are not finite"):
        fit_temperature(np.full((4, 4), np.nan), targets, "run x fold 3")


def test_a_class_given_probability_0_is_named_when_it_flattens_the_member():
    """A probe whose training split lacked a class writes 0 for it; validation holding that class drives T to the
    bound, which flattens the member to near uniform: the fit warns rather than dropping it unseen."""
    logits, targets = sampled(2000, seed=3)
    probabilities = softmax(logits, axis=-1)
    probabilities[:, 0] = 0.0
    probabilities /= probabilities.sum(-1, keepdims=True)
    with pytest.warns(UserWarning, match="a class it gives probability 0 on validation"):
        assert fit_temperature(probabilities, targets, "probe fold 4") > 0.99 * T_RANGE[1]


def write_run(path, valid: tuple, test: tuple, folds=(1, 2)):
    """valid / test: (probabilities [N, 4], targets [N]); the same every fold."""
    for fold in folds:
        write_fold(path, fold, valid, test)
    return path


def write_fold(path, fold: int, valid: tuple, test: tuple):
    write_predictions(path / f"fold_{fold}" / "predictions.csv", LABELS, {
        name: SplitPredictions([f"{name}{i}" for i in range(len(t))], p, t)
        for name, (p, t) in (("valid", valid), ("test", test))})
    return path


def members(n: int, seed: int):
    """(unsure, sure): `unsure` is right 80 % of the time but near uniform; `sure` is right 50 % of the time and
    puts 0.97 on its choice. Averaged raw, `sure` decides nearly every row."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, len(LABELS), size=n)
    wrong = (targets + rng.integers(1, len(LABELS), size=n)) % len(LABELS)
    unsure_choice = np.where(rng.random(n) < 0.8, targets, wrong)
    sure_choice = np.where(rng.random(n) < 0.5, targets, (targets + rng.integers(1, len(LABELS), size=n)) % 4)
    unsure = np.full((n, 4), 0.22)
    unsure[np.arange(n), unsure_choice] = 0.34
    sure = np.full((n, 4), 0.01)
    sure[np.arange(n), sure_choice] = 0.97
    return (unsure, targets), (sure, targets)


def test_calibration_stops_an_overconfident_weak_member_from_outvoting_a_better_one(tmp_path):
    (unsure_v, t_v), (sure_v, _) = members(400, seed=2)
    (unsure_t, t_t), (sure_t, _) = members(400, seed=3)
    a = write_run(tmp_path / "unsure", (unsure_v, t_v), (unsure_t, t_t))
    b = write_run(tmp_path / "sure", (sure_v, t_v), (sure_t, t_t))
    raw = ensemble_runs([a, b], tmp_path / "raw")
    calibrated = ensemble_runs([a, b], tmp_path / "cal", calibrate=True)
    assert raw.stat("ua").mean < 0.6 < 0.75 < calibrated.stat("ua").mean
    record = json.loads((tmp_path / "cal" / "ensemble.json").read_text())
    t_unsure, t_sure = record["calibration"]["temperatures"]["1"]
    assert t_unsure < 1.0 < t_sure  # the unsure member sharpened, the sure one softened
    assert json.loads((tmp_path / "raw" / "ensemble.json").read_text())["calibration"] is None


def test_each_fold_is_scaled_by_its_own_temperatures(tmp_path):
    """Fold 1: a unsure, b sure; fold 2 the other way round. Each fold's temperatures must follow its own members
    (fold 1's applied to fold 2 would sharpen the weak sure member there and let it outvote the better one)."""
    (unsure_v, t_v), (sure_v, _) = members(400, seed=2)
    (unsure_t, t_t), (sure_t, _) = members(400, seed=3)
    a, b = tmp_path / "a", tmp_path / "b"
    write_fold(a, 1, (unsure_v, t_v), (unsure_t, t_t)), write_fold(b, 1, (sure_v, t_v), (sure_t, t_t))
    write_fold(a, 2, (sure_v, t_v), (sure_t, t_t)), write_fold(b, 2, (unsure_v, t_v), (unsure_t, t_t))
    ensemble_runs([a, b], tmp_path / "cal", calibrate=True)
    temperatures = json.loads((tmp_path / "cal" / "ensemble.json").read_text())["calibration"]["temperatures"]
    assert temperatures["1"][0] < 1.0 < temperatures["1"][1] and temperatures["2"][1] < 1.0 < temperatures["2"][0]
    folds = json.loads((tmp_path / "cal" / "cv.json").read_text())["folds"]
    assert [str(f["fold"]) for f in folds] == ["1", "2"] and all(f["metrics"]["ua"] > 0.75 for f in folds)


def test_selection_chooses_on_the_scaled_validation_predictions(tmp_path):
    """Runs [sure, unsure]: round 1 takes the unsure (better) one; in round 2 adding the sure one leaves the scaled
    mix at the unsure one's UA (a tie, which goes to the earlier run), while unscaled it would fall to ~0.5.
    Every recorded step must be the scaled mix's validation UA."""
    (unsure_v, t_v), (sure_v, _) = members(400, seed=2)
    sure = write_run(tmp_path / "sure", (sure_v, t_v), (sure_v, t_v))
    unsure = write_run(tmp_path / "unsure", (unsure_v, t_v), (unsure_v, t_v))
    ensemble_runs([sure, unsure], tmp_path / "cal", select_rounds=2, calibrate=True)
    record = json.loads((tmp_path / "cal" / "ensemble.json").read_text())
    t_sure, t_unsure = record["calibration"]["temperatures"]["1"]
    scaled, raw = (scale(sure_v, t_sure), scale(unsure_v, t_unsure)), (sure_v, unsure_v)
    counts = np.zeros(2)
    for step in record["selection"]["history"]:
        counts[0 if step["added"] == str(sure) else 1] += 1
        def ua(members) -> float:
            return compute_metrics(sum(c * m for c, m in zip(counts, members)).argmax(-1), t_v, LABELS).ua
        assert step["valid_ua"] == pytest.approx(ua(scaled))
    assert record["selection"]["history"][1]["added"] == str(sure) and ua(raw) < 0.6 < ua(scaled)


def test_temperatures_and_weights_never_read_test_labels(tmp_path):
    (unsure_v, t_v), (sure_v, _) = members(200, seed=4)
    (unsure_t, t_t), (sure_t, _) = members(200, seed=5)
    records = []
    for name, test_targets in (("one", t_t), ("other", (t_t + 1) % 4)):
        a = write_run(tmp_path / name / "a", (unsure_v, t_v), (unsure_t, test_targets))
        b = write_run(tmp_path / name / "b", (sure_v, t_v), (sure_t, test_targets))
        ensemble_runs([a, b], tmp_path / name / "ens", select_rounds=4, calibrate=True)
        records.append(json.loads((tmp_path / name / "ens" / "ensemble.json").read_text()))
    assert records[0]["calibration"] == records[1]["calibration"]
    assert records[0]["weights"] == records[1]["weights"]


def test_the_cli_flag_calibrates_and_a_member_without_validation_is_refused(tmp_path, capsys):
    (unsure_v, t_v), (sure_v, _) = members(100, seed=6)
    a = write_run(tmp_path / "a", (unsure_v, t_v), (unsure_v, t_v))
    b = write_run(tmp_path / "b", (sure_v, t_v), (sure_v, t_v))
    assert main(["ensemble", str(a), str(b), "--calibrate", "--select", "3", "--out", str(tmp_path / "e")]) == 0
    assert set(json.loads((tmp_path / "e" / "ensemble.json").read_text())["calibration"]["temperatures"]) == {"1", "2"}
    capsys.readouterr()
    assert main(["ensemble", str(a), str(tmp_path / "e"), "--calibrate", "--out", str(tmp_path / "f")]) == 1
    assert "e fold 1: no validation predictions to calibrate on" in capsys.readouterr().err
