"""The one way into a corpus: a DataConfig in; the corpus, its prepared utterances and the class list out.

    data = prepare_corpus(DataConfig(corpus="ravdess", root="...", options={"folds": "emobox"}))
    data.prepared.utterances, data.classes, data.select_folds(None), data.split(1)

Training, the baselines and `serkit data` all come in here, so they read a corpus the same way. Classes come from
`data.labels` only (a corpus option named labels or label_map is refused by DataConfig). With `data.check` (the
default) every file is decoded first and a corpus with problems is refused, unless `data.skip` lists them
(data/check.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..errors import ConfigError, DataError
from .check import MAX_LISTED, check_files
from .config import DataConfig
from .corpora import CORPORA, Corpus, FoldSplit, Prepared
from .labels import resolve_classes
from .utterance import Utterance


@dataclass
class CorpusData:
    """A prepared corpus: `prepared` (utterances + skipped counts + file problems), `classes` in index order, and
    the corpus options its folds are split by."""

    corpus: type[Corpus]
    prepared: Prepared
    classes: list[str]
    options: dict[str, str]

    @property
    def utterances(self) -> list[Utterance]:
        return self.prepared.utterances

    @property
    def num_folds(self) -> int:
        return self.corpus.fold_count(self.utterances, **self.options)

    def select_folds(self, folds: Sequence[int] | None) -> list[int]:
        """`folds` (None or empty: every fold), each checked to exist."""
        num_folds = self.num_folds
        chosen = list(folds or range(1, num_folds + 1))
        bad = [fold for fold in chosen if not 1 <= fold <= num_folds]
        if bad:
            raise ConfigError(f"folds {bad} do not exist: {self.corpus.name} has folds 1..{num_folds} "
                              "with these options")
        return chosen

    def split(self, fold: int) -> FoldSplit:
        return self.corpus.split(self.utterances, fold, **self.options)


def read_corpus(data: DataConfig, keep_going: bool = False) -> CorpusData:
    """The corpus as its module prepares it, without decoding audio. keep_going: list unreadable files among
    `prepared.problems` instead of raising at the first."""
    if not data.root:
        raise ConfigError(f"data.root is not set: the folder of the {data.corpus} corpus is needed")
    corpus = CORPORA.get(data.corpus)
    options = corpus_options(corpus, data.options)
    labels, label_map = list(data.labels), dict(data.label_map)
    label_options = {k: v for k, v in (("labels", labels), ("label_map", label_map)) if v}
    prepared = corpus.prepare(data.root, keep_going=keep_going, **label_options, **options)
    classes = resolve_classes(labels, label_map, corpus.labels, prepared.utterances)
    return CorpusData(corpus, prepared, classes, options)


def corpus_options(corpus: type[Corpus], options: dict) -> dict:
    """data.options checked against the corpus's `Options` dataclass -> the given ones, typed (num_folds: 6, not
    "6"). An unknown key or a value of the wrong type is a ConfigError naming data.options.KEY."""
    valid = [f.name for f in fields(corpus.Options)]
    unknown = [key for key in options if key not in valid]
    if unknown:
        raise ConfigError(f"key 'data.options.{unknown[0]}' is not an option of corpus {corpus.name!r}; valid keys: "
                          f"{', '.join(valid) or '(none)'}")
    try:
        typed = OmegaConf.merge(OmegaConf.structured(corpus.Options), dict(options))
    except OmegaConfBaseException as e:
        raise ConfigError(f"key 'data.options.{getattr(e, 'full_key', '')}': {str(e).splitlines()[0]}") from None
    return {key: typed[key] for key in options}


def prepare_corpus(data: DataConfig, check_cache: str | Path | None = None) -> CorpusData:
    """The corpus as training uses it. With data.check every file is decoded first (results cached in
    `check_cache`), and any problem not covered by data.skip is a DataError that lists them and says how to go on;
    files data.skip lists are left out."""
    checking = data.check or bool(data.skip)
    corpus_data = read_corpus(data, keep_going=checking)
    if not checking:
        return corpus_data
    result = check_files(corpus_data.prepared, skip=data.skip, decode=data.check, cache=check_cache)
    if not result.ok:
        raise DataError(f"{len(result.problems)} audio problems found (data.check={str(data.check).lower()}):\n"
                        f"{result.report(limit=MAX_LISTED)}\nList them all with `serkit data {data.corpus} --root "
                        f"{data.root} --check --write-skip skip.txt`; fix those files, or set data.skip=skip.txt to "
                        "train without them.", data.root)
    return replace(corpus_data, prepared=result.prepared)
