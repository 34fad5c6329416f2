"""Model bundles: what training produces and everything else loads.

    <bundle>/model.safetensors   SERModel state_dict (metadata: config_hash)
             config.yaml         the fully resolved experiment config
             labels.json         class names in logit order
             upstreams/<i>/      upstream i's own config files (HF config.json, feature extractor, tokenizer)
             metrics.json        what the model scored (per split; best single vs averaged; a refit fold's test)

Loading never touches the network: upstream i is rebuilt from `upstreams/<i>/` with untrained weights
(`pretrained=False`) and then every weight comes from model.safetensors, strictly (no missing keys).

A bundle may come from elsewhere, so loading it runs no code: weights are safetensors (no pickle), the
upstreams' files are JSON/text read by transformers without `trust_remote_code`, the upstream sources in
config.yaml are ignored (always `upstreams/<i>/` of the bundle), and a file reached through a symlink that
leaves the bundle is refused.

Nor does a tampered bundle get to allocate or build what its weights cannot hold: labels.json must name each
class once; the config's model is first built on torch's `meta` device (shapes, no memory) and its tensor
names and shapes compared with model.safetensors' header (read without loading a tensor), so a `channels:
1e8` or an HF `hidden_size: 200000` is refused in a second instead of allocating 160 GB; an HF config asking
for more layers than the file holds tensors is refused before even that (building 20,000 layers on `meta`
still takes 33 s). Only then is the model built for real and loaded, and weights that are not finite (NaN,
inf) are refused, naming the tensor. Every refusal is a DataError naming the bundle file and the key.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections import Counter
from pathlib import Path

import torch

from .checkpoint import CONFIG_HASH, load_state_dict, read_header, save_checkpoint
from .config import ExperimentConfig, config_hash, load_config, save_config
from .errors import ConfigError, DataError
from .model import SERModel, build_model
from .util.atomic import temp_folder, write_json

WEIGHTS, CONFIG, LABELS, METRICS, UPSTREAMS_DIR = (
    "model.safetensors", "config.yaml", "labels.json", "metrics.json", "upstreams",
)


def save_bundle(
    out_dir: str | Path, model: SERModel, cfg: ExperimentConfig, labels: list[str], metrics: dict | None = None
) -> Path:
    """Write a bundle to `out_dir` atomically: it is assembled in a temp folder beside it, then renamed into
    place, so a crash leaves either the old bundle or the new one, never half of one."""
    out_dir = Path(out_dir)
    model, cfg = _without_lora(model, cfg)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for leftover in out_dir.parent.glob(f".{out_dir.name}.*"):  # a killed save's temp folder
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = temp_folder(out_dir.parent, f".{out_dir.name}.")
    try:
        save_checkpoint(model.state_dict(), tmp / WEIGHTS, {CONFIG_HASH: config_hash(cfg.model)})
        save_config(cfg, tmp / CONFIG)
        write_json(tmp / LABELS, list(labels))
        write_json(tmp / METRICS, metrics or {})
        for index, upstream in enumerate(model.upstreams):
            upstream_dir = tmp / UPSTREAMS_DIR / str(index)
            upstream_dir.mkdir(parents=True)
            upstream.save_config_files(upstream_dir)
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _without_lora(model: SERModel, cfg: ExperimentConfig) -> tuple[SERModel, ExperimentConfig]:
    """A model with LoRA adapters is bundled merged (upstream/lora.py): a copy with each adapter folded into its
    layer's weight, and a config without LoRA, so the bundle loads, predicts and exports without peft."""
    from .upstream.lora import has_lora, merge_lora

    if not has_lora(model):
        return model, cfg
    model, cfg = copy.deepcopy(model), copy.deepcopy(cfg)
    merge_lora(model)
    for upstream_cfg in cfg.model.upstreams:
        upstream_cfg.lora_rank = 0
    return model, cfg


