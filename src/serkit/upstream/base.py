"""The upstream contract: task-independent encoders that return every layer plus frame lengths.

    forward(wavs [B, S] float32 16 kHz, wav_lens [B] samples, texts: list[str] | None)
        -> UpstreamOutput(hidden: list of [B, T, D] (one per layer, input embedding first where the
           model has one), frame_lens [B])

Frames at or past `frame_lens[b]` are padding: their values are undefined and must never be read.
Audio upstreams ignore `texts`; the text upstream reads only `texts` (it has no frame rate: frame_rate=0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import nn

from ..registry import Registry


@dataclass
class UpstreamConfig:
    """One upstream, as written in an experiment config.

    name: registry key ("hf", "fbank", "text").
    source: preset name (e.g. "wav2vec2-large-robust"), hub id, or local directory; unused by "fbank".
    layers: "last", "weighted" (learned softmax over all layers, SUPERB style) or a layer index ("6").
    freeze: "all" (frozen), "cnn" (fine-tune all but the CNN feature encoder: the paper's choice), "none".
    """

    name: str = "hf"
    source: str | None = None
    layers: str = "weighted"
    freeze: str = "cnn"


class UpstreamOutput(NamedTuple):
    hidden: list[torch.Tensor]  # num_layers x [B, T, D]
    frame_lens: torch.Tensor  # [B] int64


class Upstream(nn.Module):
    """Base class. Subclasses set `num_layers`, `hidden_size`, `frame_rate` and implement forward."""

    modality: ClassVar[str] = "audio"  # "audio" or "text"
    num_layers: int
    hidden_size: int
    frame_rate: float  # frames per second of output (0 for text)

    @classmethod
    def from_config(cls, cfg: UpstreamConfig) -> "Upstream":
        raise NotImplementedError

    def forward(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor, texts: list[str] | None = None
    ) -> UpstreamOutput:
        raise NotImplementedError

    def feature_encoder_parameters(self) -> list[nn.Parameter]:
        """Parameters of the CNN feature encoder (frozen by freeze="cnn"); none by default."""
        return []


UPSTREAMS: Registry[type[Upstream]] = Registry("upstream")
