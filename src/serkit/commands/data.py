"""`serkit data CORPUS --root DIR [--fold K] [--labels a,b,c] [--label-map a:b] [--option key=value ...]`:
print the per-fold, per-split table of a corpus (utterances, hours, speakers, labels) and what was skipped."""

from __future__ import annotations

import argparse

from ..cli import command
from ..errors import ConfigError


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..data.corpora import CORPORA

    parser.add_argument("corpus", help=f"corpus registry key ({', '.join(CORPORA.names())})")
    parser.add_argument("--root", required=True, help="the corpus folder (for manifest: the .csv/.jsonl file)")
    parser.add_argument("--fold", type=int, help="show only this fold (default: every fold)")
    parser.add_argument("--labels", help="class set in index order, comma-separated (default: the corpus's)")
    parser.add_argument("--label-map", help="rename/merge labels before filtering, e.g. exc:hap,sur:hap")
    parser.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="corpus option (repeatable): num_folds=6"
    )


def parse_options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option: expected KEY=VALUE, got {pair!r}")
        options[key.strip()] = value.strip()
    return options


@command("data", "Show a corpus's folds: utterances, hours, speakers and labels per split.", _add_arguments)
def run(args: argparse.Namespace) -> int:
    from ..data.summary import summarize

    folds = None if args.fold is None else [args.fold]
    print(summarize(args.corpus, args.root, args.labels, args.label_map, parse_options(args.option), folds))
    return 0