def load_bundle(bundle_dir: str | Path) -> tuple[SERModel, ExperimentConfig, list[str]]:
    """-> (model in eval mode on CPU, its experiment config, class names)."""
    bundle_dir = Path(bundle_dir)
    aside = bundle_dir.with_name(f".{bundle_dir.name}.old")
    if not bundle_dir.exists() and aside.is_dir():
        raise DataError(f"bundle missing: a save was interrupted while replacing it; the previous bundle is {aside} "
                        "(rename it back, or save again)", bundle_dir)
    if not bundle_dir.exists():
        raise DataError("no such file or folder (expected a model bundle: a run's fold_K/model folder)", bundle_dir)
    folds = sorted(bundle_dir.glob("fold_*/model"), key=lambda p: (len(p.parent.name), p.parent.name))  # 2 < 10
    if folds and not (bundle_dir / WEIGHTS).is_file():  # a `serkit cv` run folder: one bundle per fold
        raise DataError(f"a run folder, not a model bundle: give one fold's bundle, e.g. {folds[0]}", bundle_dir)
    for name in (WEIGHTS, CONFIG, LABELS):
        if not (bundle_dir / name).is_file():
            raise DataError(f"not a serkit model bundle: {name} is missing", bundle_dir)
    _check_inside(bundle_dir)
    try:
        cfg = load_config(bundle_dir / CONFIG)
    except ConfigError as error:  # a value out of range names its key; say which file it is in
        if str(bundle_dir / CONFIG) in str(error):
            raise
        raise ConfigError(f"{bundle_dir / CONFIG}: {error}") from None
    labels = _read_labels(bundle_dir / LABELS)
    for index, upstream_cfg in enumerate(cfg.model.upstreams):
        # always the bundle's own copy: a config.yaml from elsewhere cannot point loading at other folders
        if hasattr(upstream_cfg, "source"):  # the filterbank has no source
            upstream_cfg.source = str(bundle_dir / UPSTREAMS_DIR / str(index))
    header = _read_header(bundle_dir / WEIGHTS)
    _check_layer_counts(bundle_dir, cfg, header)
    _check_shapes(bundle_dir, cfg, labels, header)  # on `meta`: nothing allocated yet
    model = build_model(cfg.model, num_classes=len(labels), pretrained=False)
    state = load_state_dict(bundle_dir / WEIGHTS)
    _check_finite(bundle_dir / WEIGHTS, state)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise DataError(
            f"weights do not fit the config: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}",
            bundle_dir / WEIGHTS,
        )
    return model.eval(), cfg, labels


def _read_labels(path: Path) -> list[str]:
    """labels.json: a JSON list of at least two class names, each once (what training accepts)."""
    try:
        labels = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        labels = None
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise DataError("expected a JSON list of class names", path)
    repeated = sorted(label for label, n in Counter(labels).items() if n > 1)
    if repeated:
        # two columns of one name would each get a probability, and a dict of them only one
        raise DataError(f"class names {repeated} are listed more than once in {labels}; each class needs its own "
                        "name (training refuses repeated labels too)", path)
    if len(labels) < 2:
        raise DataError(f"{len(labels)} class names; a model needs at least 2", path)
    return labels


