"""Masked mean pooling: the mean of the real frames, whatever the padding holds."""

from __future__ import annotations

import torch

from serkit.downstream import AGGREGATORS, AggregatorConfig
from serkit.downstream.mean_pool import MeanPooling


def test_registered_under_mean_with_output_dim_of_input():
    pool = AGGREGATORS.get("mean").from_config(AggregatorConfig(name="mean"), input_dim=24)
    assert isinstance(pool, MeanPooling)
    assert pool.output_dim == 24


def test_mean_over_real_frames_only(padded):
    frames, lens = padded([7, 3, 1], dim=5)
    pooled = MeanPooling(5)(frames, lens)
    assert pooled.shape == (3, 5)
    assert torch.isfinite(pooled).all()
    for row, length in enumerate(lens.tolist()):
        torch.testing.assert_close(pooled[row], frames[row, :length].mean(dim=0))


def test_alone_equals_inside_padded_batch(padded):
    frames, lens = padded([9, 4, 6], dim=8, fill=1e6)
    pool = MeanPooling(8)
    batched = pool(frames, lens)
    for row, length in enumerate(lens.tolist()):
        alone = pool(frames[row : row + 1, :length], lens[row : row + 1])
        torch.testing.assert_close(batched[row : row + 1], alone)


def test_zero_length_gives_zeros_not_nan(padded):
    frames, _ = padded([3, 3], dim=4)
    pooled = MeanPooling(4)(frames, torch.tensor([3, 0]))
    assert torch.equal(pooled[1], torch.zeros(4))
