"""What every classical baseline shares: the corpus's own folds (exactly those `serkit cv` uses), per fold the
rows of a per-utterance feature array with their class indices, the choice of C (and of a feature view) on
validation, and the report."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..data.config import DataConfig
from ..data.prepare import prepare_corpus
from ..data.utterance import Utterance
from ..errors import ConfigError
from ..evaluation.metrics import Metrics, compute_metrics
from ..evaluation.report import write_cv_report
from ..evaluation.tables import CVSummary, FoldScores
from ..util.atomic import write_json

PARTS = ("train", "valid", "test")
C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


class BaselineFolds:
    """The corpus read as `serkit cv` reads it; `folds`: the selected ones (None: all), checked to exist."""

    def __init__(self, data: DataConfig, folds: Sequence[int] | None = None):
        self.config = data
        self.data = prepare_corpus(data)
        self.classes = self.data.classes
        self.utterances: list[Utterance] = self.data.utterances
        self.folds = self.data.select_folds(folds)

    def split(self, features: np.ndarray) -> Iterator[tuple[int, dict[str, np.ndarray], dict[str, np.ndarray]]]:
        """features [N, ...] (row i for utterances[i]) -> per fold: (fold, {part: rows}, {part: class indices [n]})."""
        row_of = {utt.id: i for i, utt in enumerate(self.utterances)}
        index_of = {label: i for i, label in enumerate(self.classes)}
        for fold in self.folds:
            split = self.data.split(fold)
            parts = {name: getattr(split, name) for name in PARTS}
            yield (fold, {name: features[[row_of[u.id] for u in part]] for name, part in parts.items()},
                   {name: np.array([index_of[u.label] for u in part], dtype=np.int64) for name, part in parts.items()})

    def part_ids(self, fold: int) -> dict[str, list[str]]:
        """{"train"|"valid"|"test": utterance ids} of one fold, in the order `split` gives their rows."""
        split = self.data.split(fold)
        return {name: [u.id for u in getattr(split, name)] for name in PARTS}

    def write_report(self, out_dir: str | Path, title: str, test: Sequence[tuple[int, Metrics]], record_name: str,
                     record: dict) -> CVSummary:
        """cv.md/csv/json and the plots of the folds' (fold, test metrics), and `record_name` (what was run: the
        corpus, then `record`) in out_dir."""
        summary = CVSummary([FoldScores(fold=fold, metrics=metrics) for fold, metrics in test])
        write_cv_report(out_dir, title, summary)
        cfg = self.config
        write_json(Path(out_dir) / record_name, {"corpus": cfg.corpus, "root": str(cfg.root), "labels": self.classes,
                                                 "options": cfg.options, "folds": self.folds, **record})
        return summary


def choose_on_validation(estimator, views: dict[str, tuple[np.ndarray, np.ndarray]], targets: dict[str, np.ndarray],
                         labels: list[str], c_grid: Sequence[float]) -> tuple[str, float, Metrics, object, dict]:
    """Standardisation (the training rows' mean and std) + `estimator` (scikit-learn, with a C) for every view and
    C: trained on a view's training rows [N, F], scored by UA on its validation rows [M, F]. targets: {"train"|
    "valid": class indices}; test labels are never read. -> (view, C, validation Metrics, fitted model, {view: {C:
    validation UA}}) of the best; ties go to the earlier view, then the earlier C."""
    from sklearn.base import clone
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if not c_grid or any(not c > 0 for c in c_grid):
        raise ConfigError(f"--c: expected positive numbers, got {list(c_grid)}")
    if not len(targets["valid"]):
        raise ConfigError("the baseline chooses C on the validation set, but this fold has none "
                          "(use the corpus's default valid option)")
    best, grid = None, {}
    for view, (train, valid) in views.items():
        grid[view] = {}
        for c in c_grid:
            model = make_pipeline(StandardScaler(), clone(estimator).set_params(C=c))
            model.fit(train, targets["train"])
            metrics = compute_metrics(model.predict(valid), targets["valid"], labels)
            grid[view][c] = metrics.ua
            if best is None or metrics.ua > best[2].ua:
                best = (view, c, metrics, model)
    return (*best, grid)