def _read_header(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape, from the safetensors header alone (no tensor is read)."""
    return {key: shape for key, (_, shape) in read_header(path)[1].items()}


def _check_layer_counts(bundle_dir: Path, cfg: ExperimentConfig, header: dict[str, tuple[int, ...]]) -> None:
    """An upstream config (HF config.json) asking for more layers than the weights file holds tensors for that
    upstream cannot fit it (every layer has weights); refused before building, since even on `meta` the
    Python modules of 20,000 layers take half a minute and 2 GB."""
    for index in range(len(cfg.model.upstreams)):
        path = bundle_dir / UPSTREAMS_DIR / str(index) / "config.json"
        if not path.is_file():  # fbank has no config files
            continue
        try:
            upstream_config = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, RecursionError):
            continue  # transformers says what is wrong with it when the model is built
        if not isinstance(upstream_config, dict):
            continue
        tensors = sum(key.startswith(f"upstreams.{index}.") for key in header)
        for key, value in upstream_config.items():
            # num_hidden_layers, encoder_layers, num_feat_extract_layers, ...
            if key.endswith("layers") and isinstance(value, int) and not isinstance(value, bool) and value > tensors:
                raise DataError(f"{key!r} is {value}, but {WEIGHTS} holds {tensors} tensors for upstream {index}: "
                                "the weights cannot fit that many layers", path)


def _check_shapes(bundle_dir: Path, cfg: ExperimentConfig, labels: list[str], header: dict[str, tuple[int, ...]]
                  ) -> None:
    """Build the model on the `meta` device (shapes only, no memory) and compare its tensors with the header:
    a config that does not fit the weights is refused before anything is allocated."""
    try:
        with torch.device("meta"):
            model = build_model(cfg.model, num_classes=len(labels), pretrained=False)
    except ConfigError as error:  # already names the key; say which file it is in
        raise ConfigError(f"{bundle_dir / CONFIG}: {error}") from None
    except Exception as error:  # noqa: BLE001  (torch's or transformers' own errors for sizes they cannot make;
        # serkit's own fields are range-checked by load_config above, naming their key)
        raise DataError(f"the model it describes cannot be built ({type(error).__name__}: "
                        f"{str(error).splitlines()[0] if str(error) else ''})", bundle_dir / CONFIG) from None
    expected = {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}
    missing, unexpected = sorted(set(expected) - set(header)), sorted(set(header) - set(expected))
    if missing or unexpected:
        raise DataError(f"weights do not fit the config: missing {missing[:5]}, unexpected {unexpected[:5]}",
                        bundle_dir / WEIGHTS)
    wrong = [key for key in expected if expected[key] != header[key]]
    if not wrong:
        return
    if all(key.startswith("classifier.") for key in wrong):
        key = wrong[0]
        raise DataError(f"{len(labels)} class names, but the classifier in {WEIGHTS} has {header[key][0]} outputs "
                        f"({key} is {list(header[key])})", bundle_dir / LABELS)
    key = wrong[0]
    raise DataError(f"{key} is {list(header[key])}, but {_config_source(key)} makes it {list(expected[key])} "
                    f"({len(wrong)} of {len(expected)} tensors differ): the weights do not fit the config",
                    bundle_dir / WEIGHTS)


def _config_source(key: str) -> str:
    """Where the size of state_dict entry `key` comes from: the bundle file and config key."""
    parts = key.split(".")
    if parts[0] == "upstreams" and len(parts) > 1:
        return f"{UPSTREAMS_DIR}/{parts[1]}/ (model.upstreams[{parts[1]}] in {CONFIG})"
    if parts[0] == "layer_selectors" and len(parts) > 1:
        return f"model.upstreams[{parts[1]}].layers in {CONFIG}"
    if parts[0] == "aggregate":
        return f"model.aggregators in {CONFIG}"
    return f"model in {CONFIG}"


def _check_finite(path: Path, state: dict[str, torch.Tensor]) -> None:
    """NaN or inf in a weight makes every prediction NaN (and argmax a label anyway): refuse the file."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise DataError(f"tensor {key} holds {bad} values that are not finite (NaN or inf); the weights are "
                            "damaged", path)


def _check_inside(bundle_dir: Path) -> None:
    """DataError if any file or folder of the bundle resolves (through a symlink) to a place outside it."""
    root = bundle_dir.resolve()
    for path in bundle_dir.rglob("*"):
        try:
            target = path.resolve()
        except (OSError, RuntimeError) as e:  # a symlink loop
            raise DataError(f"{path.relative_to(bundle_dir)} cannot be resolved ({e})", bundle_dir) from None
        if not target.is_relative_to(root):
            raise DataError(f"{path.relative_to(bundle_dir)} is a link to {target}, outside the bundle; "
                            "a bundle must be self-contained", bundle_dir)


def _replace_dir(new: Path, target: Path) -> None:
    """Put folder `new` at `target`; an existing target is moved aside first and removed after."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
