"""`serkit ensemble RUN RUN... --out DIR [--weights W,W...]`: average finished runs' probabilities fold by fold."""

from __future__ import annotations

import argparse

from .registry import command


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="run folders of serkit cv / baseline / ensemble on the same corpus, labels and folds "
                        "(each fold's fold_<k>/predictions.csv is read)")
    p.add_argument("--out", required=True, help="output folder: cv.md/csv/json, plots, ensemble.json, per-fold "
                                                "predictions")
    p.add_argument("--weights", help="comma-separated weight per run (default: equal); normalised to sum to 1")


@command("ensemble", "combine finished runs (e.g. a trained head and the linear probe) by averaging their "
                     "probabilities, fold by fold", _arguments)
def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..evaluation.ensemble import ensemble_runs

    weights = None
    if args.weights:
        try:
            weights = [float(w) for w in args.weights.split(",")]
        except ValueError:
            raise ConfigError(f"--weights: expected comma-separated numbers, got {args.weights!r}") from None
    summary = ensemble_runs(args.runs, args.out, weights)
    print(summary.to_markdown())
    print(f"report: {args.out}")
    return 0
