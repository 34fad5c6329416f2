"""Which upstream layer(s) the downstream sees: the last one, one chosen layer, or a learned mix.

The mix is SUPERB's Featurizer (s3prl): one scalar per layer, initialised to zero (= a uniform average),
softmax-normalised, so the weights stay positive and sum to one whatever the optimiser does.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from .base import UpstreamConfig


def parse_layer_choice(layers: str | int, num_layers: int) -> str | int:
    """"last" / "weighted" / an index (negative counts from the end) -> "weighted" or a 0-based index."""
    text = str(layers).strip().lower()
    if text == "weighted":
        return "weighted"
    if text == "last":
        return num_layers - 1
    try:
        index = int(text)
    except ValueError:
        raise ConfigError(
            f"upstream.layers={layers!r}: expected 'last', 'weighted' or a layer index"
        ) from None
    if not -num_layers <= index < num_layers:
        raise ConfigError(
            f"upstream.layers={layers!r}: this upstream has {num_layers} layers (0 = input embedding), "
            f"so an index must lie in [{-num_layers}, {num_layers - 1}]"
        )
    return index % num_layers


def stacked_layers(hidden: list[torch.Tensor]) -> torch.Tensor:
    """num_layers x [B, T, D] -> [L, B, T, D]: the block the layers are consecutive views of (as a feature cache
    returns them), without a copy; otherwise torch.stack's copy. Either way the same values, so the same mix."""
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return torch.stack(hidden, dim=0)  # data pointers are not readable there (and nothing is cached)
    base = hidden[0]._base
    if (base is not None and base.dim() == 4 and base.shape[0] == len(hidden) and base.is_contiguous()
            and all(h._base is base and h.shape == base.shape[1:] and h.dtype == base.dtype and h.is_contiguous()
                    and h.requires_grad == base.requires_grad and h.data_ptr() == base[i].data_ptr()
                    for i, h in enumerate(hidden))):
        return base
    return torch.stack(hidden, dim=0)


class LayerSelector(nn.Module):
    """hidden: num_layers x [B, T, D] -> frames [B, T, D].

    mode "weighted" learns `weights` [num_layers] (softmax-normalised); an int picks that layer.
    layer_norm (weighted only): normalise each layer over D (no affine) before mixing, so layers of
    very different scale (e.g. the CNN output) do not dominate the mix.
    """

    def __init__(self, num_layers: int, layers: str | int = "weighted", layer_norm: bool = False):
        super().__init__()
        self.num_layers = num_layers
        self.choice = parse_layer_choice(layers, num_layers)
        self.layer_norm = layer_norm
        if self.choice == "weighted":
            self.weights = nn.Parameter(torch.zeros(num_layers))

    @classmethod
    def from_config(cls, cfg: UpstreamConfig, num_layers: int) -> "LayerSelector":
        return cls(num_layers, cfg.layers, cfg.layer_norm)

    def forward(self, hidden: list[torch.Tensor]) -> torch.Tensor:
        if len(hidden) != self.num_layers:
            raise ValueError(f"expected {self.num_layers} layers, got {len(hidden)}")
        if self.choice != "weighted":
            return hidden[self.choice]
        stacked = stacked_layers(hidden)  # [L, B, T, D]
        if self.layer_norm:
            stacked = F.layer_norm(stacked, stacked.shape[-1:])
        mix = F.softmax(self.weights, dim=0).to(stacked.dtype)
        return torch.einsum("l,lbtd->btd", mix, stacked)

    def extra_repr(self) -> str:
        return f"num_layers={self.num_layers}, layers={self.choice!r}, layer_norm={self.layer_norm}"
