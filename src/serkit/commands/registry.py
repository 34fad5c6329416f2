"""The subcommand registry: each module of this package registers its subcommand with `@command(...)`."""

from __future__ import annotations

import argparse
from typing import Callable

AddArguments = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]

# name -> (help, add_arguments(parser), run(args) -> exit code), in registration order
COMMANDS: dict[str, tuple[str, AddArguments, Run]] = {}


def command(name: str, help: str, add_arguments: AddArguments) -> Callable[[Run], Run]:
    """Decorator: register `run` as subcommand `name`, its arguments set up by `add_arguments(parser)`."""
    def register(run: Run) -> Run:
        COMMANDS[name] = (help, add_arguments, run)
        return run

    return register
