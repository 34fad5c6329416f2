"""ECAPA-TDNN: the paper's architecture (parameter count derived by hand), and padding never moves the embedding."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from serkit.downstream import AGGREGATORS
from serkit.downstream.ecapa import ECAPATDNN, EcapaConfig
from serkit.downstream.ecapa_blocks import (
    AttentiveStatisticsPooling,
    MaskedBatchNorm1d,
    masked_mean_std,
    weighted_mean_std,
)
from serkit.errors import ConfigError

# Small sizes for behaviour tests: Res2Net groups of 8 channels, every block present.
TINY = EcapaConfig(channels=32, mfa_channels=48, embedding_dim=16, res2net_scale=4, se_channels=8, attention_channels=8
)


def _padded(lengths: list[int], dim: int, fill: float = float("nan"), extra: int = 0, seed: int = 0):
    """frames [B, max_len + extra, dim] with `fill` in the padding, frame_lens [B]."""
    generator = torch.Generator().manual_seed(seed)
    frames = torch.randn(len(lengths), max(lengths) + extra, dim, generator=generator)
    for row, length in enumerate(lengths):
        frames[row, length:] = fill
    return frames, torch.tensor(lengths)


def _tiny_ecapa(input_dim: int = 20, **overrides) -> ECAPATDNN:
    torch.manual_seed(0)
    cfg = EcapaConfig(**{**TINY.__dict__, **overrides})
    model = AGGREGATORS.get("ecapa").from_config(cfg, input_dim)
    _randomise_norm_stats(model)
    return model


def _randomise_norm_stats(model: nn.Module) -> None:
    """Non-trivial BN affine and running statistics, so eval mode exercises them (fresh ones are 0 / 1)."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm1d):
            size = module.num_features
            module.weight.data = 1 + 0.2 * torch.randn(size, generator=generator)
            module.bias.data = 0.2 * torch.randn(size, generator=generator)
            module.running_mean = 0.1 * torch.randn(size, generator=generator)
            module.running_var = 0.5 + torch.rand(size, generator=generator)


# --- parameter count and shape at the paper's sizes ---------------------------------------------------------


def paper_parameter_count(input_dim: int) -> int:
    """Parameters of ECAPA-TDNN (C=512) from the paper's Figure 2 / Section 3, counted by hand.

    conv(in, out, k) = in*out*k weights + out biases; BN(n) = 2n (gamma, beta; running stats are buffers).
    """
    C, scale, se, mfa, att, emb = 512, 8, 128, 1536, 128, 192
    width = C // scale  # 64 channels per Res2Net group

    # Conv1D + ReLU + BN, k=5: 80 (or D) -> C
    first = (input_dim * C * 5 + C) + 2 * C

    # SE-Res2Block (k=3): Conv1D+ReLU+BN k=1 (C->C); Res2 dilated Conv1D+ReLU+BN, one per group but the first
    # (scale-1 convs width->width, k=3); Conv1D+ReLU+BN k=1 (C->C); SE: 1x1 C->128 and 1x1 128->C, with biases.
    tdnn_1x1 = (C * C * 1 + C) + 2 * C  # 262,656 + 1,024
    res2net = (scale - 1) * ((width * width * 3 + width) + 2 * width)  # 7 * (12,288 + 64 + 128) = 87,360
    se_block = (C * se + se) + (se * C + C)  # 65,664 + 66,048 = 131,712
    se_res2block = tdnn_1x1 + res2net + tdnn_1x1 + se_block  # 746,432
    blocks = 3 * se_res2block  # 2,239,296

    # Multi-layer feature aggregation: concat 3 blocks (3C) -> Conv1D + ReLU k=1 -> 1536.
    aggregation = 3 * C * mfa + mfa  # 2,360,832

    # Attentive statistics pooling, global context: [h; mean; std] (3 * 1536) -> 1x1 (+ReLU+BN) 128 -> tanh
    # -> 1x1 128 -> 1536 (one score per channel and frame); then BN over [mean; std] (3072).
    attention = (3 * mfa * att + att) + 2 * att + (att * mfa + mfa)  # 589,952 + 256 + 198,144
    pooling_bn = 2 * (2 * mfa)  # 6,144

    # FC + BN: 3072 -> 192.
    embedding = (2 * mfa * emb + emb) + 2 * emb  # 590,016 + 384

    return first + blocks + aggregation + attention + pooling_bn + embedding


