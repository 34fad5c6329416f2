"""Augmentation that training can afford on cached features: masks on the frames, mixup of the embeddings.

Both act only while the model trains (`SERModel.training`): validation, test, averaging, bundles and
inference never see them. They work on what the downstream receives (the selected / weighted frames), so a
frozen encoder's cached frames stay cached and every epoch still sees a different view of each utterance.

- FrameMasking: SpecAugment's time and channel masks (Park et al. 2019) applied to encoder frames instead of
  a spectrogram, as wav2vec 2.0 / HuBERT mask their own features during fine-tuning.
- mixup (Zhang et al. 2018) on utterance embeddings: one lambda ~ Beta(alpha, alpha) per batch, every
  embedding mixed with a random partner's, the loss mixed with the same weights.
"""

from __future__ import annotations

import torch

from ..train_config import AugmentConfig


class FrameMasking:
    """frames [B, T, D], frame_lens [B] -> frames with random time spans and channel bands set to 0.

    A plain callable, not an nn.Module: it has no state, and the model's state_dict (and every bundle) stays
    the same with or without it. Randomness comes from torch's global generator, which the run seeds and
    last.ckpt restores, so a resumed fold draws the same masks as an uninterrupted one."""

    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg

    def __call__(self, frames: torch.Tensor, frame_lens: torch.Tensor) -> torch.Tensor:
        batch, max_len, dim = frames.shape
        keep = torch.ones(batch, max_len, dim, dtype=torch.bool, device=frames.device)
        if self.cfg.time_masks and self.cfg.time_mask_width:
            lengths = frame_lens.to(frames.device)
            spans = _spans(lengths, self.cfg.time_masks, self.cfg.time_mask_width, max_len)  # [B, T]
            keep &= ~spans.unsqueeze(-1)
        if self.cfg.channel_masks and self.cfg.channel_mask_width:
            dims = torch.full((batch,), dim, device=frames.device)
            bands = _spans(dims, self.cfg.channel_masks, self.cfg.channel_mask_width, dim)  # [B, D]
            keep &= ~bands.unsqueeze(1)
        return torch.where(keep, frames, torch.zeros((), dtype=frames.dtype, device=frames.device))


def _spans(lengths: torch.Tensor, count: int, width: float, size: int) -> torch.Tensor:
    """-> bool [B, size]: `count` spans per row, each of a width drawn from 0..floor(width * lengths[b])
    and placed inside 0..lengths[b]; True inside a span."""
    lengths = lengths.to(torch.float32).unsqueeze(1)  # [B, 1]
    draws = torch.rand(lengths.shape[0], count, 2, device=lengths.device)  # [B, count, (width, start)]
    widths = (draws[..., 0] * (torch.floor(width * lengths) + 1)).floor()  # [B, count]
    starts = (draws[..., 1] * (lengths - widths + 1)).floor()
    position = torch.arange(size, device=lengths.device).view(1, 1, size)
    inside = (position >= starts.unsqueeze(-1)) & (position < (starts + widths).unsqueeze(-1))  # [B, count, size]
    return inside.any(dim=1)


def mixup(embedding: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """embedding [B, E] -> (mixed [B, E], partner index [B], lambda): mixed = lam * x + (1 - lam) * x[partner]."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    partner = torch.randperm(embedding.shape[0], device=embedding.device)
    return lam * embedding + (1 - lam) * embedding[partner], partner, lam
