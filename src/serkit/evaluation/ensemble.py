"""An ensemble of finished runs: their per-utterance probabilities averaged, fold by fold.

Members are run folders of `serkit cv`, `serkit baseline` or `serkit ensemble` (each fold's
`fold_<k>/predictions.csv`, evaluation/prediction_table.py). Per fold every member must have predicted the
same test utterances with the same classes in the same order (the same corpus, labels and folds); the
ensemble's probabilities are the weighted mean of the members' (weights normalised to sum to 1), its class the
most probable one. With calibration, each member's probabilities are first temperature-scaled, one temperature
per member and fold fitted on that fold's validation predictions (calibration.py). Only folds every member
finished are scored; the rest are named, not silently dropped.

Writes, like a cv run: cv.md / cv.csv / cv.json, the plots, fold_<k>/predictions.csv (so ensembles nest),
cost.json (members' trainable parameters and CPU seconds summed: what the ensemble cost to train) and
ensemble.json (members, weights, every member's test UA per fold beside the ensemble's, and with calibration the
temperatures: per fold, a list in member order).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..util.atomic import write_json
from .calibration import fit_temperature, scale
from .metrics import compute_metrics
from .prediction_table import SplitPredictions, read_predictions, write_predictions
from .report import write_cv_report
from .tables import CVSummary, FoldScores


def fold_predictions(run: Path) -> dict[int, Path]:
    """{fold number: predictions.csv} of a finished run folder."""
    suffixes = {path: path.parent.name.removeprefix("fold_") for path in run.glob("fold_*/predictions.csv")}
    return {int(suffix): path for path, suffix in suffixes.items() if suffix.isdigit()}


def _align(member: SplitPredictions, reference: SplitPredictions, where: str, part: str = "test") -> np.ndarray:
    """member's probabilities [N, C] in reference's utterance order; DataError when the sets or labels differ."""
    row = {utt_id: i for i, utt_id in enumerate(member.ids)}
    missing = [utt_id for utt_id in reference.ids if utt_id not in row]
    if missing or len(row) != len(reference.ids):
        raise DataError(f"{where}: its {part} utterances are not the first member's ({len(missing)} of "
                        f"{len(reference.ids)} missing, e.g. {missing[:3]}; {len(row)} rows): the runs must share "
                        "corpus, labels and folds")
    order = np.array([row[utt_id] for utt_id in reference.ids])
    if not np.array_equal(member.targets[order], reference.targets):
        raise DataError(f"{where}: the same utterances carry different true labels than in the first member")
    return member.probabilities[order]


def _fold_members(runs: list[Path], files: list[dict[int, Path]], fold: int, part: str,
                  temperatures: Sequence[float] | None = None, purpose: str = "select"
                  ) -> tuple[list[str], SplitPredictions, list[np.ndarray]]:
    """One fold of every run -> (labels, the first member's `part` split, every member's probabilities [N, C] in
    its utterance order, each scaled by its temperature when given); DataError naming the run when one differs in
    classes or utterances or lacks `part`."""
    loaded = [read_predictions(found[fold]) for found in files]
    labels = loaded[0][0]
    for run, (member_labels, parts) in zip(runs, loaded):
        if member_labels != labels:
            raise DataError(f"{run} fold {fold}: classes {member_labels} differ from the first member's {labels}")
        if part not in parts:  # every writer writes test rows; an ensemble's folds hold no validation rows
            raise DataError(f"{run} fold {fold}: no validation predictions to {purpose} on (an ensemble's folds "
                            f"hold test predictions only: {purpose} on the runs themselves)")
    reference = loaded[0][1][part]
    where, split = (" (validation)", "validation") if part == "valid" else ("", "test")
    members = [_align(parts[part], reference, f"{run} fold {fold}{where}", split)
               for run, (_, parts) in zip(runs, loaded)]
    if temperatures is not None:
        members = [scale(member, t) for member, t in zip(members, temperatures)]
    return labels, reference, members


def ensemble_runs(runs: Sequence[str | Path], out_dir: str | Path, weights: Sequence[float] | None = None,
                  select_rounds: int = 0, calibrate: bool = False) -> CVSummary:
    """Average `runs` fold by fold into `out_dir`. weights: one per run (default: equal). select_rounds > 0: the
    weights are chosen on validation instead (select_weights), never on test. calibrate: each member's
    probabilities temperature-scaled first, fitted per fold on validation (fit_temperatures)."""
    runs = [Path(r) for r in runs]
    if len(runs) < 2:
        raise ConfigError(f"an ensemble needs at least two runs, got {len(runs)}")
    if select_rounds < 0:
        raise ConfigError(f"--select is {select_rounds}; expected a number of rounds, 1 or more")
    out_dir = Path(out_dir)
    for run in runs:  # writing there would replace the member's own fold predictions with the ensemble's
        if out_dir.resolve() == run.resolve() or run.resolve() in out_dir.resolve().parents:
            raise ConfigError(f"--out {out_dir} is member run {run} or inside it: give the ensemble a folder of "
                              "its own")
    if select_rounds and weights is not None:
        raise ConfigError("--weights and --select: give the weights, or let validation choose them, not both")
    weights = np.ones(len(runs)) if weights is None else np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(runs),) or not (weights >= 0).all() or not weights.sum() > 0:
        raise ConfigError(f"--weights: expected {len(runs)} non-negative numbers (one per run), not all 0; "
                          f"got {[float(w) for w in weights]}")
    files = [fold_predictions(run) for run in runs]
    for run, found in zip(runs, files):
        if not found:
            raise DataError(f"{run}: no fold_<k>/predictions.csv (not a finished serkit cv / baseline run, or one "
                            "made before serkit wrote per-utterance predictions: rerun it)")
    folds = sorted(set.intersection(*(set(f) for f in files)))
    if not folds:
        raise DataError("the runs have no finished fold in common: " +
                        "; ".join(f"{run}: folds {sorted(f)}" for run, f in zip(runs, files)))
    skipped = sorted(set.union(*(set(f) for f in files)) - set(folds))
    if skipped:
        warnings.warn(f"folds {skipped} are not finished in every run and are left out of the ensemble", stacklevel=2)
    temperatures = fit_temperatures(runs, files, folds) if calibrate else {}
    selection = None
    if select_rounds:
        weights, selection = select_weights(runs, files, folds, select_rounds, temperatures)
    weights = weights / weights.sum()
    scores, member_ua = [], {str(run): [] for run in runs}
    for fold in folds:
        labels, reference, members = _fold_members(runs, files, fold, "test", temperatures.get(fold))
        probs = sum(weight * member for weight, member in zip(weights, members))
        for run, member in zip(runs, members):
            member_ua[str(run)].append(compute_metrics(member.argmax(-1), reference.targets, labels).ua)
        scores.append(FoldScores(fold=fold, metrics=compute_metrics(probs.argmax(-1), reference.targets, labels)))
        write_predictions(out_dir / f"fold_{fold}" / "predictions.csv", labels,
                          {"test": SplitPredictions(reference.ids, probs, reference.targets)})
    summary = CVSummary(scores)
    write_cv_report(out_dir, f"ensemble of {len(runs)} runs", summary)
    write_json(out_dir / "cost.json", _summed_cost(runs))
    write_json(out_dir / "ensemble.json", {
        "members": [str(r) for r in runs], "weights": weights.tolist(), "selection": selection, "folds": folds,
        "skipped_folds": skipped,
        "calibration": {"by": "one temperature per member and fold, negative log-likelihood on the fold's "
                              "validation predictions", "temperatures": {str(fold): t for fold, t in
                                                                        temperatures.items()}} if calibrate else None,
        "test_ua_per_fold": {"ensemble": [s.metrics.ua for s in scores], **member_ua}})
    return summary


def fit_temperatures(runs: list[Path], files: list[dict[int, Path]], folds: list[int]) -> dict[int, list[float]]:
    """{fold: one temperature per run}, each fitted on that run's validation predictions of the fold (test labels
    are never read)."""
    temperatures = {}
    for fold in folds:
        _, reference, members = _fold_members(runs, files, fold, "valid", purpose="calibrate")
        temperatures[fold] = [fit_temperature(member, reference.targets, f"{run} fold {fold}")
                              for run, member in zip(runs, members)]
    return temperatures


def select_weights(runs: list[Path], files: list[dict[int, Path]], folds: list[int], rounds: int,
                   temperatures: dict[int, list[float]] | None = None) -> tuple[np.ndarray, dict]:
    """Greedy forward selection with replacement (Caruana et al. 2004) on the validation predictions (scaled by
    `temperatures` when given): each round adds the member whose addition gives the highest mean validation UA
    over the folds (ties: the earlier run); the weights are how often each was added, taken at the best round.
    Test labels are never read."""
    temperatures = temperatures or {}
    valid = [_fold_members(runs, files, fold, "valid", temperatures.get(fold)) for fold in folds]

    def valid_ua(counts: np.ndarray) -> float:
        scores = []
        for labels, reference, members in valid:
            probs = sum(count * member for count, member in zip(counts, members) if count)
            scores.append(compute_metrics(probs.argmax(-1), reference.targets, labels).ua)
        return float(np.mean(scores))

    counts, chosen, history = np.zeros(len(runs)), [], []
    for _ in range(rounds):
        tried = [valid_ua(counts + np.eye(len(runs))[index]) for index in range(len(runs))]
        best = int(np.argmax(tried))  # argmax takes the first of equals
        counts[best] += 1
        chosen.append(counts.copy())
        history.append({"added": str(runs[best]), "valid_ua": tried[best]})
    best_round = int(np.argmax([step["valid_ua"] for step in history]))
    return chosen[best_round], {"by": "mean validation UA over the folds (greedy forward selection with replacement)",
                                "rounds": rounds, "best_round": best_round + 1, "history": history}


def _summed_cost(runs: Sequence[Path]) -> dict:
    """Trainable parameters and CPU seconds of the members, summed (None where a member did not record them)."""
    total = {"trainable_params": 0, "cpu_seconds": 0.0}
    for run in runs:
        records = [json.loads(path.read_text()) for path in (run / "cost.json", run / "probe.json") if path.is_file()]
        record = records[-1] if records else {}  # probe.json (a probe's own record) over cost.json
        for key in total:
            value = record.get(key)
            total[key] = None if value is None or total[key] is None else total[key] + value
    return total