@pytest.mark.parametrize("input_dim", [80, 768])
def test_parameter_count_and_shape_match_the_paper(input_dim):
    torch.manual_seed(0)
    model = AGGREGATORS.get("ecapa").from_config(EcapaConfig(), input_dim)
    counted = sum(p.numel() for p in model.parameters())
    expected = paper_parameter_count(input_dim)
    print(f"ECAPA-TDNN C=512, input {input_dim}: {counted:,} parameters (derived {expected:,})")
    assert counted == expected
    if input_dim == 80:
        assert expected == 6_191_360  # the paper's "6.2M" for C=512
    model.eval()
    frames, lens = _padded([10, 6], input_dim)
    embedding = model(frames, lens)
    assert model.output_dim == 192
    assert embedding.shape == (2, 192)
    assert torch.isfinite(embedding).all()


def test_without_global_context_the_attention_sees_frames_only():
    with_context = sum(p.numel() for p in _tiny_ecapa().parameters())
    without = sum(p.numel() for p in _tiny_ecapa(global_context=False).parameters())
    assert with_context - without == 2 * TINY.mfa_channels * TINY.attention_channels  # [mean; std] inputs gone


@pytest.mark.parametrize(
    "overrides, key",
    [({"channels": 30, "res2net_scale": 4}, "res2net_scale"), ({"dilations": [1, 2]}, "dilations")],
)
def test_bad_sizes_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key):
        _tiny_ecapa(**overrides)


# --- padding invariance ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("global_context", [True, False])
def test_alone_equals_inside_padded_batch_eval(global_context):
    model = _tiny_ecapa(global_context=global_context).eval()
    frames, lens = _padded([23, 9, 1, 14], dim=20, extra=3)
    with torch.no_grad():
        batched = model(frames, lens)
        assert batched.shape == (4, TINY.embedding_dim)
        assert torch.isfinite(batched).all()  # NaN padding never read
        for row, length in enumerate(lens.tolist()):
            alone = model(frames[row : row + 1, :length], lens[row : row + 1])
            torch.testing.assert_close(batched[row : row + 1], alone, rtol=1e-4, atol=1e-5)


def test_padding_content_and_amount_do_not_matter_in_training():
    """Train mode: every BN takes batch statistics; masked, they see the same real frames whatever the padding."""
    model = _tiny_ecapa().train()
    lengths = [17, 5, 11]
    short_pad, lens = _padded(lengths, dim=20, fill=0.0)
    long_pad = torch.cat([short_pad, torch.zeros(3, 9, 20)], dim=1)
    long_pad[torch.arange(long_pad.shape[1])[None, :] >= lens[:, None]] = 1e3
    torch.testing.assert_close(model(short_pad, lens), model(long_pad, lens), rtol=1e-4, atol=1e-5)


def test_training_batch_of_one_and_gradients_reach_every_parameter():
    model = _tiny_ecapa().train()
    frames, lens = _padded([12], dim=20)
    assert model(frames, lens).shape == (1, TINY.embedding_dim)  # a last batch of one utterance trains
    frames, lens = _padded([12, 7, 9], dim=20)
    model(frames, lens).square().sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


# --- masked statistics equal the statistics of the cropped input ----------------------------------------------


def test_masked_mean_std_equal_cropped_statistics():
    frames, lens = _padded([8, 3, 5], dim=6, fill=0.0)
    x = frames.transpose(1, 2)  # [B, C, T]
    mask = (torch.arange(x.shape[2])[None, :] < lens[:, None]).float().unsqueeze(1)
    mean, std = masked_mean_std(x, mask)
    for row, length in enumerate(lens.tolist()):
        cropped = x[row, :, :length]
        torch.testing.assert_close(mean[row], cropped.mean(dim=1))
        torch.testing.assert_close(std[row], cropped.std(dim=1, unbiased=False))


