"""`serkit baseline opensmile-svm --corpus CORPUS --root DIR [--labels a,b,c] [--folds 1,2] [--c 0.1,1] [--out DIR]
[--features FILE]`:
the openSMILE eGeMAPSv02 + linear SVM baseline on the corpus's own folds (needs `pip install serkit[baseline]`)."""

from __future__ import annotations

import argparse

from ..cli import command

SYSTEMS = ("opensmile-svm",)


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("system", choices=SYSTEMS, help="which baseline")
    p.add_argument("--corpus", required=True, help="corpus registry key (ravdess, iemocap, manifest)")
    p.add_argument("--root", required=True, help="the corpus folder (for manifest: the .csv/.jsonl file)")
    p.add_argument("--labels", help="class set in index order, comma-separated (default: the corpus's)")
    p.add_argument("--label-map", help="rename/merge labels before filtering, e.g. exc:hap")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="corpus option (repeatable), as in `serkit data`")
    p.add_argument("--folds", help="comma-separated folds to run (default: all)")
    p.add_argument("--c", help="comma-separated grid of SVM C values (default: 1e-4,1e-3,1e-2,0.1,1,10)")
    p.add_argument("--features", help="feature cache file (.npz) to read and extend (default: OUT/egemaps.npz)")
    p.add_argument("--out", help="output folder (default: runs/baseline_opensmile_svm_<corpus>)")


@command("baseline", "classical baseline (openSMILE eGeMAPS + linear SVM) on a corpus's folds", _arguments)
def run(args: argparse.Namespace) -> int:
    from ..baselines.opensmile_svm import C_GRID, run_opensmile_svm
    from ..errors import ConfigError
    from .data import parse_options

    def numbers(text: str, what: str, kind):
        try:
            return [kind(item) for item in text.split(",") if item.strip()]
        except ValueError:
            raise ConfigError(f"{what}: expected comma-separated numbers, got {text!r}") from None

    folds = numbers(args.folds, "--folds", int) if args.folds else None
    c_grid = numbers(args.c, "--c", float) if args.c else C_GRID
    out = args.out or f"runs/baseline_opensmile_svm_{args.corpus}"
    summary, fits = run_opensmile_svm(args.corpus, args.root, out, args.labels, args.label_map,
                                      parse_options(args.option), folds, c_grid, args.features)
    print(summary.to_markdown())
    print("C chosen per fold: " + ", ".join(f"{f.fold}: {f.c:g}" for f in fits))
    print(f"report: {out}")
    return 0
