"""Masked statistics pooling: the mean and standard deviation of an utterance's real frames, concatenated.

The x-vector pooling (Snyder et al. 2018) without attention: the spread of a feature over time (how much
pitch-, energy- or voice-quality-like dimensions move) carries emotion that the mean alone loses.
"""

from __future__ import annotations

import torch

from .base import AGGREGATORS, Aggregator, length_mask

STD_FLOOR = 1e-5  # keeps the sqrt's gradient finite for constant (or one-frame) utterances


@AGGREGATORS.register("stats")
class StatisticsPooling(Aggregator):
    """frames [B, T, D], frame_lens [B] -> [mean, std] over frames t < frame_lens[b]: [B, 2 D]. No parameters."""

    def __init__(self, input_dim: int):
        super().__init__()
        self.output_dim = 2 * input_dim

    def forward(self, frames: torch.Tensor, frame_lens: torch.Tensor) -> torch.Tensor:
        mask = length_mask(frame_lens, frames.shape[1]).unsqueeze(-1)  # [B, T, 1]
        zero = torch.zeros((), dtype=frames.dtype, device=frames.device)
        count = frame_lens.clamp(min=1).to(frames.dtype).unsqueeze(-1)  # [B, 1]
        # where(), not a multiply: padding values are undefined (could be inf/NaN) and must not be read.
        mean = torch.where(mask, frames, zero).sum(dim=1) / count  # [B, D]
        centred = torch.where(mask, frames - mean.unsqueeze(1), zero)
        std = (centred.pow(2).sum(dim=1) / count).clamp(min=STD_FLOOR**2).sqrt()  # [B, D], population std
        return torch.cat([mean, std], dim=-1)
