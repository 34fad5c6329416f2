"""`serkit cv`: cross-validate one experiment config."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from .parsing import parse_numbers, positive_int
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


def _split_overrides(args: argparse.Namespace) -> tuple[list, list[str]]:
    """-> (config sources, key=value overrides). argparse cannot tell a trailing key=value from a config path:
    an argument with '=' is an override unless it names a file. --root and --folds are taken as they are
    (a dict source after the files), not as YAML text: a '#' or ': ' in a folder name stays in it."""
    given = [*args.config, *args.overrides]
    configs = [c for c in given if "=" not in c or Path(c).is_file()]
    overrides = [c for c in given if c not in configs]
    if not configs:
        raise ConfigError("no experiment YAML given (e.g. serkit cv configs/ravdess/common.yaml "
                          "configs/ravdess/whisper_base_stats_aug.yaml --root DIR); key=value only overrides one")
    for flag, key, value in (("--root", "data.root", args.root), ("--folds", "folds", args.folds)):
        if value is not None and any(o.split("=", 1)[0] == key for o in overrides):
            raise ConfigError(f"{flag} and {key}=... both given: give one")
    flags: dict = {}
    if args.root:
        flags["data"] = {"root": args.root}
    if args.folds is not None:
        folds = parse_numbers(args.folds, "--folds")
        if len(set(folds)) != len(folds):
            raise ConfigError(f"--folds {args.folds!r}: a fold is named twice")
        flags["folds"] = folds
    return configs + ([flags] if flags else []), overrides


@command("cv", "cross-validate one experiment: train every fold, average top-k, report WA/UA", _arguments)
def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..training.cv import run_cv

    sources, overrides = _split_overrides(args)
    cfg = load_config(*sources, overrides=overrides)
    result = run_cv(cfg, args.out or f"runs/{cfg.name}", quiet=args.quiet, threads=args.threads)
    if result is not None:
        print((result.report_dir / "cv.md").read_text())
        print(f"report: {result.report_dir}")
    return 0
