"""ECAPA-TDNN (Desplanques, Thienpondt, Demuynck, "ECAPA-TDNN: Emphasized Channel Attention, Propagation and
Aggregation in TDNN Based Speaker Verification", Interspeech 2020) as an aggregator: frames -> embedding.

The network of the paper's Figure 2, sized by EcapaConfig (paper: C=512, 1536, 192):

    frames [B, T, D]
    Conv1D + ReLU + BN        (k=5, d=1)   -> C x T
    SE-Res2Block x 3          (k=3, d=2,3,4; Res2Net scale 8, SE bottleneck 128; residual) -> C x T each
    concat the 3 block outputs, Conv1D + ReLU (k=1)                        -> 1536 x T   (multi-layer aggregation)
    attentive statistics pooling with global context (bottleneck 128) + BN -> 3072
    FC + BN                                                                -> 192 = embedding [B, E]

The speaker-verification AAM-softmax head is left out: serkit's classifier follows the embedding. Every
statistic is masked by frame_lens (see ecapa_blocks), so padding never moves the embedding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import ConfigError
from .base import AGGREGATORS, Aggregator, AggregatorConfig, length_mask
from .ecapa_blocks import AttentiveStatisticsPooling, MaskedBatchNorm1d, SERes2NetBlock, TDNNBlock


@dataclass
class EcapaConfig(AggregatorConfig):
    """ECAPA-TDNN's sizes (defaults: the paper's C=512 system). kernel_sizes / dilations: the first TDNN layer's,
    then one per SE-Res2Block (same length, at least 2). Every size is checked against its range when the config
    is built: ConfigError "key '<field>' is <value>; expected ..." (load_config puts model.aggregators.N. in front)."""

    name: str = "ecapa"
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
        channels, scale, kernels, dilations = self.channels, self.res2net_scale, self.kernel_sizes, self.dilations
        ranges = {  # field -> (check, what is expected)
            "channels": (channels >= 1, "1 or more"),
            "mfa_channels": (self.mfa_channels >= 1, "1 or more"),
            "embedding_dim": (self.embedding_dim >= 1, "1 or more"),
            "se_channels": (self.se_channels >= 1, "1 or more"),
            "attention_channels": (self.attention_channels >= 1, "1 or more"),
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
                value = getattr(self, name)
                raise ConfigError(f"key '{name}' is {list(value) if isinstance(value, (list, tuple)) else value!r}; "
                                  f"expected {expected}")


@AGGREGATORS.register("ecapa")
class ECAPATDNN(Aggregator):
    """frames [B, T, D], frame_lens [B] -> embedding [B, cfg.embedding_dim]; len(cfg.kernel_sizes) - 1 blocks."""

    Config = EcapaConfig

    def __init__(self, input_dim: int, cfg: EcapaConfig):
        super().__init__()
        channels, kernel_sizes, dilations = cfg.channels, list(cfg.kernel_sizes), list(cfg.dilations)
        res2net_scale, mfa_channels, embedding_dim = cfg.res2net_scale, cfg.mfa_channels, cfg.embedding_dim
        self.output_dim = embedding_dim
        self.first = TDNNBlock(input_dim, channels, kernel_sizes[0], dilations[0])
        self.blocks = nn.ModuleList(
            SERes2NetBlock(channels, kernel, dilation, res2net_scale, cfg.se_channels)
            for kernel, dilation in zip(kernel_sizes[1:], dilations[1:])
        )
        self.aggregate = nn.Conv1d(channels * len(self.blocks), mfa_channels, 1)
        self.pooling = AttentiveStatisticsPooling(mfa_channels, cfg.attention_channels, cfg.global_context)
        self.pooling_norm = MaskedBatchNorm1d(mfa_channels * 2)
        self.fc = nn.Linear(mfa_channels * 2, embedding_dim)
        self.embedding_norm = MaskedBatchNorm1d(embedding_dim)

    @classmethod
    def from_config(cls, cfg: EcapaConfig, input_dim: int) -> "ECAPATDNN":
        return cls(input_dim, cfg)

    def forward(self, frames: torch.Tensor, frame_lens: torch.Tensor) -> torch.Tensor:
        steps = frames.shape[1]
        # A zero-length utterance keeps one (zeroed) frame, so the attention softmax is never all -inf.
        frame_lens = frame_lens.clamp(min=1, max=steps)
        real = length_mask(frame_lens, steps).unsqueeze(1)  # [B, 1, T] bool
        mask = real.to(frames.dtype)
        # where(), not a multiply: padding frames are undefined (could be NaN) and must be exact zeros for the convs.
        x = torch.where(real, frames.transpose(1, 2), torch.zeros((), dtype=frames.dtype, device=frames.device))
        x = self.first(x, mask)
        block_outputs = []
        for block in self.blocks:
            x = block(x, mask)
            block_outputs.append(x)
        x = torch.relu(self.aggregate(torch.cat(block_outputs, dim=1))) * mask  # [B, mfa_channels, T]
        pooled = self.pooling_norm(self.pooling(x, mask))  # [B, 2 * mfa_channels]
        return self.embedding_norm(self.fc(pooled))

