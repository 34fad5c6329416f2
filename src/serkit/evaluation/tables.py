"""Cross-validation tables: one row per fold, mean ± std, summed confusion, and what averaging gained.

Spread over folds is the **sample** standard deviation (ddof=1): the folds are a sample of the ways the
corpus could be split, and the paper's 5 folds are too few for the ddof=0 (population) value, which is
biased low. With a single fold the spread is undefined and shown as "—" (None in JSON).

Units: `Metrics` and the JSON dict hold fractions in [0, 1]; the Markdown and CSV show percentages with
two decimals (the paper's unit), and the CSV headers say so (`wa_pct`).

When a fold also gives the metrics of its best single checkpoint (`FoldScores.best_single`), `metrics` is
taken to be the averaged model, and every table shows both plus the gain (averaged − best, in points).
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError
from ..util.atomic import write_json, write_text
from .metrics import Metrics, metrics_from_confusion

SCORES = ("wa", "ua", "macro_f1")
_TITLES = {"wa": "WA", "ua": "UA", "macro_f1": "macro-F1"}
STD_DDOF = 1
DASH = "—"


@dataclass(frozen=True)
class FoldScores:
    """One fold's test scores. metrics: the reported model (the averaged one when averaging is on);
    best_single: the best single checkpoint by validation score on the same test set, when known."""

    fold: str
    metrics: Metrics
    best_single: Metrics | None = None

    def __post_init__(self):
        object.__setattr__(self, "fold", str(self.fold))  # 1 and "1" name the same fold in every output


@dataclass(frozen=True)
class MeanStd:
    """mean and sample std (ddof=1; None for fewer than 2 values) of `count` values (fractions)."""

    mean: float
    std: float | None
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> "MeanStd":
        values = np.asarray(values, dtype=np.float64)
        std = float(np.std(values, ddof=STD_DDOF)) if values.size > 1 else None
        return cls(float(values.mean()), std, int(values.size))

    def format_pct(self, signed: bool = False) -> str:
        """`74.10 ± 1.23` in percent (the std as "—" when undefined)."""
        sign = "+" if signed else ""
        std = DASH if self.std is None else f"{100 * self.std:.2f}"
        return f"{100 * self.mean:{sign}.2f} ± {std}"

    def to_dict(self) -> dict:
        return asdict(self)


class CVSummary:
    """Per-fold results of one experiment and their summary. Folds must share one label list; either
    every fold has `best_single` or none has (a gain over some folds only would mislead)."""

    def __init__(self, folds: Sequence[FoldScores]):
        folds = tuple(folds)
        if not folds:
            raise DataError("a cross-validation summary needs at least one fold")
        names = [str(f.fold) for f in folds]
        if len(set(names)) != len(names):
            raise DataError(f"fold names repeat: {names}")
        labels = folds[0].metrics.labels
        for f in folds:
            if any(m is not None and m.labels != labels for m in (f.metrics, f.best_single)):
                raise DataError(f"fold {f.fold} has labels other than fold {folds[0].fold}'s {list(labels)}: folds "
                                "must share one label list")
        with_best = [f.best_single is not None for f in folds]
        if any(with_best) and not all(with_best):
            missing = [str(f.fold) for f in folds if f.best_single is None]
            raise DataError(f"folds {missing} lack best-single-checkpoint metrics while others have them")
        self.folds = folds
        self.labels = labels
        self.has_best_single = all(with_best)

    def stat(self, score: str, best_single: bool = False) -> MeanStd:
        """Mean ± std over folds of `score` ("wa", "ua" or "macro_f1") of the reported model, or of the
        best single checkpoints."""
        if best_single and not self.has_best_single:
            raise DataError("these folds have no best-single-checkpoint metrics")
        return MeanStd.of([getattr(f.best_single if best_single else f.metrics, score) for f in self.folds])

    def gain(self, score: str) -> MeanStd | None:
        """Averaged − best single, per fold, then mean ± std (a paired difference); None without best_single."""
        if not self.has_best_single:
            return None
        return MeanStd.of([getattr(f.metrics, score) - getattr(f.best_single, score) for f in self.folds])

    def summed_confusion(self) -> np.ndarray:
        """int64 [C, C]: the folds' confusion matrices added (each utterance is tested in exactly one fold)."""
        return np.sum([f.metrics.confusion for f in self.folds], axis=0).astype(np.int64)

    def pooled(self) -> Metrics:
        """Metrics of the summed confusion (every utterance of the corpus weighted once, not every fold)."""
        return metrics_from_confusion(self.summed_confusion(), self.labels)

    # --- serialisation -------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """JSON-safe; fractions. `folds` is the source of truth, the rest is derived for readers."""
        best, pooled = self.has_best_single, self.pooled()
        return {
            "labels": list(self.labels),
            "std_ddof": STD_DDOF,
            "folds": [{"fold": f.fold, "metrics": f.metrics.to_dict(),
                       "best_single": None if f.best_single is None else f.best_single.to_dict()} for f in self.folds],
            "summary": {s: self.stat(s).to_dict() for s in SCORES},
            "best_single": {s: self.stat(s, best_single=True).to_dict() for s in SCORES} if best else None,
            "gain": {s: self.gain(s).to_dict() for s in SCORES} if best else None,
            "summed_confusion": self.summed_confusion().tolist(),
            "pooled": {s: getattr(pooled, s) for s in SCORES},
        }

    @classmethod
    def from_dict(cls, obj: dict) -> "CVSummary":
        try:
            return cls([FoldScores(str(f["fold"]), Metrics.from_dict(f["metrics"]),
                                   None if f.get("best_single") is None else Metrics.from_dict(f["best_single"]))
                        for f in obj["folds"]])
        except KeyError as e:
            raise DataError(f"cross-validation dict lacks key {e.args[0]!r}") from None

    def to_markdown(self) -> str:
        best = self.has_best_single
        rows = [[f.fold, f.metrics.n, *(_pct(getattr(f.metrics, s)) for s in SCORES)]
                + ([_pct(f.best_single.wa), _pct(f.best_single.ua)] if best else []) for f in self.folds]
        rows.append(["mean ± std", sum(f.metrics.n for f in self.folds), *self._formatted(SCORES)]
                    + (self._formatted(("wa", "ua"), best_single=True) if best else []))
        lines = markdown_table(["fold", "n", *(f"{_TITLES[s]} (%)" for s in SCORES)]
                               + (["best-ckpt WA (%)", "best-ckpt UA (%)"] if best else []), rows)
        if best:
            lines += ["", *markdown_table(["model", *(f"{_TITLES[s]} (%)" for s in SCORES)], [
                ["best single checkpoint", *self._formatted(SCORES, best_single=True)],
                ["averaged checkpoints", *self._formatted(SCORES)],
                ["gain (averaged − best)", *(self.gain(s).format_pct(signed=True) for s in SCORES)]])]
        lines += ["", f"Summed confusion over {len(self.folds)} folds (rows = true, columns = predicted):", "",
                  *markdown_table(["true \\ predicted", *self.labels],
                                  [[label, *row] for label, row in zip(self.labels, self.summed_confusion())])]
        pooled = self.pooled()
        lines += ["", f"Pooled over all folds: WA {_pct(pooled.wa)} %, UA {_pct(pooled.ua)} %, "
                      f"macro-F1 {_pct(pooled.macro_f1)} %. Std over folds: sample std (ddof={STD_DDOF})."]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """Rows: one per fold, then `mean` and `std` (std empty when undefined); percentages."""
        columns = [(best, s) for best in ([False, True] if self.has_best_single else [False]) for s in SCORES]
        header = ["fold", "n"] + [f"{'best_' if best else ''}{s}_pct" for best, s in columns]
        rows = [[f.fold, f.metrics.n] + [_pct(getattr(f.best_single if best else f.metrics, s)) for best, s in columns]
                for f in self.folds]
        stats = [self.stat(s, best_single=best) for best, s in columns]
        rows.append(["mean", sum(f.metrics.n for f in self.folds)] + [_pct(m.mean) for m in stats])
        rows.append(["std", ""] + ["" if m.std is None else _pct(m.std) for m in stats])
        return csv_text(header, rows)

    def write(self, out_dir: str | Path, stem: str = "cv") -> dict[str, Path]:
        """Write `<stem>.md`, `<stem>.csv`, `<stem>.json` into out_dir (created); returns {"md"|"csv"|"json": path}."""
        return write_tables(out_dir, stem, self.to_markdown(), self.to_csv(), self.to_dict())

    def _formatted(self, scores: Sequence[str], best_single: bool = False) -> list[str]:
        return [self.stat(s, best_single).format_pct() for s in scores]


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.2f}"


def markdown_table(header: Sequence, rows: Sequence[Sequence], left: Sequence[int] = (0,)) -> list[str]:
    """The lines of a Markdown table; the columns numbered in `left` are left-aligned, the rest (numbers) right."""
    rule = "|" + "".join("---|" if i in left else "---:|" for i in range(len(header)))
    return [_markdown_row(header), rule, *(_markdown_row(row) for row in rows)]


def _markdown_row(cells: Sequence) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def csv_text(header: Sequence, rows: Sequence[Sequence]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def write_tables(out_dir: str | Path, stem: str, markdown: str, table_csv: str, obj: dict) -> dict[str, Path]:
    """Write `<stem>.md`, `<stem>.csv` and `obj` as `<stem>.json` in out_dir (created) -> {"md"|"csv"|"json": path}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {ext: out_dir / f"{stem}.{ext}" for ext in ("md", "csv", "json")}
    write_text(paths["md"], markdown)
    write_text(paths["csv"], table_csv)
    write_json(paths["json"], obj)
    return paths
