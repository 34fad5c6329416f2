"""`serkit data CORPUS --root DIR [--fold K] [--labels a,b,c] [--label-map a:b] [--option key=value ...]`:
print the per-fold, per-split table of a corpus (utterances, hours, speakers, labels) and what was skipped.

`--check [--skip FILE] [--write-skip FILE]`: decode every utterance instead and list every problem (file and
reason) with a count; exit code 1 when there are problems. --write-skip writes them as a skip list for
`data.skip`; --skip leaves the files a skip list names out of the check."""

from __future__ import annotations

import argparse

from .registry import command
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
    parser.add_argument("--check", action="store_true",
                        help="decode every utterance and list every problem (exit code 1 when there are any)")
    parser.add_argument("--skip", metavar="FILE", help="with --check: leave out the files this skip list names")
    parser.add_argument("--write-skip", metavar="FILE",
                        help="with --check: write the problem files as a skip list (for data.skip=FILE)")


def parse_options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option: expected KEY=VALUE, got {pair!r}")
        options[key.strip()] = value.strip()
    return options


@command("data", "show a corpus's folds (utterances, hours, speakers, labels per split); --check decodes every file",
         _add_arguments)
def run(args: argparse.Namespace) -> int:
    from ..data.summary import summarize

    if args.check:
        return _check(args)
    if args.skip or args.write_skip:
        raise ConfigError("--skip and --write-skip go with --check")
    folds = None if args.fold is None else [args.fold]
    print(summarize(args.corpus, args.root, args.labels, args.label_map, parse_options(args.option), folds))
    return 0


def _check(args: argparse.Namespace) -> int:
    from ..data.check import check_corpus, write_skip_list

    options = parse_options(args.option)
    labels = args.labels or options.pop("labels", None)
    label_map = args.label_map or options.pop("label_map", None)
    result = check_corpus(args.corpus, args.root, labels, label_map, options, skip=args.skip)
    print(result.report())
    if args.write_skip:
        write_skip_list(result, args.write_skip)
        print(f"skip list: {args.write_skip} ({len({p.path for p in result.problems})} files)")
    return 0 if result.ok else 1
