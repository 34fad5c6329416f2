"""The streaming parameter average of checkpoint files (safetensors, written by serkit.checkpoint).

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
from pathlib import Path
from typing import Sequence

import torch
from safetensors import safe_open

from ..checkpoint import CONFIG_HASH, read_header, read_metadata, save_checkpoint
from ..errors import ConfigError


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
    metadata, tensors = read_header(path)
    if CONFIG_HASH not in metadata:
        raise ConfigError(f"checkpoint {path} has no {CONFIG_HASH!r} in its metadata: cannot tell which model "
                          "config it belongs to (write checkpoints with serkit.checkpoint.save_checkpoint)")
    return {"hash": metadata[CONFIG_HASH], "tensors": tensors}
