"""Checkpoint files (safetensors state_dicts) and their streaming parameter average.

The paper averages the parameters of the top-k checkpoints (by validation UA) of a fold, upstream and
downstream alike, into one model. Averaging is **streaming**: checkpoints are opened one at a time and added
into one running float64 sum, so peak memory is one float64 copy of the model plus one tensor, whatever k is.

Rules:
- Floating tensors (any float dtype, incl. bf16/fp16) are summed in float64, divided by k, then cast back to
  their own dtype. k identical float32/16 checkpoints therefore average to exactly themselves.
- Integer and bool tensors (BatchNorm `num_batches_tracked`, index buffers, masks, ...) are never averaged:
  a mean of counters or indices is meaningless and a float round trip would corrupt large values. They take
  the value of the **first** checkpoint given, so pass the paths best first (the top-k order).
- Checkpoints must agree on the `config_hash` metadata, the key set, and every tensor's shape and dtype;
  otherwise a ConfigError names both files. All headers are checked before any tensor is read.
- The output keeps the metadata entries that all inputs share (config_hash among them), drops those that
  differ (epoch, score, ...), and adds `averaged_files` (JSON list) and `k`.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Mapping, Sequence

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..errors import ConfigError, DataError
from ..util.atomic import file_mode

CONFIG_HASH = "config_hash"


def save_checkpoint(state_dict: Mapping[str, torch.Tensor], path: str | Path, metadata: Mapping[str, str]) -> Path:
    """Write a state_dict to `path` as safetensors, atomically (temp file in the same folder, then os.replace:
    a crash never leaves half a checkpoint under the real name). metadata: str -> str, must hold "config_hash"."""
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
    # a unique name beside the target: same file system, so os.replace is atomic
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.chmod(tmp, file_mode())  # safetensors creates it 0600; give it what open() would (0644 under umask 022)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint's tensors (on CPU)."""
    _require_file(path)
    try:
        return load_file(str(path), device="cpu")
    except SafetensorError as e:
        raise DataError(f"not a readable safetensors checkpoint ({e})", path) from None


def read_metadata(path: str | Path) -> dict[str, str]:
    """A checkpoint's metadata (str -> str), without reading its tensors."""
    _require_file(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return dict(f.metadata() or {})
    except SafetensorError as e:
        raise DataError(f"not a readable safetensors checkpoint ({e})", path) from None


def read_keys(path: str | Path) -> list[str]:
    """A checkpoint's tensor names, without reading its tensors."""
    return list(_header(Path(path))["tensors"])


def average_checkpoints(paths: Sequence[str | Path]) -> dict[str, torch.Tensor]:
    """The parameter average of k checkpoints (paths best first), streamed one file at a time.

    Returns key -> tensor with each key's original shape and dtype; see the module docstring for the
    rules on integer tensors and on which checkpoints are compatible.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ConfigError("no checkpoints to average")
    _check_compatible(paths)
    sums: dict[str, torch.Tensor] = {}
    dtypes: dict[str, torch.dtype] = {}  # key -> original dtype of every averaged (floating) tensor
    for index, path in enumerate(paths):
        with safe_open(str(path), framework="pt", device="cpu") as f:
            for key in f.keys():
                if index == 0:
                    tensor = f.get_tensor(key)
                    if tensor.is_floating_point() or tensor.is_complex():
                        dtypes[key] = tensor.dtype
                        tensor = tensor.to(torch.complex128 if tensor.is_complex() else torch.float64, copy=True)
                    sums[key] = tensor  # integer/bool: the first (best) checkpoint's value, exactly
                elif key in dtypes:
                    sums[key].add_(f.get_tensor(key))  # promotes into the float64 sum, no float64 copy
    averaged = {}
    for key in list(sums):
        tensor = sums.pop(key)  # frees each float64 sum as soon as it is cast back
        averaged[key] = tensor.div_(len(paths)).to(dtypes[key]) if key in dtypes else tensor
    return averaged


def average_checkpoint_files(paths: Sequence[str | Path], out: str | Path) -> Path:
    """Average `paths` (best first) and save to `out` with metadata: the entries all inputs share,
    `averaged_files` (JSON list of the paths as given) and `k`. Returns `out`."""
    paths = [Path(p) for p in paths]
    averaged = average_checkpoints(paths)
    metadata = read_metadata(paths[0])
    for path in paths[1:]:
        other = read_metadata(path)
        metadata = {k: v for k, v in metadata.items() if other.get(k) == v}
    metadata.update({"averaged_files": json.dumps([str(p) for p in paths]), "k": str(len(paths))})
    return save_checkpoint(averaged, out, metadata)


def _check_compatible(paths: list[Path]) -> None:
    """Compare every file's header (config hash, keys, dtypes, shapes) with the first's; reads no tensor."""
    reference = _header(paths[0])
    for path in paths[1:]:
        header = _header(path)
        first, this = f"{paths[0]}", f"{path}"
        if header["hash"] != reference["hash"]:
            raise ConfigError(f"checkpoints come from different model configs: {first} has {CONFIG_HASH} "
                              f"{reference['hash']}, {this} has {header['hash']}")
        if header["tensors"].keys() != reference["tensors"].keys():
            missing = sorted(reference["tensors"].keys() - header["tensors"].keys())
            extra = sorted(header["tensors"].keys() - reference["tensors"].keys())
            raise ConfigError(f"checkpoints hold different parameters: {this} lacks {missing[:5]} and has extra "
                              f"{extra[:5]} compared with {first}")
        for key, spec in reference["tensors"].items():
            if header["tensors"][key] != spec:
                raise ConfigError(f"parameter {key!r} is (dtype, shape) {spec} in {first} but "
                                  f"{header['tensors'][key]} in {this}")


def _header(path: Path) -> dict:
    """config hash and key -> (dtype, shape) of one file, read from its header only."""
    _require_file(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {}
            for key in f.keys():
                tensor_slice = f.get_slice(key)
                tensors[key] = (tensor_slice.get_dtype(), tuple(tensor_slice.get_shape()))
    except SafetensorError as e:
        raise DataError(f"not a readable safetensors checkpoint ({e})", path) from None
    if CONFIG_HASH not in metadata:
        raise ConfigError(f"checkpoint {path} has no {CONFIG_HASH!r} in its metadata: cannot tell which model "
                          "config it belongs to (write checkpoints with serkit.training.averaging.save_checkpoint)")
    return {"hash": metadata[CONFIG_HASH], "tensors": tensors}


def _untied(state_dict: Mapping[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors; a tensor sharing storage with an earlier one (tied weights) is cloned,
    because safetensors refuses shared storage."""
    tensors, storages = {}, set()
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise ConfigError(f"state_dict entry {key!r} for {path} is a {type(value).__name__}, not a tensor")
        tensor = value.detach().to("cpu").contiguous()
        storage = tensor.untyped_storage().data_ptr()
        if storage in storages:
            tensor = tensor.clone()
        storages.add(tensor.untyped_storage().data_ptr())
        tensors[key] = tensor
    return tensors


def _require_file(path: str | Path) -> None:
    if not Path(path).is_file():
        raise DataError("checkpoint not found", path)
