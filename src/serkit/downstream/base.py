"""The aggregator contract: frames [B, T, D] + frame_lens [B] -> one embedding [B, E] per utterance.

Every pooling and normalisation masks by frame_lens: padding never moves the embedding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import Registry


@dataclass
class AggregatorConfig:
    """name: registry key ("mean", "stats", "ecapa"). The remaining keys size ECAPA-TDNN (Desplanques et al. 2020,
    defaults as in the paper's C=512 system) and are ignored by mean and statistics pooling.
    kernel_sizes / dilations: the first TDNN layer's, then one per SE-Res2Block (same length, at least 2).
    Every size is checked against its range when the config is built, whatever the name (check_aggregator):
    a bad value names its key (model.aggregators.N.KEY, from a config file or override)."""

    name: str = "mean"
    channels: int = 512
    mfa_channels: int = 1536
    embedding_dim: int = 192
    kernel_sizes: list[int] = field(default_factory=lambda: [5, 3, 3, 3])
    dilations: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    res2net_scale: int = 8
    se_channels: int = 128
    attention_channels: int = 128
    global_context: bool = True

    def __post_init__(self):
        check_aggregator(self)


def check_aggregator(cfg, key: str = "aggregator") -> None:
    """ConfigError "key '<key>.<field>' is <value>; expected ..." for the first size of an aggregator config out
    of its range. cfg: an AggregatorConfig, or its node in a config being merged (load_config checks each
    model.aggregators entry before building it, so the message has its index)."""
    channels, scale = cfg.channels, cfg.res2net_scale
    kernels, dilations = list(cfg.kernel_sizes), list(cfg.dilations)
    ranges = {  # field -> (check, what is expected)
        "channels": (channels >= 1, "1 or more"),
        "mfa_channels": (cfg.mfa_channels >= 1, "1 or more"),
        "embedding_dim": (cfg.embedding_dim >= 1, "1 or more"),
        "se_channels": (cfg.se_channels >= 1, "1 or more"),
        "attention_channels": (cfg.attention_channels >= 1, "1 or more"),
        "res2net_scale": (1 <= scale <= channels and channels % scale == 0,
                          f"a divisor of channels ({channels}) from 1 to {channels}"),
        "kernel_sizes": (len(kernels) >= 2 and all(k >= 1 for k in kernels),
                         "a list of 2 or more sizes of 1 or more (the first TDNN layer's, then one per "
                         "SE-Res2Block)"),
        "dilations": (len(dilations) == len(kernels) and all(d >= 1 for d in dilations),
                      f"as many dilations of 1 or more as kernel_sizes has entries ({len(kernels)})"),
    }
    for name, (ok, expected) in ranges.items():
        if not ok:
            value = getattr(cfg, name)
            value = list(value) if name in ("kernel_sizes", "dilations") else value
            raise ConfigError(f"key '{key}.{name}' is {value!r}; expected {expected}")


class Aggregator(nn.Module):
    """Base class. Subclasses set `output_dim` and implement forward(frames [B,T,D], frame_lens [B]) -> [B,E]."""

    output_dim: int

    @classmethod
    def from_config(cls, cfg: AggregatorConfig, input_dim: int) -> "Aggregator":
        raise NotImplementedError

    def forward(self, frames: torch.Tensor, frame_lens: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


AGGREGATORS: Registry[type[Aggregator]] = Registry("aggregator")


def length_mask(frame_lens: torch.Tensor, max_len: int) -> torch.Tensor:
    """frame_lens [B] -> bool mask [B, max_len], True on real frames."""
    return torch.arange(max_len, device=frame_lens.device)[None, :] < frame_lens[:, None]
