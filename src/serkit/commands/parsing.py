"""Command-line values the subcommands share: `--option KEY=VALUE` pairs and comma-separated number lists."""

from __future__ import annotations

from typing import Callable

from ..errors import ConfigError


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
    """"1,7,9" -> [1, 7, 9] (kind float: "0.1,1" -> [0.1, 1.0]); None or "" -> None. `what` names the flag."""
    if not text:
        return None
    try:
        return [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        example = "1,7,9" if kind is int else "0.01,0.1,1"
        raise ConfigError(f"{what} {text!r}: expected comma-separated numbers such as {example}") from None
