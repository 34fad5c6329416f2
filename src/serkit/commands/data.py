"""`serkit data CORPUS --root DIR [--fold K] [--labels a,b,c] [--label-map a:b] [--option key=value ...]`:
print the per-fold, per-split table of a corpus (utterances, hours, speakers, labels) and what was skipped, e.g.

    ravdess  /data/ravdess
    classes (4): neutral, happy, sad, angry

    fold  split  utterances  hours  speakers  neutral  happy  sad  angry
    all   all           672   0.69        24       96    192  192    192
    1     train         392   0.41        14       56    112  112    112
    ...

    skipped 768 rows:
      192  label calm not in class set

`--check [--skip FILE] [--write-skip FILE]`: decode every utterance instead and list every problem (file and
reason) with a count; exit code 1 when there are problems. --write-skip writes them as a skip list for
`data.skip`; --skip leaves the files a skip list names out of the check."""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence

from ..errors import ConfigError
from .parsing import add_corpus_arguments, parse_options
from .registry import command


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..data.corpora import CORPORA

    parser.add_argument("corpus", help=f"corpus registry key ({', '.join(CORPORA.names())})")
    add_corpus_arguments(parser)
    parser.add_argument("--fold", type=int, help="show only this fold (default: every fold)")
    parser.add_argument("--check", action="store_true",
                        help="decode every utterance and list every problem (exit code 1 when there are any)")
    parser.add_argument("--skip", metavar="FILE", help="with --check: leave out the files this skip list names")
    parser.add_argument("--write-skip", metavar="FILE",
                        help="with --check: write the problem files as a skip list (for data.skip=FILE)")


def data_config(corpus: str, root: str, labels: str | None = None, label_map: str | None = None,
                options: list[str] | None = None):
    """The DataConfig of command-line flags (--labels a,b --label-map x:y --option k=v), without the audio check."""
    from ..data.config import DataConfig
    from ..data.labels import parse_label_map, parse_labels

    return DataConfig(corpus=corpus, root=root, labels=parse_labels(labels), label_map=parse_label_map(label_map),
                      options=parse_options(options or []), check=False)


@command("data", "show a corpus's folds (utterances, hours, speakers, labels per split); --check decodes every file",
         _add_arguments)
def run(args: argparse.Namespace) -> int:
    from ..data.prepare import read_corpus

    data = data_config(args.corpus, args.root, args.labels, args.label_map, args.option)
    if args.check:
        return _check(args, data)
    if args.skip or args.write_skip:
        raise ConfigError("--skip and --write-skip go with --check")
    print(summarize(read_corpus(data), args.root, None if args.fold is None else [args.fold]))
    return 0


def summarize(corpus_data, root: str, folds: Sequence[int] | None = None) -> str:
    """The whole report `serkit data` prints for a CorpusData (data/prepare.py)."""
    header, rows = fold_table(corpus_data, folds)
    return "\n\n".join([
        f"{corpus_data.corpus.name}  {root}\nclasses ({len(corpus_data.classes)}): {', '.join(corpus_data.classes)}",
        format_table(header, rows),
        format_skipped(corpus_data.prepared.skipped),
    ])


def fold_table(corpus_data, folds: Sequence[int] | None = None) -> tuple[list[str], list[list[str]]]:
    """(header, rows): an "all" row, then train/valid/test of each fold (default: every fold)."""
    utterances = corpus_data.utterances
    found = sorted({utt.label for utt in utterances} - set(corpus_data.classes))  # labels kept beyond the classes
    columns = [*corpus_data.classes, *found]
    rows = [_row("all", "all", utterances, columns)]
    for fold in corpus_data.select_folds(folds):
        split = corpus_data.split(fold)
        for name in ("train", "valid", "test"):
            rows.append(_row(str(fold), name, getattr(split, name), columns))
    return ["fold", "split", "utterances", "hours", "speakers", *columns], rows


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 2) -> str:
    """Columns padded to their widest cell; the first `left` columns left-aligned, the rest right-aligned."""
    table = [[str(cell) for cell in row] for row in (header, *rows)]
    widths = [max(map(len, column)) for column in zip(*table, strict=True)]
    return "\n".join("  ".join(cell.ljust(width) if i < left else cell.rjust(width)
                               for i, (cell, width) in enumerate(zip(row, widths))).rstrip() for row in table)


def format_skipped(skipped: Counter) -> str:
    if not skipped:
        return "skipped: none"
    width = len(str(max(skipped.values())))
    by_count = sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0]))
    lines = [f"  {n:>{width}}  {reason}" for reason, n in by_count]
    return "\n".join([f"skipped {sum(skipped.values())} rows:", *lines])


def _row(fold: str, split: str, utterances, columns: Sequence[str]) -> list[str]:
    counts = Counter(utt.label for utt in utterances)
    hours = sum(utt.duration for utt in utterances) / 3600
    speakers = len({utt.speaker for utt in utterances})
    return [fold, split, str(len(utterances)), f"{hours:.2f}", str(speakers), *(str(counts[c]) for c in columns)]


def _check(args: argparse.Namespace, data) -> int:
    from ..data.check import check_files, write_skip_list
    from ..data.prepare import read_corpus

    result = check_files(read_corpus(data, keep_going=True).prepared, skip=args.skip)
    print(result.report())
    if args.write_skip:
        write_skip_list(result, args.write_skip, f"serkit data {args.corpus} --root {args.root} --check")
        print(f"skip list: {args.write_skip} ({len({p.path for p in result.problems})} files)")
    return 0 if result.ok else 1
