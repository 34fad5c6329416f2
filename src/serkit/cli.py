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
    parser.subcommands = {}  # name -> its parser: errors about a command's arguments show that command's usage
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        p = parser.subcommands[name] = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may stand anywhere after the options (argparse alone would only take them in
    # one block): commands with an `overrides` argument collect the leftovers that look like key=value.
    args, extras = parser.parse_known_args(argv)
    if extras:  # a command's parser says what it takes; with no command, the top-level one does
        _take_leftovers(parser.subcommands.get(args.command, parser), args, extras)
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


def _take_leftovers(command: argparse.ArgumentParser, args: argparse.Namespace, extras: list[str]) -> None:
    """Arguments argparse left over: key=value overrides anywhere (commands with `overrides`), and more of a
    command's trailing list of paths given after an option (`predict M a.wav --skip-errors b.wav`: argparse takes
    one run of positionals only). "-" is a positional (stdin), and after a "--" everything is. Anything else is an
    error under the command's own usage."""
    if "--" in extras:  # argparse leaves a second run of positionals with its "--" in front
        cut = extras.index("--")
        extras = extras[:cut] + extras[cut + 1:]
    else:
        cut = len(extras)
    if any(e.startswith("-") and e != "-" for e in extras[:cut]):
        command.error(f"unrecognized arguments: {' '.join(extras)}")
    if hasattr(args, "overrides"):
        if any("=" not in e for e in extras):
            command.error(f"unrecognized arguments: {' '.join(extras)} (after the options, only key=value "
                          "overrides may follow)")
        args.overrides = list(args.overrides) + extras
        return
    listed = [a for a in command._actions if not a.option_strings and a.nargs in ("+", "*")]
    if not listed:
        command.error(f"unrecognized arguments: {' '.join(extras)}")
    dest = listed[-1].dest
    setattr(args, dest, list(getattr(args, dest) or []) + extras)
