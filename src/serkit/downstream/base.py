"""The aggregator contract: frames [B, T, D] + frame_lens [B] -> one embedding [B, E] per utterance.

Every pooling and normalisation masks by frame_lens: padding never moves the embedding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..registry import Registry
from ..util.masks import length_mask  # noqa: F401  (aggregators and plug-ins import it from here)


@dataclass
class AggregatorConfig:
    """The keys every aggregator has: name, its registry key ("mean", "stats", "ecapa", a plug-in's). An aggregator
    with parameters of its own subclasses this next to its code (downstream/ecapa.py's EcapaConfig) and names the
    subclass as its `Config`."""

    name: str = "mean"


class Aggregator(nn.Module):
    """Base class. Subclasses set `output_dim` and implement forward(frames [B,T,D], frame_lens [B]) -> [B,E];
    `Config` is the dataclass of their parameters, which `from_config` reads (the default: none, cls(input_dim))."""

    Config: ClassVar[type] = AggregatorConfig
    output_dim: int

    @classmethod
    def from_config(cls, cfg: AggregatorConfig, input_dim: int) -> "Aggregator":
        return cls(input_dim)

    def forward(self, frames: torch.Tensor, frame_lens: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


AGGREGATORS: Registry[type[Aggregator]] = Registry("aggregator", "serkit.downstream", "serkit.aggregators")


def aggregator_config(entry, key: str = "aggregator") -> AggregatorConfig:
    """A config entry (a mapping or any AggregatorConfig) -> an instance of its aggregator's own `Config`, every
    key checked (ConfigError "key '<key>.<field>' ...")."""
    return AGGREGATORS.config_of(entry, key, AggregatorConfig.name)
