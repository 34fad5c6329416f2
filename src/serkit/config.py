"""Experiment configs: typed dataclasses are the schema, YAML files are data, `key=value` overrides win.

A YAML file names registry keys and presets only (never import paths). OmegaConf merges, in order: the
schema defaults, each YAML file, then the command line's `key=value` overrides; a key that is not in the
schema or a value of the wrong type is refused with the key's dotted name. The resolved config is saved
as YAML next to every checkpoint and in every model bundle.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .data.config import DataConfig
from .errors import ConfigError
from .model import ModelConfig
from .train_config import TrainConfig
from .util.atomic import write_text

_MISSING = object()


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    seed: int = 0
    folds: list[int] = field(default_factory=list)  # empty: every fold of the corpus
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def load_config(*sources: str | Path | dict, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Merge YAML files / dicts over the schema defaults, then `key=value` overrides; return the typed config."""
    merged = OmegaConf.structured(ExperimentConfig)
    # component entries are free mappings until the end, when ModelConfig resolves each through its registry: an
    # override may then set any key of the component it names (model.aggregators.0.channels=64 for ecapa)
    for section in ("upstreams", "aggregators"):
        merged.model[section] = [OmegaConf.to_container(entry) for entry in merged.model[section]]
    for source in sources:
        where = str(source) if not isinstance(source, dict) else "<dict>"
        try:
            layer = OmegaConf.create(source) if isinstance(source, dict) else _load_yaml(Path(source))
            if not isinstance(layer, DictConfig):
                raise ConfigError(f"{where}: expected a mapping of config keys (name:, data:, ...) at the top level, "
                                  f"found a {type(layer).__name__}")
            merged = OmegaConf.merge(merged, layer)
        except (OmegaConfBaseException, yaml.YAMLError, TypeError) as e:  # bad syntax, a !!python tag, ...
            # (TypeError: a mapping where the schema has a list, "Cannot merge incompatible container types")
            raise ConfigError(f"{where}: {_describe(e)}") from None
        except (UnicodeDecodeError, OSError) as e:
            raise ConfigError(f"{where}: cannot read the config file ({e})") from None
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, text = item.split("=", 1)
        try:
            # update(), not merge(from_dotlist): it addresses list items too (model.aggregators.0.channels=64)
            value = yaml.safe_load(text) if text else None
            if OmegaConf.select(merged, key, default=_MISSING) is _MISSING and not _in_open_mapping(merged, key):
                raise ConfigError(f"override {item!r}: key {key!r} is not in the config schema; "
                                  f"valid keys there: {', '.join(_keys_beside(merged, key))}")
            OmegaConf.update(merged, key, value, merge=True)
        except (OmegaConfBaseException, yaml.YAMLError, TypeError, ValueError) as e:
            raise ConfigError(f"override {item!r}: {_describe(e)}") from None
    try:
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:  # e.g. an interpolation that does not resolve
        raise ConfigError(_describe(e)) from None


def _in_open_mapping(merged: DictConfig, key: str) -> bool:
    """True when `key` names an entry of a free-form mapping field (data.options.folds, data.label_map.exc,
    model.aggregators.0.channels): such a field's keys are checked later (by the corpus's or the component's own
    config class), so a new one may be added from the command line."""
    parent, _, _ = key.rpartition(".")
    node = OmegaConf.select(merged, parent, default=None) if parent else None
    return isinstance(node, DictConfig) and OmegaConf.get_type(node) is dict


def _keys_beside(merged: DictConfig, key: str) -> list[str]:
    """The dotted keys that do exist next to a wrong one (its deepest existing parent's children)."""
    parts = key.split(".")
    while parts:
        parts.pop()
        prefix = ".".join(parts)
        node = OmegaConf.select(merged, prefix, default=None) if prefix else merged
        if isinstance(node, DictConfig):
            return [f"{prefix}.{k}" if prefix else str(k) for k in node.keys()]
        if node is not None:  # a list or a value: nothing to list under it
            return [prefix]
    return [str(k) for k in merged.keys()]


def _load_yaml(path: Path):
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    return OmegaConf.load(path)


def _describe(e: Exception) -> str:
    if isinstance(e, yaml.MarkedYAMLError) and e.problem:  # its first line is the context, not what is wrong
        mark = e.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        context = f", {e.context}" if e.context else ""
        if e.context and e.context_mark is not None:
            context += f" begun on line {e.context_mark.line + 1}"
        return f"bad YAML: {e.problem}{where}{context}"
    # OmegaConf's messages carry a multi-line "full_key: ... object_type" trailer; keep the first line + key.
    first = str(e).splitlines()[0]
    if isinstance(e, TypeError) and "incompatible container types" in first:
        return "a mapping (key: value) where the config expects a list, e.g. folds: [1, 3]"
    if "is not a ListConfig, TupleConfig, list, or tuple" in first:  # OmegaConf's words for "not a list"
        first = "expected a list, e.g. [1, 3] in YAML or key=[1,3] on the command line; got one value"
    key = getattr(e, "full_key", None)
    return f"key {key!r}: {first}" if key else first


def to_yaml(cfg: ExperimentConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def to_dict(cfg) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    write_text(path, to_yaml(cfg))  # atomic, and a unique temp name: DDP ranks may save the same file at once


def config_hash(cfg) -> str:
    """Stable hash of a (model) config: checkpoints from different configs are never averaged together."""
    blob = json.dumps(to_dict(cfg), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
