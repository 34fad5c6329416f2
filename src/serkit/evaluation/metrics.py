"""Classification metrics of SER: WA, UA, macro-F1 and the confusion matrix.

Definitions (C classes, confusion matrix M with rows = true class, columns = predicted class):

- WA ("weighted accuracy", plain accuracy) = trace(M) / sum(M): every utterance counts once.
- UA ("unweighted accuracy", the paper's UACC) = mean over classes c of recall_c = M[c, c] / sum(M[c, :]):
  every class counts once, whatever its size.
- macro-F1 = mean over classes of F1_c = 2 P_c R_c / (P_c + R_c).

Classes absent from the targets (no row mass) have no recall. They are **left out of UA and macro-F1** (a
warning says which), because counting them as 0 would punish a model for a class it could not have seen in
that split, and counting them as 1 would reward it. Predictions *into* such a class still count: they are
misses in the rows of the classes that are present, so they lower WA, UA and F1 as they should.
A class that is never predicted has precision 0 (not undefined) for F1, as scikit-learn's zero_division=0.

All values are fractions in [0, 1]; tables and reports print percentages.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix

from ..errors import DataError


@dataclass(frozen=True, eq=False)
class Metrics:
    """Scores of one model on one set.

    wa, ua, macro_f1: fractions in [0, 1]. confusion: int64 [C, C], rows = true, columns = predicted,
    in the order of `labels`. n: number of scored utterances (= confusion.sum()).
    """

    wa: float
    ua: float
    macro_f1: float
    confusion: np.ndarray
    labels: tuple[str, ...]
    n: int

    def per_class_recall(self) -> dict[str, float | None]:
        """recall_c = M[c, c] / row sum; None for a class absent from the targets."""
        return _ratios(np.diag(self.confusion), self.confusion.sum(axis=1), self.labels)

    def per_class_precision(self) -> dict[str, float | None]:
        """precision_c = M[c, c] / column sum; None for a class never predicted."""
        return _ratios(np.diag(self.confusion), self.confusion.sum(axis=0), self.labels)

    def to_dict(self) -> dict:
        """JSON-safe: plain floats, ints, lists and strings (recall/precision are included for readers,
        and recomputed, not read, by `from_dict`)."""
        return {"wa": float(self.wa), "ua": float(self.ua), "macro_f1": float(self.macro_f1), "n": int(self.n),
                "labels": list(self.labels), "confusion": self.confusion.astype(int).tolist(),
                "recall": self.per_class_recall(), "precision": self.per_class_precision()}

    @classmethod
    def from_dict(cls, obj: dict) -> "Metrics":
        try:
            return cls(wa=float(obj["wa"]), ua=float(obj["ua"]), macro_f1=float(obj["macro_f1"]),
                       confusion=np.asarray(obj["confusion"], dtype=np.int64), labels=tuple(obj["labels"]),
                       n=int(obj["n"]))
        except KeyError as e:
            raise DataError(f"metrics dict lacks key {e.args[0]!r}; "
                            "expected wa, ua, macro_f1, confusion, labels, n") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Metrics):
            return NotImplemented
        fields = ("wa", "ua", "macro_f1", "labels", "n")
        return ([getattr(self, f) for f in fields] == [getattr(other, f) for f in fields]
                and np.array_equal(self.confusion, other.confusion))


def compute_metrics(predictions: Sequence[int] | np.ndarray, targets: Sequence[int] | np.ndarray,
                    labels: Sequence[str]) -> Metrics:
    """Score class-index predictions [N] against targets [N]; `labels[i]` names class index i.

    Raises DataError when the arrays differ in length, are empty, or hold an index outside [0, C).
    """
    predictions = _as_index_array(predictions, "predictions", len(labels))
    targets = _as_index_array(targets, "targets", len(labels))
    if predictions.shape != targets.shape:
        raise DataError(f"predictions have {predictions.size} entries but targets have {targets.size}")
    return metrics_from_confusion(confusion_matrix(targets, predictions, labels=range(len(labels))), labels)


def metrics_from_confusion(confusion: np.ndarray, labels: Sequence[str]) -> Metrics:
    """The metrics of a confusion matrix [C, C] (rows = true), e.g. one summed over folds; `compute_metrics`
    comes here too, so both routes give the same numbers (F1 is a function of the matrix alone, and
    2 TP / (predicted + true) is scikit-learn's own formula)."""
    labels = tuple(labels)
    confusion = np.asarray(confusion)
    if confusion.shape != (len(labels), len(labels)):
        raise DataError(f"confusion matrix has shape {confusion.shape}, expected {(len(labels), len(labels))} "
                        f"for labels {list(labels)}")
    if (confusion < 0).any() or not np.array_equal(confusion, np.round(confusion)):
        raise DataError("confusion matrix must hold non-negative integer counts")
    confusion = confusion.astype(np.int64)
    hits, true, predicted = np.diag(confusion), confusion.sum(axis=1), confusion.sum(axis=0)
    if true.sum() == 0:
        raise DataError("confusion matrix is empty: nothing to score")
    present = true > 0
    if not present.all():
        warnings.warn(f"classes {[label for label, p in zip(labels, present) if not p]} do not occur in the "
                      f"targets; UA and macro-F1 average over the other {int(present.sum())} classes", stacklevel=2)
    return Metrics(
        wa=float(hits.sum() / true.sum()), ua=float(np.mean(hits[present] / true[present])),
        macro_f1=float(np.mean(2 * hits[present] / (predicted[present] + true[present]))),
        confusion=confusion, labels=labels, n=int(true.sum()),
    )


def _as_index_array(values, name: str, num_classes: int) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise DataError(f"{name} must be a 1-D array of class indices, got shape {array.shape}")
    if array.size == 0:
        raise DataError(f"{name} is empty: nothing to score")
    if not np.issubdtype(array.dtype, np.integer):
        raise DataError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    bad = (array < 0) | (array >= num_classes)
    if bad.any():
        raise DataError(f"{name} holds class index {int(array[bad][0])}, outside [0, {num_classes}) "
                        f"for {num_classes} labels")
    return array


def _ratios(numerators: np.ndarray, denominators: np.ndarray, labels: tuple[str, ...]) -> dict[str, float | None]:
    return {label: (float(num / den) if den > 0 else None)
            for label, num, den in zip(labels, numerators, denominators)}
