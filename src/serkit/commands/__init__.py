"""Subcommands of the `serkit` CLI, one module each; importing this package registers them."""

from . import data, synth  # noqa: F401
