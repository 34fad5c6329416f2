"""Command-line values the subcommands share: the corpus flags, `--option KEY=VALUE` pairs, comma-separated number
lists and counts of 1 or more."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..errors import ConfigError


def add_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    """--root, --labels, --label-map, --option: the corpus as `serkit data` and `serkit baseline` read it."""
    parser.add_argument("--root", required=True, help="the corpus folder (for manifest: the .csv/.jsonl file)")
    parser.add_argument("--labels", help="class set in index order, comma-separated (default: the corpus's)")
    parser.add_argument("--label-map", help="rename/merge labels before filtering, e.g. exc:hap,sur:hap")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="corpus option (repeatable), e.g. num_folds=6 or folds=emobox")


def positive_int(text: str) -> int:
    """argparse type of --threads and --jobs: a whole number, 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: expected 1 or more")
    return value


def parse_options(pairs: list[str]) -> dict[str, str]:
    """["num_folds=6", "valid=none"] -> {"num_folds": "6", "valid": "none"}."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option: expected KEY=VALUE, got {pair!r}")
        options[key.strip()] = value.strip()
    return options


def parse_numbers(text: str | None, what: str, kind: Callable[[str], int | float] = int) -> list | None:
    """"1,7,9" -> [1, 7, 9] (kind float: "0.1,1" -> [0.1, 1.0]); None -> None; "" or "," is refused.
    `what` names the flag."""
    if text is None:
        return None
    example = "1,7,9" if kind is int else "0.01,0.1,1"
    try:
        numbers = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        numbers = []
    if not numbers:  # "" or "," would otherwise read as "not given": every fold, every experiment
        raise ConfigError(f"{what} {text!r}: expected comma-separated numbers such as {example}")
    return numbers
