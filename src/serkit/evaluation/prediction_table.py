"""Per-utterance predictions of one fold, as a CSV file next to its scores: `<fold dir>/predictions.csv`.

    split,id,label,p_<class 0>,p_<class 1>,...

one row per validation and test utterance (split "valid" / "test"), `label` the true class, the p_ columns the
model's probabilities in class-index order. `serkit cv` folds and `serkit baseline` folds write it; `serkit
ensemble` reads several runs' files and combines them utterance by utterance.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..util.atomic import write_text
from .tables import csv_text

PREFIX = "p_"


@dataclass
class SplitPredictions:
    """ids [N], probabilities [N, C] float64, targets [N] class indices."""

    ids: list[str]
    probabilities: np.ndarray
    targets: np.ndarray


def write_predictions(path: str | Path, labels: list[str], splits: dict[str, SplitPredictions]) -> None:
    rows = [[name, utt_id, labels[int(target)], *(f"{p:.6g}" for p in probs)] for name, part in splits.items()
            for utt_id, probs, target in zip(part.ids, part.probabilities, part.targets)]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_text(path, csv_text(["split", "id", "label", *(PREFIX + label for label in labels)], rows))


def read_predictions(path: str | Path) -> tuple[list[str], dict[str, SplitPredictions]]:
    """-> (labels, {split: SplitPredictions}); DataError naming the file and line for anything malformed."""
    path = Path(path)
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read the predictions ({error})") from None
    header = rows[0] if rows else []
    if header[:3] != ["split", "id", "label"] or len(header) < 5 or not all(h.startswith(PREFIX) for h in header[3:]):
        raise DataError(f"{path}: line 1: expected the header split,id,label,p_<class>,... (a predictions.csv "
                        f"of serkit cv / baseline), got {','.join(header)[:120]!r}")
    labels = [h[len(PREFIX):] for h in header[3:]]
    index = {label: i for i, label in enumerate(labels)}
    parts: dict[str, tuple[list, list, list]] = {}
    for line, row in enumerate(rows[1:], start=2):
        try:
            if len(row) != len(header):
                raise ValueError(f"{len(row)} fields, expected {len(header)}")
            probs = [float(x) for x in row[3:]]
            target = index[row[2]]
        except (ValueError, KeyError) as error:
            raise DataError(f"{path}: line {line}: {error}") from None
        ids, prob_rows, targets = parts.setdefault(row[0], ([], [], []))
        ids.append(row[1])
        prob_rows.append(probs)
        targets.append(target)
    return labels, {name: SplitPredictions(ids, np.array(probs, dtype=np.float64), np.array(targets, dtype=np.int64))
                    for name, (ids, probs, targets) in parts.items()}
