"""The aggregator contract: frames [B, T, D] + frame_lens [B] -> one embedding [B, E] per utterance.

Every pooling and normalisation masks by frame_lens: padding never moves the embedding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..registry import Registry


@dataclass
class AggregatorConfig:
    """name: registry key ("mean", "stats", "ecapa"). The remaining keys size ECAPA-TDNN (Desplanques et al. 2020,
    defaults as in the paper's C=512 system) and are ignored by mean and statistics pooling."""

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
