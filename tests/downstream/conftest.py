"""Shared by the pooling tests: frames whose padding holds a value that shows any read of it."""

from __future__ import annotations

import pytest
import torch


def padded_frames(lengths: list[int], dim: int, fill: float = float("nan")) -> tuple[torch.Tensor, torch.Tensor]:
    """Random frames [B, max_len, dim] whose padding holds `fill` (NaN: any read of padding shows), frame_lens [B]."""
    generator = torch.Generator().manual_seed(0)
    frames = torch.randn(len(lengths), max(lengths), dim, generator=generator)
    for row, length in enumerate(lengths):
        frames[row, length:] = fill
    return frames, torch.tensor(lengths)


@pytest.fixture
def padded():
    return padded_frames
