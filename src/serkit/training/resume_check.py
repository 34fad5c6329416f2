"""Refuse to reuse a fold that was trained with another recipe or on other utterances.

`serkit cv` skips a finished fold (its result.json) and resumes an interrupted one (its last.ckpt or, under
`train.refit`, its first-fit record). Both are only right when the command is the one that made the fold: run
into the same `--out` with another config, a finished fold's figures would be reported under the new config
and a resumed one would mix two recipes. The fold's config.yaml (the resolved config it was trained with) and
split.json (its utterance ids) are the record compared here.

What may differ: where and how the run is executed, not what it computes. Always (IGNORED): the run's name,
the fold selection, the corpus's folder, loader workers, the audio check, progress and logging, whether
checkpoints are kept, and the feature cache's folder (whether one is used, and its dtype, still count). For a
finished fold also (PLACEMENT) the accelerator, devices, strategy and nodes, so that a fold trained on a GPU
can be gathered on a CPU; a fit resumed half way must go on where it began. Components are compared entry by
entry (their count and names first); a component's `source` written relative one time and absolute the other
counts as the same when both name the one existing folder from where the command runs. A key that only one
side has (an option a different serkit version did not have) is compared with the schema default where the
schema has one (a new option left at its default is the old behaviour); a component's option without one is
let pass, an entry of a free mapping (data.options) is not.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from ..config import ExperimentConfig, to_dict
from ..data.corpora import FoldSplit
from ..errors import ConfigError
from ..upstream.presets import PACKAGED_PRESETS, PRESETS

IGNORED = ("name", "folds", "data.root", "data.num_workers", "data.check", "train.progress_bar",
           "train.log_every_n_steps", "train.keep_checkpoints")
PLACEMENT = ("train.accelerator", "train.devices", "train.strategy", "train.num_nodes")
COMPONENTS = ("model.upstreams", "model.aggregators")
SHOWN = 6  # differing keys named in the error; the rest are counted
_ABSENT = object()


def check_fold_record(fold_dir: Path, cfg: ExperimentConfig, split: FoldSplit) -> None:
    """Raise ConfigError when `fold_dir` holds work (a result, a checkpoint to resume, a first-fit record) made
    with another config or another split than `cfg` and `split`. A fold without that work, or without a
    recorded config.yaml (nothing to compare), passes."""
    finished = (fold_dir / "result.json").is_file()
    if not (finished or (fold_dir / "checkpoints" / "last.ckpt").is_file() or (fold_dir / "train_only.json").is_file()):
        return
    ignored = IGNORED + (PLACEMENT if finished else ())
    differences = (_config_differences(fold_dir / "config.yaml", cfg, ignored)
                   + _split_differences(fold_dir / "split.json", split))
    if differences:
        shown = "; ".join(differences[:SHOWN]) + (f"; and {len(differences) - SHOWN} more"
                                                  if len(differences) > SHOWN else "")
        raise ConfigError(f"{fold_dir} was trained by another command than this one ({shown}): run the command "
                          "that made it, give another --out, or delete the fold folder to train it afresh")


def _config_differences(path: Path, cfg: ExperimentConfig, ignored: tuple[str, ...]) -> list[str]:
    try:
        recorded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []  # a fold from before config.yaml was written: nothing to compare
    except (OSError, ValueError, yaml.YAMLError) as error:  # ValueError: not UTF-8
        raise ConfigError(f"{path}: cannot read the config the fold was trained with ({error}); delete the fold "
                          "folder to train it afresh") from None
    if not isinstance(recorded, dict):
        raise ConfigError(f"{path}: not a config mapping; delete the fold folder to train it afresh")
    was, now, default = (_comparable(tree) for tree in (recorded, to_dict(cfg), to_dict(ExperimentConfig())))
    differences = []
    for key in sorted(was.keys() | now.keys()):
        if key in ignored or key.startswith(tuple(f"{k}." for k in ignored)):
            continue
        before, after = was.get(key, default.get(key, _ABSENT)), now.get(key, default.get(key, _ABSENT))
        if (before is _ABSENT or after is _ABSENT) and key.startswith(COMPONENTS):
            continue  # an option of a component (same name, same place: compared below) one version lacks
        if before != after and not _same_local_path(key, before, after):
            differences.append(f"{key}: {_show(before)} then, {_show(after)} now")
    return differences


def _comparable(tree: dict) -> dict:
    """The config's leaves by dotted key, with what decides the computation made explicit: each component
    list's entry names ("model.upstreams.names"), and the feature cache as on/off (its folder is where it is,
    its dtype matters only when it is on)."""
    flat = _flat(tree)
    for section in COMPONENTS:
        entries = _lookup(tree, section)
        flat[f"{section}.names"] = [e.get("name") if isinstance(e, dict) else e for e in entries or []]
    cache = flat.pop("train.feature_cache", None)
    flat["train.feature_cache"] = "on" if cache else "off"
    if not cache:
        flat.pop("train.feature_cache_dtype", None)
    return flat


def _same_local_path(key: str, before, after) -> bool:
    """A component's `source` written once relative, once absolute (or `./a` and `a`): the same folder when both,
    made absolute from here, are the one existing folder. Equal strings were already equal whatever the working
    folder, so this lets through only spellings that name the same place from where the command runs now. Not
    a preset name (it loads what it names, even beside a folder of that name), and links are not followed (a
    link moved to another model since is another source)."""
    if not (key.startswith(COMPONENTS) and key.endswith(".source")
            and isinstance(before, str) and isinstance(after, str)):
        return False
    if any(name in PRESETS or name in PACKAGED_PRESETS for name in (before, after)):
        return False
    then, now = (os.path.normpath(Path(name).expanduser().absolute()) for name in (before, after))
    return then == now and Path(now).is_dir()


def _lookup(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def _split_differences(path: Path, split: FoldSplit) -> list[str]:
    """Archived runs keep no split.json (scripts/archive_runs.py): then only the config is compared."""
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: cannot read the fold's split ({error}); delete the fold folder to train it "
                          "afresh") from None
    if not isinstance(recorded, dict) or not all(isinstance(recorded.get(n), list) for n in ("train", "valid", "test")):
        raise ConfigError(f"{path}: not a split record (train, valid and test lists of utterance ids); delete the "
                          "fold folder to train it afresh")
    differences = []
    for name in ("train", "valid", "test"):
        before, after = set(map(str, recorded[name])), {u.id for u in getattr(split, name)}
        if before != after:
            differences.append(f"its {name} utterances: {len(before)} then, {len(after)} now, "
                               f"{len(before ^ after)} differ")
    return differences


def _flat(tree, prefix: str = "") -> dict:
    """{"train.augment.mixup": 0.4, "model.upstreams.0.name": "whisper", ...}: leaves by dotted key."""
    if isinstance(tree, dict) and tree:
        items = tree.items()
    elif isinstance(tree, list) and tree and all(isinstance(v, (dict, list)) for v in tree):
        items = enumerate(tree)
    else:
        return {prefix: tree}
    flat = {}
    for key, value in items:
        flat.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _show(value) -> str:
    if value is _ABSENT:
        return "unset"
    if isinstance(value, str):  # long paths: their start and their end, where two of them differ
        return repr(value) if len(value) <= 58 else repr(value[:20] + "..." + value[-35:])
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."
