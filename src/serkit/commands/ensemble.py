"""`serkit ensemble RUN RUN... --out DIR [--weights W,W... | --select N] [--calibrate]`: average finished runs'
probabilities fold by fold, with equal weights, given ones, or weights chosen on validation, optionally each
member temperature-scaled on validation first."""

from __future__ import annotations

import argparse
import sys
import warnings

from .parsing import positive_int
from .registry import command


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="run folders of serkit cv / baseline / ensemble on the same corpus, labels and folds "
                        "(each fold's fold_<k>/predictions.csv is read)")
    p.add_argument("--out", required=True, help="output folder: cv.md/csv/json, plots, ensemble.json, per-fold "
                                                "predictions")
    p.add_argument("--weights", help="comma-separated weight per run (default: equal); normalised to sum to 1")
    p.add_argument("--select", type=positive_int, metavar="ROUNDS",
                   help="choose the weights on the validation predictions instead: ROUNDS rounds of greedy forward "
                        "selection with replacement (a run may be picked several times), kept at the best round; "
                        "test labels are never read (try 2-3 times the number of runs)")
    p.add_argument("--calibrate", action="store_true",
                   help="temperature-scale each member's probabilities first, one temperature per member and fold "
                        "fitted on that fold's validation predictions (members of unlike confidence: probes and "
                        "networks); test labels are never read. A refit member's validation predictions are its "
                        "first fit's, so its temperature comes from that model")


@command("ensemble", "combine finished runs (e.g. a trained head and the linear probe) by averaging their "
                     "probabilities, fold by fold", _arguments)
def run(args: argparse.Namespace) -> int:
    from ..evaluation.ensemble import ensemble_runs
    from .parsing import parse_numbers

    with warnings.catch_warnings(record=True) as caught:  # shown as the command's notes, not Python's warnings
        warnings.simplefilter("always")
        summary = ensemble_runs(args.runs, args.out, parse_numbers(args.weights, "--weights", float),
                                args.select or 0, calibrate=args.calibrate)
    for warning in caught:
        print(f"serkit ensemble: {warning.message}", file=sys.stderr)
    print(summary.to_markdown())
    print(f"report: {args.out}")
    return 0
