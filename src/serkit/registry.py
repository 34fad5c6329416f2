"""Name -> component registries: adding an upstream, aggregator or corpus is one file and one decorator.

Configs name entries by key; there is no import-path lookup, `eval` or star-import hub. On its first lookup a
registry imports every module of its package once (pkgutil, so every decorator has run, with no hand-kept list)
and then the modules that installed packages announce in its entry-point group, e.g. in a plug-in's
pyproject.toml:

    [project.entry-points."serkit.aggregators"]
    my_pool = "my_pool"

A component class names its parameters' dataclass as its `Config` attribute; `config_of` turns a config entry
({name: ..., <its parameters>}) into an instance of it, refusing unknown keys and wrong types by their key.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from importlib.metadata import entry_points
from typing import Any, Callable, Generic, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, package: str, group: str):
        """package: the module whose submodules hold the built-in entries; group: the entry-point group."""
        self.kind, self.package, self.group = kind, package, group
        self._entries: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return add

    def _load(self) -> None:
        """Import the package's modules and the entry points' once (lazily: the package may still be importing)."""
        if self._loaded:
            return
        self._loaded = True  # first: the package's modules register into this registry while importing
        try:
            self._import_all()
        except BaseException:
            self._loaded = False  # a failed import is retried (and raised again) at the next lookup
            raise

    def _import_all(self) -> None:
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{self.package}.{module.name}")
        for entry_point in entry_points(group=self.group):
            try:
                entry_point.load()  # the module's decorator registers its component
            except Exception as e:  # a broken plug-in is named, not a bare traceback from deep in importlib
                raise ConfigError(f"{self.kind} plug-in {entry_point.name!r} ({entry_point.value}, entry-point "
                                  f"group {self.group}) failed to load: {type(e).__name__}: {e}") from e

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def name_of(self, obj: T) -> str | None:
        """The key `obj` is registered under (None if it is not registered)."""
        self._load()
        return next((name for name, entry in self._entries.items() if entry is obj), None)

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries

    def config_of(self, entry: Any, key: str, default_name: str) -> Any:
        """A config entry (a mapping, or a dataclass of any config class) -> an instance of its component's
        `Config`, with every key checked: ConfigError "key '<key>.<field>' ..." listing that component's keys."""
        given = entry
        if dataclasses.is_dataclass(entry):
            entry = {f.name: getattr(entry, f.name) for f in dataclasses.fields(entry)}
        elif OmegaConf.is_config(entry):
            entry = OmegaConf.to_container(entry, resolve=True)
        if not isinstance(entry, dict):
            raise ConfigError(f"key '{key}' is {entry!r}; expected a mapping {{name: ..., <its parameters>}}")
        name = entry.get("name", default_name)
        try:
            config_class = self.get(name).Config
        except ConfigError as e:
            raise ConfigError(f"key '{key}.name': {e}") from None
        if type(given) is config_class:
            return given
        valid = [f.name for f in dataclasses.fields(config_class)]
        unknown = [k for k in entry if k not in valid]
        if unknown:
            raise ConfigError(f"key '{key}.{unknown[0]}' is not a parameter of {self.kind} {name!r}; "
                              f"valid keys: {', '.join(valid)}")
        try:
            node = OmegaConf.merge(OmegaConf.structured(config_class), {**entry, "name": name})
        except OmegaConfBaseException as e:  # a wrong type: the first line says which value and what was expected
            field = getattr(e, "full_key", None)
            raise ConfigError(f"key '{key}.{field}': {str(e).splitlines()[0]}" if field else
                              f"key '{key}': {str(e).splitlines()[0]}") from None
        try:
            return OmegaConf.to_object(node)
        except ConfigError as e:  # a range check in the config class's __post_init__ names its field: "key 'channels'"
            message = str(e)
            raise ConfigError(f"key '{key}.{message[5:]}" if message.startswith("key '") else f"{key}: {message}") \
                from None
