"""`serkit report RUN_DIR` rebuilds a cross-validation run's tables and plots from fold_*/result.json."""

from __future__ import annotations

import json

import numpy as np
import pytest

from serkit.cli import main
from serkit.evaluation.metrics import compute_metrics
from serkit.evaluation.report import write_cv_report
from serkit.training.cv import summarize
from serkit.training.fold import FoldResult

LABELS = ["neu", "hap", "ang", "sad"]
REPORT_FILES = ("cv.md", "cv.csv", "cv.json", "confusion.png", "folds.png")


def fold_result(fold: int, seed: int, averaged: bool = True) -> FoldResult:
    """A fold's result with made-up predictions: test accuracy differs per fold, averaging gains a little."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 4, size=60)

    def scored(accuracy: float):
        predictions = np.where(rng.random(60) < accuracy, targets, rng.integers(0, 4, size=60))
        return compute_metrics(predictions, targets, LABELS)

    best = {"valid": scored(0.6), "test": scored(0.5 + 0.05 * fold)}
    average = {"valid": scored(0.65), "test": scored(0.55 + 0.05 * fold)} if averaged else None
    return FoldResult(fold, best, average, "averaged" if averaged else "best")


def make_run(root, folds: list[int], averaged: bool = True):
    run = root / "run"
    results = [fold_result(f, seed=f, averaged=averaged) for f in folds]
    for result in results:
        (run / f"fold_{result.fold}").mkdir(parents=True)
        (run / f"fold_{result.fold}" / "result.json").write_text(json.dumps(result.to_dict()))
    (run / "run.json").write_text(json.dumps({"name": "05_w2v2_ecapa", "seed": 0}))
    return run, results


def test_report_rebuilds_what_cv_writes(tmp_path, capsys):
    run, results = make_run(tmp_path, [1, 2, 3, 4, 5, 10])
    expected_dir = tmp_path / "expected"
    write_cv_report(expected_dir, "05_w2v2_ecapa", summarize(results))  # what `serkit cv` writes at the end

    assert main(["report", str(run)]) == 0
    for name in REPORT_FILES:
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    for name in ("cv.md", "cv.csv", "cv.json"):
        assert (run / name).read_text() == (expected_dir / name).read_text(), name
    summary = json.loads((run / "cv.json").read_text())
    assert [f["fold"] for f in summary["folds"]] == ["1", "2", "3", "4", "5", "10"]  # numeric order
    assert "best single checkpoint" in (run / "cv.md").read_text()
    out = capsys.readouterr().out
    assert "mean ± std" in out and str(run / "folds.png") in out


def test_report_of_a_partial_run_without_averaging(tmp_path):
    run, results = make_run(tmp_path, [2, 4], averaged=False)
    assert main(["report", str(run), "--title", "two folds"]) == 0
    summary = json.loads((run / "cv.json").read_text())
    assert [f["fold"] for f in summary["folds"]] == ["2", "4"]
    ua = np.mean([r.best["test"].ua for r in results])
    assert (run / "cv.md").read_text().count("|") > 10 and f"{100 * ua:.2f}" in (run / "cv.md").read_text()


@pytest.mark.parametrize("setup, message", [
    (lambda run: None, "run folder not found"),
    (lambda run: run.mkdir(), "no fold_*/result.json"),
    (lambda run: ((run / "fold_1").mkdir(parents=True), (run / "fold_1" / "result.json").write_text("{}")),
     "not a fold result"),
])
def test_report_errors_name_the_folder_or_file(tmp_path, capsys, setup, message):
    run = tmp_path / "run"
    setup(run)
    assert main(["report", str(run)]) == 1
    err = capsys.readouterr().err
    assert message in err and str(run) in err
