"""Errors a user can act on: each says what is wrong and where (file, line, key)."""

from __future__ import annotations

from pathlib import Path


class SerkitError(Exception):
    """Base of every error serkit raises on purpose (the CLI prints these without a traceback)."""


class DataError(SerkitError):
    """A corpus, manifest, label file or audio file is missing or malformed.

    `where` is a path, optionally with a line number, so the message always points at the culprit.
    """

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(f"{where}{message}")


class AudioError(DataError):
    """An audio file cannot be decoded or holds unusable samples (empty, NaN, ...)."""


class ConfigError(SerkitError):
    """A config key or value is wrong; the message names the key and what was expected."""
