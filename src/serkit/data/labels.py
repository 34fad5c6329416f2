"""Class sets and label maps, shared by every corpus.

A corpus reads its own labels, then hands them here: `label_map` renames/merges first (e.g. exc -> hap),
then only labels in the class set are kept; every dropped row is counted by reason
("label calm not in class set": 192) so `serkit data` and the run record can show what was left out.

    labels = parse_labels("neutral,happy,sad,angry")   # or a list
    label_map = parse_label_map("exc:hap,sur:hap")      # or a dict
    check_vocabulary(labels, label_map, VOCAB, "ravdess")   # closed vocabularies only
    kept, skipped = apply_labels(utterances, labels, label_map)
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from ..errors import ConfigError
from .utterance import Utterance


def parse_labels(value: str | Sequence[str] | None) -> list[str]:
    """Class list from text or a list: "a,b,c" -> ["a", "b", "c"]; None or "" -> [] (the corpus default)."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    labels = [str(item).strip() for item in items if str(item).strip()]
    repeated = sorted(label for label, n in Counter(labels).items() if n > 1)
    if repeated:
        raise ConfigError(f"labels: {repeated} listed more than once in {labels}")
    return labels


def parse_label_map(value: str | Mapping[str, str] | None) -> dict[str, str]:
    """Label map from text or a mapping: "exc:hap,sur:hap" -> {"exc": "hap", "sur": "hap"}; None or "" -> {}."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k).strip(): str(v).strip() for k, v in value.items()}
    mapping = {}
    for pair in filter(None, (p.strip() for p in value.split(","))):
        source, sep, target = pair.partition(":")
        if not sep or not source.strip() or not target.strip() or ":" in target:
            raise ConfigError(f"label_map: expected 'from:to' pairs separated by commas, got {pair!r}")
        mapping[source.strip()] = target.strip()
    return mapping


def check_vocabulary(labels: Sequence[str], label_map: Mapping[str, str], vocabulary: Iterable[str], corpus: str):
    """For corpora with a closed label set: a class or map entry the corpus can never produce is a typo."""
    vocabulary = list(vocabulary)
    reachable = {label_map.get(label, label) for label in vocabulary}
    unknown_sources = [s for s in label_map if s not in vocabulary]
    if unknown_sources:
        raise ConfigError(f"label_map: {unknown_sources} are not {corpus} labels; known: {', '.join(vocabulary)}")
    unknown = [label for label in labels if label not in reachable]
    if unknown:
        raise ConfigError(f"labels: {unknown} never occur in {corpus} (after label_map); known: "
                          f"{', '.join(sorted(reachable))}")


def apply_labels(utterances: Iterable[Utterance], labels: Sequence[str],
                 label_map: Mapping[str, str]) -> tuple[list[Utterance], Counter]:
    """Map each label through `label_map`, keep those in `labels` (empty: keep all).

    -> (kept utterances with mapped labels, in input order; Counter of skipped rows by reason)."""
    keep = set(labels)
    kept, skipped = [], Counter()
    for utt in utterances:
        label = label_map.get(utt.label, utt.label)
        if keep and label not in keep:
            skipped[f"label {label} not in class set"] += 1
            continue
        kept.append(utt if label == utt.label else dataclasses.replace(utt, label=label))
    return kept, skipped


def resolve_classes(labels: Sequence[str], label_map: Mapping[str, str], default: Sequence[str],
                    utterances: Iterable[Utterance]) -> list[str]:
    """The class list in index order: `labels` if given, else the corpus `default` (mapped, duplicates merged),
    else (open vocabularies such as a manifest) the sorted labels found in `utterances`."""
    if labels:
        return list(labels)
    if default:
        return list(dict.fromkeys(label_map.get(label, label) for label in default))
    return sorted({utt.label for utt in utterances})
