"""Masked statistics pooling: mean and std of the real frames, whatever the padding holds."""

from __future__ import annotations

import torch

from serkit.downstream import AGGREGATORS, AggregatorConfig
from serkit.downstream.stats_pool import StatisticsPooling


def test_registered_under_stats_with_twice_the_input_dim():
    pool = AGGREGATORS.get("stats").from_config(AggregatorConfig(name="stats"), input_dim=24)
    assert isinstance(pool, StatisticsPooling) and pool.output_dim == 48


def test_mean_and_std_over_real_frames_only_and_gradients_stay_finite(padded):
    frames, lens = padded([7, 3, 1], dim=5)  # NaN padding: any read of it shows
    frames.requires_grad_(True)
    pooled = StatisticsPooling(5)(frames, lens)
    assert pooled.shape == (3, 10) and torch.isfinite(pooled).all()
    for row, length in enumerate(lens.tolist()):
        real = frames[row, :length].detach()
        torch.testing.assert_close(pooled[row, :5], real.mean(dim=0))
        torch.testing.assert_close(pooled[row, 5:], real.std(dim=0, unbiased=False).clamp(min=1e-5))
    pooled.sum().backward()
    assert torch.isfinite(frames.grad).all()  # one-frame rows (std 0) included
    assert torch.equal(frames.grad[1, 3:], torch.zeros_like(frames.grad[1, 3:]))  # padding gets no gradient


def test_alone_equals_inside_padded_batch(padded):
    frames, lens = padded([9, 4, 6], dim=8, fill=1e6)
    pool = StatisticsPooling(8)
    batched = pool(frames, lens)
    for row, length in enumerate(lens.tolist()):
        torch.testing.assert_close(batched[row : row + 1], pool(frames[row : row + 1, :length], lens[row : row + 1]))
