"""Group-based folds shared by corpora: deal groups (actors, speakers, sessions) to folds, then cut one fold.

Rules, deterministic and independent of row order:
- groups are taken in natural order (numerically when every key is an integer, else as text);
- `deal` hands them to K folds like cards, back and forth (1..K, K..1, 1..K, ...), which keeps fold sizes
  within one group of each other and, for alternating keys such as RAVDESS actors (odd male, even female),
  keeps each fold's gender mix within one actor of even;
- fold k tests on its groups; with valid="next_fold" (the default) validation is fold k+1's groups (fold 1
  after the last), with valid="none" there is no validation set; training is everything else.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence

from ...errors import ConfigError
from ..utterance import Utterance
from .base import FoldSplit

VALID_RULES = ("next_fold", "none")


def natural_sorted(keys: Iterable[str]) -> list[str]:
    keys = sorted(set(keys))
    if all(key.lstrip("-").isdigit() for key in keys):
        return sorted(keys, key=int)
    return keys


def deal(keys: Sequence[Hashable], num_folds: int) -> dict[Hashable, int]:
    """{key: fold 1..num_folds}, keys dealt back and forth in the order given."""
    folds = {}
    for i, key in enumerate(keys):
        row, position = divmod(i, num_folds)
        folds[key] = position + 1 if row % 2 == 0 else num_folds - position
    return folds


def parse_count(value, key: str, minimum: int, maximum: int) -> int:
    """An integer option such as num_folds (config values arrive as text) within [minimum, maximum]."""
    try:
        count = int(str(value))
    except ValueError:
        raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
    if not minimum <= count <= maximum:
        raise ConfigError(f"{key}: expected {minimum}..{maximum}, got {count}")
    return count


def check_fold(fold: int, num_folds: int, corpus: str) -> None:
    """ConfigError unless `fold` is one of 1..num_folds (split is also called directly, not only via select_folds)."""
    if not isinstance(fold, int) or not 1 <= fold <= num_folds:
        raise ConfigError(f"{corpus} fold: {fold!r}; expected 1..{num_folds}")


def split_by_group(utterances: list[Utterance], fold_of_group: Mapping[str, int], fold: int, num_folds: int,
                   valid: str, corpus: str) -> FoldSplit:
    """Cut `utterances` (order kept) into train/valid/test by the fold of each one's `group`."""
    check_fold(fold, num_folds, corpus)
    if valid not in VALID_RULES:
        raise ConfigError(f"valid: expected one of {', '.join(VALID_RULES)}, got {valid!r}")
    valid_fold = fold % num_folds + 1 if valid == "next_fold" else None
    train, valid_list, test = [], [], []
    for utt in utterances:
        utt_fold = fold_of_group[utt.group]
        if utt_fold == fold:
            test.append(utt)
        elif utt_fold == valid_fold:
            valid_list.append(utt)
        else:
            train.append(utt)
    return FoldSplit(fold, train, valid_list, test)
