"""ECAPA-TDNN (Desplanques, Thienpondt, Demuynck, "ECAPA-TDNN: Emphasized Channel Attention, Propagation and
Aggregation in TDNN Based Speaker Verification", Interspeech 2020) as an aggregator: frames -> embedding.

The network of the paper's Figure 2, sized by AggregatorConfig (paper: C=512, 1536, 192):

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

import torch
from torch import nn

from ..errors import ConfigError
from .base import AGGREGATORS, Aggregator, AggregatorConfig, length_mask
from .ecapa_blocks import AttentiveStatisticsPooling, MaskedBatchNorm1d, SERes2NetBlock, TDNNBlock


@AGGREGATORS.register("ecapa")
class ECAPATDNN(Aggregator):
    """frames [B, T, D], frame_lens [B] -> embedding [B, embedding_dim].

    kernel_sizes / dilations: the first TDNN layer's, then one per SE-Res2Block (so len - 1 blocks).
    """

    def __init__(
        self,
        input_dim: int,
        channels: int = 512,
        mfa_channels: int = 1536,
        embedding_dim: int = 192,
        kernel_sizes: tuple[int, ...] | list[int] = (5, 3, 3, 3),
        dilations: tuple[int, ...] | list[int] = (1, 2, 3, 4),
        res2net_scale: int = 8,
        se_channels: int = 128,
        attention_channels: int = 128,
        global_context: bool = True,
    ):
        super().__init__()
        _check_sizes(channels, kernel_sizes, dilations, res2net_scale)
        self.output_dim = embedding_dim
        self.first = TDNNBlock(input_dim, channels, kernel_sizes[0], dilations[0])
        self.blocks = nn.ModuleList(
            SERes2NetBlock(channels, kernel, dilation, res2net_scale, se_channels)
            for kernel, dilation in zip(kernel_sizes[1:], dilations[1:])
        )
        self.aggregate = nn.Conv1d(channels * len(self.blocks), mfa_channels, 1)
        self.pooling = AttentiveStatisticsPooling(mfa_channels, attention_channels, global_context)
        self.pooling_norm = MaskedBatchNorm1d(mfa_channels * 2)
        self.fc = nn.Linear(mfa_channels * 2, embedding_dim)
        self.embedding_norm = MaskedBatchNorm1d(embedding_dim)

    @classmethod
    def from_config(cls, cfg: AggregatorConfig, input_dim: int) -> "ECAPATDNN":
        return cls(
            input_dim,
            channels=cfg.channels,
            mfa_channels=cfg.mfa_channels,
            embedding_dim=cfg.embedding_dim,
            kernel_sizes=list(cfg.kernel_sizes),
            dilations=list(cfg.dilations),
            res2net_scale=cfg.res2net_scale,
            se_channels=cfg.se_channels,
            attention_channels=cfg.attention_channels,
            global_context=cfg.global_context,
        )

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


def _check_sizes(channels: int, kernel_sizes, dilations, res2net_scale: int) -> None:
    if len(kernel_sizes) != len(dilations) or len(kernel_sizes) < 2:
        raise ConfigError(
            f"aggregator 'ecapa': keys 'kernel_sizes' {list(kernel_sizes)} and 'dilations' {list(dilations)} must "
            "have the same length, at least 2 (the first TDNN layer, then one per SE-Res2Block)"
        )
    if res2net_scale < 1 or channels % res2net_scale:
        raise ConfigError(
            f"aggregator 'ecapa': key 'channels' ({channels}) must be divisible by 'res2net_scale' ({res2net_scale})"
        )
