"""Checkpoint files and what goes in them: the layer below both `bundle` and `training`.

- safetensors I/O: a state_dict and its str -> str metadata (always the model config's hash, CONFIG_HASH), written
  through the package's one atomic writer (util/atomic.py), read on the CPU; headers read without a tensor.
- The frozen-parameter policy: parameters with requires_grad False (a `freeze: all`, `cnn` or `bottom:N`
  upstream's) never change from the weights the model was built with (its pretrained source), so training
  checkpoints leave them out (a frozen wav2vec2-large is 1.2 GB per checkpoint otherwise) and a resumed run
  checks their fingerprint instead. Model bundles hold everything.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Mapping

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import ConfigError, DataError
from .util.atomic import atomic_path
from .util.hashing import update_with_tensor

CONFIG_HASH = "config_hash"


# ------------------------------------------------------------------------------------------------ files


def save_checkpoint(state_dict: Mapping[str, torch.Tensor], path: str | Path, metadata: Mapping[str, str]) -> Path:
    """Write a state_dict to `path` as safetensors, atomically. metadata: str -> str, must hold CONFIG_HASH."""
    path = Path(path)
    metadata = dict(metadata)
    if CONFIG_HASH not in metadata:
        raise ConfigError(f"checkpoint metadata for {path} lacks {CONFIG_HASH!r} (the hash of the model config)")
    bad = {k: type(v).__name__ for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))}
    if bad:
        raise ConfigError(f"checkpoint metadata for {path} must map str to str; offending entries: {bad}")
    metadata.setdefault("format", "pt")  # what safetensors/transformers readers expect of torch files
    tensors = _untied(state_dict, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    return path


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors (on CPU)."""
    _require_file(path)
    try:
        return load_file(str(path), device="cpu")
    except SafetensorError as e:
        raise DataError(f"not a readable safetensors checkpoint ({e})", path) from None


def read_header(path: str | Path) -> tuple[dict[str, str], dict[str, tuple[str, tuple[int, ...]]]]:
    """(metadata, tensor name -> (dtype, shape)) from the file's header alone: no tensor is read."""
    _require_file(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            specs = {}
            for key in f.keys():
                tensor_slice = f.get_slice(key)
                specs[key] = (tensor_slice.get_dtype(), tuple(tensor_slice.get_shape()))
            return dict(f.metadata() or {}), specs
    except SafetensorError as e:
        raise DataError(f"not a readable safetensors checkpoint ({e})", path) from None


def read_metadata(path: str | Path) -> dict[str, str]:
    """A checkpoint's metadata (str -> str), without reading its tensors."""
    return read_header(path)[0]


def read_keys(path: str | Path) -> list[str]:
    """A checkpoint's tensor names, without reading its tensors."""
    return list(read_header(path)[1])


def _untied(state_dict: Mapping[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors; a tensor sharing storage with an earlier one (tied weights) is cloned,
    because safetensors refuses shared storage."""
    tensors, storages = {}, set()
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise ConfigError(f"state_dict entry {key!r} for {path} is a {type(value).__name__}, not a tensor")
        tensor = value.detach().to("cpu").contiguous()
        if tensor.untyped_storage().data_ptr() in storages:
            tensor = tensor.clone()
        storages.add(tensor.untyped_storage().data_ptr())
        tensors[key] = tensor
    return tensors


def _require_file(path: str | Path) -> None:
    if not Path(path).is_file():
        raise DataError("checkpoint not found", path)


# ------------------------------------------------------------------------------------ frozen parameters


def frozen_keys(model: nn.Module) -> set[str]:
    """state_dict keys of the model's frozen parameters (requires_grad False). Buffers are never frozen keys."""
    frozen = {id(p) for p in model.parameters() if not p.requires_grad}
    return {key for key, tensor in model.state_dict(keep_vars=True).items() if id(tensor) in frozen}


def frozen_fingerprint(model: nn.Module) -> str:
    """sha256 of the frozen parameters' values: what a resumed run checks, since its checkpoints leave them
    out and the model rebuilds them from the source (which must not have changed meanwhile)."""
    digest = hashlib.sha256(b"serkit-frozen-parameters")
    state = model.state_dict()
    for key in sorted(frozen_keys(model)):
        update_with_tensor(digest, key, state[key])
    return digest.hexdigest()


def trained_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """state_dict() without the frozen parameters (buffers are always kept): what a training checkpoint holds."""
    frozen = frozen_keys(model)
    return {key: tensor for key, tensor in model.state_dict().items() if key not in frozen}


def load_trained_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint"
                            ) -> None:
    """Load a state_dict that may lack frozen parameters (they keep their built values) but nothing else;
    ConfigError naming `source` and the keys when it lacks a trained one or has one this model does not."""
    expected = set(model.state_dict())
    missing = sorted(expected - set(state) - frozen_keys(model))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise ConfigError(f"{source} does not fit this model: it lacks {len(missing)} trained entries "
                          f"{missing[:5]} and has {len(unexpected)} unknown ones {unexpected[:5]}")
    model.load_state_dict(state, strict=False)
