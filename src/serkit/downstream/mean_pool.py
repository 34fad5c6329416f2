"""Masked mean pooling: the average of an utterance's real frames (the paper's simplest aggregator)."""

from __future__ import annotations

import torch

from .base import AGGREGATORS, Aggregator, length_mask


@AGGREGATORS.register("mean")
class MeanPooling(Aggregator):
    """frames [B, T, D], frame_lens [B] -> mean over frames t < frame_lens[b]: [B, D]. No parameters."""

    def __init__(self, input_dim: int):
        super().__init__()
        self.output_dim = input_dim

    def forward(self, frames: torch.Tensor, frame_lens: torch.Tensor) -> torch.Tensor:
        mask = length_mask(frame_lens, frames.shape[1]).unsqueeze(-1)  # [B, T, 1]
        # where(), not a multiply: padding values are undefined (could be inf/NaN) and must not be read.
        total = torch.where(mask, frames, torch.zeros((), dtype=frames.dtype, device=frames.device)).sum(dim=1)
        # clamp: a zero-length utterance gives a zero vector instead of NaN.
        count = frame_lens.clamp(min=1).to(frames.dtype).unsqueeze(-1)  # [B, 1]
        return total / count
