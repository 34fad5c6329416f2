"""Name -> builder registries: adding an upstream, aggregator or corpus is one file and one decorator.

Configs name entries by key; there is no import-path lookup, `eval` or star-import hub. Each registry
imports its package's modules once (explicitly listed in the package `__init__`), so every decorator has run.
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def name_of(self, obj: T) -> str | None:
        """The key `obj` is registered under (None if it is not registered)."""
        return next((name for name, entry in self._entries.items() if entry is obj), None)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries
