"""The table a newcomer checks first: per fold and split, utterances, hours, speakers and per-label counts,
plus the rows the corpus left out and why. Plain aligned text, e.g.

    ravdess  /data/ravdess
    classes (4): neutral, happy, sad, angry

    fold  split  utterances  hours  speakers  neutral  happy  sad  angry
    all   all           672   0.69        24       96    192  192    192
    1     train         392   0.41        14       56    112  112    112
    ...

    skipped 768 rows:
      192  label calm not in class set
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import ConfigError
from .corpora import CORPORA, Corpus, Prepared
from .labels import parse_label_map, parse_labels, resolve_classes
from .utterance import Utterance


def prepare_corpus(
    name: str,
    root: str | Path,
    labels: Sequence[str] | str | None = None,
    label_map: Mapping[str, str] | str | None = None,
    options: Mapping[str, str] | None = None,
) -> tuple[type[Corpus], Prepared, list[str]]:
    """Registry key + DataConfig fields -> (corpus class, prepared corpus, class list in index order)."""
    corpus = CORPORA.get(name)
    labels, label_map, options = parse_labels(labels), parse_label_map(label_map), dict(options or {})
    label_options = {k: v for k, v in (("labels", labels), ("label_map", label_map)) if v}
    prepared = corpus.prepare(root, **label_options, **options)
    classes = resolve_classes(labels, label_map, corpus.labels, prepared.utterances)
    return corpus, prepared, classes


def fold_table(
    corpus: type[Corpus],
    prepared: Prepared,
    classes: Sequence[str],
    options: Mapping[str, str] | None = None,
    folds: Sequence[int] | None = None,
) -> tuple[list[str], list[list[str]]]:
    """(header, rows): an "all" row, then train/valid/test of each fold (default: every fold)."""
    options = dict(options or {})
    utterances = prepared.utterances
    found = sorted({utt.label for utt in utterances} - set(classes))  # labels a corpus kept beyond the classes
    columns = [*classes, *found]
    num_folds = corpus.fold_count(utterances, **options)
    if folds is None:
        folds = range(1, num_folds + 1)
    bad = [fold for fold in folds if not 1 <= fold <= num_folds]
    if bad:
        raise ConfigError(f"fold: {bad} do not exist; {corpus.name} has folds 1..{num_folds} with these options")
    rows = [_row("all", "all", utterances, columns)]
    for fold in folds:
        split = corpus.split(utterances, fold, **options)
        for name in ("train", "valid", "test"):
            rows.append(_row(str(fold), name, getattr(split, name), columns))
    return ["fold", "split", "utterances", "hours", "speakers", *columns], rows


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 2) -> str:
    """Columns padded to their widest cell; the first `left` columns left-aligned, the rest right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells) -> str:
        cells = [str(cell) for cell in cells]
        parts = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(parts).rstrip()

    return "\n".join([line(header), *(line(row) for row in rows)])


def format_skipped(skipped: Counter) -> str:
    if not skipped:
        return "skipped: none"
    width = len(str(max(skipped.values())))
    lines = [f"skipped {sum(skipped.values())} rows:"]
    by_count = sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0]))
    lines += [f"  {str(n).rjust(width)}  {reason}" for reason, n in by_count]
    return "\n".join(lines)


def summarize(
    name: str,
    root: str | Path,
    labels: Sequence[str] | str | None = None,
    label_map: Mapping[str, str] | str | None = None,
    options: Mapping[str, str] | None = None,
    folds: Sequence[int] | None = None,
) -> str:
    """The whole report `serkit data` prints. labels/label_map may also arrive among `options` (key=value)."""
    options = dict(options or {})
    labels = labels or options.pop("labels", None)
    label_map = label_map or options.pop("label_map", None)
    corpus, prepared, classes = prepare_corpus(name, root, labels, label_map, options)
    header, rows = fold_table(corpus, prepared, classes, options, folds)
    return "\n\n".join(
        [
            f"{name}  {root}\nclasses ({len(classes)}): {', '.join(classes)}",
            format_table(header, rows),
            format_skipped(prepared.skipped),
        ]
    )


def _row(fold: str, split: str, utterances: Sequence[Utterance], columns: Sequence[str]) -> list[str]:
    counts = Counter(utt.label for utt in utterances)
    hours = sum(utt.duration for utt in utterances) / 3600
    speakers = len({utt.speaker for utt in utterances})
    return [fold, split, str(len(utterances)), f"{hours:.2f}", str(speakers), *(str(counts[c]) for c in columns)]
