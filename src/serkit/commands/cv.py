"""`serkit cv`: cross-validate one experiment config."""

from __future__ import annotations

import argparse

from .parsing import positive_int
from .registry import command


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="+",
                   help="experiment YAML file(s), merged in order (e.g. configs/paper/05_w2v2_ecapa.yaml)")
    p.add_argument("--root", help="corpus folder (sets data.root)")
    p.add_argument("--folds", help="comma-separated folds to run, e.g. 1,3 (default: all)")
    p.add_argument("--out", help="run folder (default: runs/<config name>)")
    p.add_argument("--quiet", action="store_true", help="no progress lines (one per epoch and fold, on stderr)")
    p.add_argument("--threads", type=positive_int, metavar="N",
                   help="torch CPU threads (default: torch's own, the cores or $OMP_NUM_THREADS); results depend "
                        "on the count in their last bits, so run.json records it: use the same N to reproduce a run")
    p.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                   help="config overrides, e.g. train.max_epochs=5 model.aggregators.0.channels=256")


def _split_overrides(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    # argparse cannot tell a trailing key=value from a config path: anything with '=' is an override.
    configs = [c for c in args.config if "=" not in c]
    overrides = [c for c in args.config if "=" in c] + list(args.overrides)
    if args.root:
        overrides.append(f"data.root={args.root}")
    if args.folds:
        overrides.append(f"folds=[{args.folds}]")
    return configs, overrides


@command("cv", "cross-validate one experiment: train every fold, average top-k, report WA/UA", _arguments)
def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..training.cv import run_cv

    configs, overrides = _split_overrides(args)
    cfg = load_config(*configs, overrides=overrides)
    result = run_cv(cfg, args.out or f"runs/{cfg.name}", quiet=args.quiet, threads=args.threads)
    if result is not None:
        print((result.report_dir / "cv.md").read_text())
        print(f"report: {result.report_dir}")
    return 0
