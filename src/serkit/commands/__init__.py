"""Subcommands of the `serkit` CLI, one module each; importing this package registers them."""

from . import average, cv, data, demo, paper, synth  # noqa: F401