def test_weighted_mean_std_formula():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7)
    weights = torch.softmax(torch.randn(2, 3, 7), dim=2)
    mean, std = weighted_mean_std(x, weights)
    expected_mean = (weights * x).sum(2)
    expected_var = (weights * x * x).sum(2) - expected_mean**2  # the paper's eq. 9, uncentred form
    torch.testing.assert_close(mean, expected_mean)
    torch.testing.assert_close(std, expected_var.sqrt())


@pytest.mark.parametrize("training", [False, True])
def test_attentive_statistics_pooling_padded_equals_cropped(training):
    torch.manual_seed(0)
    pooling = AttentiveStatisticsPooling(channels=6, attention_channels=4, global_context=True)
    _randomise_norm_stats(pooling)
    pooling.train(training)
    lengths = [9, 4, 6]
    frames, lens = _padded(lengths, dim=6, fill=0.0, extra=2)
    x = frames.transpose(1, 2)  # [B, C, T]
    mask = (torch.arange(x.shape[2])[None, :] < lens[:, None]).float().unsqueeze(1)
    padded = pooling(x, mask)
    assert padded.shape == (3, 12)
    if training:
        # batch statistics: the same real frames with no padding at all (cropped to the longest) and other padding
        cropped = x[:, :, : max(lengths)].clone()
        cropped_mask = mask[:, :, : max(lengths)]
        cropped[cropped_mask.expand_as(cropped) == 0] = -50.0
        torch.testing.assert_close(padded, pooling(cropped, cropped_mask))
    else:
        for row, length in enumerate(lengths):
            alone = pooling(x[row : row + 1, :, :length], mask[row : row + 1, :, :length])
            torch.testing.assert_close(padded[row : row + 1], alone)


def test_masked_batchnorm_train_equals_batchnorm_over_real_frames_only():
    torch.manual_seed(0)
    masked, reference = MaskedBatchNorm1d(6), nn.BatchNorm1d(6)
    _randomise_norm_stats(masked)
    reference.load_state_dict(masked.state_dict())
    lengths = [10, 4, 7]
    frames, lens = _padded(lengths, dim=6, fill=100.0)
    x = frames.transpose(1, 2)  # [B, C, T]
    mask = (torch.arange(x.shape[2])[None, :] < lens[:, None]).float().unsqueeze(1)
    real_frames = torch.cat([x[row, :, :length] for row, length in enumerate(lengths)], dim=1).unsqueeze(0)

    out = masked.train()(x, mask)
    expected = reference.train()(real_frames)[0]
    got = torch.cat([out[row, :, :length] for row, length in enumerate(lengths)], dim=1)
    torch.testing.assert_close(got, expected)
    # the running statistics moved exactly as torch's BN moves them on the real frames
    torch.testing.assert_close(masked.running_mean, reference.running_mean)
    torch.testing.assert_close(masked.running_var, reference.running_var)
    assert int(masked.num_batches_tracked) == int(reference.num_batches_tracked) == 1
    # eval: torch's BN with running statistics, frame by frame
    torch.testing.assert_close(masked.eval()(x, mask), reference.eval()(x))


def test_masked_batchnorm_on_pooled_vectors():
    torch.manual_seed(0)
    masked, reference = MaskedBatchNorm1d(5), nn.BatchNorm1d(5)
    _randomise_norm_stats(masked)
    reference.load_state_dict(masked.state_dict())
    vectors = torch.randn(4, 5)
    torch.testing.assert_close(masked.train()(vectors), reference.train()(vectors))
    torch.testing.assert_close(masked.running_var, reference.running_var)
    # one vector in training: torch raises; we normalise with the running statistics and leave them alone
    before = masked.running_mean.clone()
    single = masked(vectors[:1])
    torch.testing.assert_close(single, reference.eval()(vectors[:1]))
    assert torch.equal(masked.running_mean, before)
