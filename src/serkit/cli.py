"""The `serkit` command: parses arguments and calls the layers; no logic of its own.

Each subcommand is a module of `serkit.commands` that registers its argument set-up and its `run(args)` with
`@command` (commands/registry.py).
"""

from __future__ import annotations

import argparse
import os
import sys

from .commands import COMMANDS
from .errors import SerkitError


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="serkit",
        description="Speech emotion recognition with self-supervised features (Morais et al., ICASSP 2022).",
    )
    parser.add_argument("--version", action="version", version=f"serkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may stand anywhere after the options (argparse alone would only take them in
    # one block): commands with an `overrides` argument collect the leftovers that look like key=value.
    args, extras = parser.parse_known_args(argv)
    if extras:
        if not hasattr(args, "overrides") or any("=" not in e or e.startswith("-") for e in extras):
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        args.overrides = list(args.overrides) + extras
    if args.command is None:
        parser.print_help()
        return 2
    _, _, run = COMMANDS[args.command]
    try:
        return run(args) or 0
    except SerkitError as e:
        print(f"serkit {args.command}: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`serkit data ... | head -1`): stop quietly. Python's exit-time flush of stdout
        # would raise again, so stdout now points at /dev/null (the recipe of the `signal` module's "Note on
        # SIGPIPE"). Exit 0 rather than its 1: the reader chose to stop, and `set -o pipefail` scripts must not
        # fail over it.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # a stdout without a file descriptor (embedded, captured): nothing to flush
            pass
        return 0
