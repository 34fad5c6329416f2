"""Subcommands of the `serkit` CLI, one module each; importing this package registers them in COMMANDS."""

from . import average, baseline, cv, data, demo, ensemble, export, paper, predict, report, serve, synth  # noqa: F401
from .registry import COMMANDS

__all__ = ["COMMANDS"]
