"""Fusion: frame-rate alignment + frame concat (early), embedding concat (late); padding never leaks."""

from __future__ import annotations

import pytest
import torch

from serkit.downstream import AGGREGATORS, AggregatorConfig
from serkit.downstream.ecapa import EcapaConfig
from serkit.errors import ConfigError
from serkit.fusion import EarlyFusion, LateFusion, SingleStream, resample_frames

NAN = float("nan")
TINY_ECAPA = EcapaConfig(channels=32, mfa_channels=48, embedding_dim=16, res2net_scale=4, se_channels=8, attention_channels=8
)


def _frames(lengths: list[int], dim: int, seed: int, fill: float = NAN, steps: int | None = None):
    """frames [B, steps or max len, dim] with `fill` (NaN by default: a read shows) on padding; frame_lens [B]."""
    generator = torch.Generator().manual_seed(seed)
    frames = torch.randn(len(lengths), steps or max(lengths), dim, generator=generator)
    for row, length in enumerate(lengths):
        frames[row, length:] = fill
    return frames, torch.tensor(lengths)


def _mean(dim: int):
    return AGGREGATORS.get("mean").from_config(AggregatorConfig(name="mean"), dim)


def _fbank_frames(samples: int) -> int:  # Kaldi snip_edges, 25 ms window, 10 ms hop
    return (samples - 400) // 160 + 1


def _wav2vec2_frames(samples: int) -> int:  # wav2vec2's conv stack (kernel, stride) per layer
    for kernel, stride in zip((10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2)):
        samples = (samples - kernel) // stride + 1
    return samples


def _reference_resample(frames: torch.Tensor, length: int, source_rate: float, target_rate: float) -> torch.Tensor:
    """One utterance's real frames [length, D], resampled by the rule written out frame by frame."""
    if target_rate < source_rate:  # average the source frames that fall in each target frame
        bins: dict[int, list[torch.Tensor]] = {}
        for i in range(length):
            bins.setdefault(int(i * target_rate / source_rate + 1e-9), []).append(frames[i])
        return torch.stack([torch.stack(bins[j]).mean(0) for j in sorted(bins)])
    out_len = -(-length * int(target_rate) // int(source_rate))
    return torch.stack([frames[int(j * source_rate / target_rate + 1e-9)] for j in range(out_len)])


@pytest.mark.parametrize("source_rate, target_rate", [(100, 50), (75, 50), (100, 30), (50, 100), (50, 50)])
def test_resample_follows_the_rule_on_real_frames_only(source_rate, target_rate):
    lengths = [11, 6, 1]
    frames, lens = _frames(lengths, dim=4, seed=0)
    out, out_lens = resample_frames(frames, lens, source_rate, target_rate)
    for row, length in enumerate(lengths):
        expected = _reference_resample(frames[row], length, source_rate, target_rate)
        assert int(out_lens[row]) == expected.shape[0]
        torch.testing.assert_close(out[row, : expected.shape[0]], expected)
        if source_rate != target_rate:
            assert torch.equal(out[row, expected.shape[0] :], torch.zeros_like(out[row, expected.shape[0] :]))


def test_100hz_to_50hz_averages_consecutive_pairs():
    frames, lens = _frames([5], dim=3, seed=1)
    out, out_lens = resample_frames(frames, lens, 100.0, 50.0)
    assert out_lens.tolist() == [3]  # frames (0,1), (2,3), (4): the last target frame holds one real frame
    torch.testing.assert_close(out[0, 0], (frames[0, 0] + frames[0, 1]) / 2)
    torch.testing.assert_close(out[0, 2], frames[0, 4])


def test_early_fusion_of_fbank_100hz_and_wav2vec2_50hz():
    samples = [16000, 12345, 8000, 4321]
    fbank_lens = [_fbank_frames(s) for s in samples]
    w2v2_lens = [_wav2vec2_frames(s) for s in samples]
    fbank, fbank_lens_t = _frames(fbank_lens, dim=80, seed=2)
    w2v2, w2v2_lens_t = _frames(w2v2_lens, dim=32, seed=3)

    fusion = EarlyFusion(frame_rates=[100.0, 50.0], aggregator=_mean(112))
    assert fusion.target_rate == 50.0 and fusion.output_dim == 112 and fusion.resamples
    streams = [(fbank, fbank_lens_t), (w2v2, w2v2_lens_t)]
    fused, fused_lens = fusion.concat(streams)
    torch.testing.assert_close(fusion(streams), fusion.aggregator(fused, fused_lens))  # streams in, embedding out

    expected_lens = [min(-(-f // 2), w) for f, w in zip(fbank_lens, w2v2_lens)]
    assert fused_lens.tolist() == expected_lens
    assert fused.shape == (4, max(expected_lens), 112)
    for row, length in enumerate(expected_lens):
        fbank_50 = _reference_resample(fbank[row], fbank_lens[row], 100, 50)[:length]
        torch.testing.assert_close(fused[row, :length, :80], fbank_50)
        torch.testing.assert_close(fused[row, :length, 80:], w2v2[row, :length])
        assert torch.equal(fused[row, length:], torch.zeros_like(fused[row, length:]))


def test_same_rate_streams_are_cropped_to_the_shorter_per_utterance():
    """Exp. 7 (HuBERT + wav2vec2, both 50 Hz): one stream may be a frame longer; lengths must agree exactly."""
    hubert, hubert_lens = _frames([20, 13, 7], dim=8, seed=4)
    w2v2, w2v2_lens = _frames([19, 13, 8], dim=6, seed=5, steps=21)
    fusion = EarlyFusion([50.0, 50.0], _mean(14))
    fused, fused_lens = fusion.concat([(hubert, hubert_lens), (w2v2, w2v2_lens)])
    assert not fusion.resamples
    assert fused_lens.tolist() == [19, 13, 7]
    assert fused.shape == (3, 20, 14)  # T: the shorter tensor's (a shape from shapes, as ONNX export needs)
    torch.testing.assert_close(fused[0, :19, :8], hubert[0, :19])
    assert torch.equal(fused[0, 19:], torch.zeros(1, 14)) and torch.equal(fused[2, 7:], torch.zeros(13, 14))
    assert torch.isfinite(fused).all()


def test_target_rate_can_be_chosen():
    fbank, fbank_lens = _frames([10, 4], dim=5, seed=6)
    w2v2, w2v2_lens = _frames([5, 2], dim=3, seed=7)
    fusion = EarlyFusion([100.0, 50.0], _mean(8), target_rate=100.0)
    fused, fused_lens = fusion.concat([(fbank, fbank_lens), (w2v2, w2v2_lens)])
    assert fused_lens.tolist() == [10, 4]
    torch.testing.assert_close(fused[0, 3, 5:], w2v2[0, 1])  # 50 Hz frame 1 repeated at 100 Hz frames 2 and 3


@pytest.mark.parametrize("aggregator", ["mean", "ecapa"])
def test_early_fusion_alone_equals_inside_padded_batch(aggregator):
    torch.manual_seed(0)
    cfg = TINY_ECAPA if aggregator == "ecapa" else AggregatorConfig(name="mean")
    fusion = EarlyFusion([100.0, 50.0], AGGREGATORS.get(aggregator).from_config(cfg, 10 + 6)).eval()
    fast_lens, slow_lens = [30, 11, 17], [15, 6, 8]
    fast, fast_lens_t = _frames(fast_lens, dim=10, seed=8)
    slow, slow_lens_t = _frames(slow_lens, dim=6, seed=9)
    with torch.no_grad():
        batched = fusion([(fast, fast_lens_t), (slow, slow_lens_t)])
        for row in range(3):
            alone_streams = [
                (fast[row : row + 1, : fast_lens[row]], fast_lens_t[row : row + 1]),
                (slow[row : row + 1, : slow_lens[row]], slow_lens_t[row : row + 1]),
            ]
            alone = fusion(alone_streams)
            torch.testing.assert_close(batched[row : row + 1], alone, rtol=1e-4, atol=1e-5)


def test_early_fusion_refuses_a_text_stream():
    with pytest.raises(ConfigError, match=r"model\.upstreams\[1\].*late"):
        EarlyFusion(frame_rates=[50.0, 0.0], aggregator=_mean(56))


def test_late_fusion_of_speech_and_text():
    """Exp. 11: fbank -> ECAPA-TDNN and text tokens (no frame rate) -> mean pooling, embeddings concatenated."""
    torch.manual_seed(0)
    speech_head = AGGREGATORS.get("ecapa").from_config(TINY_ECAPA, 80)
    text_head = AGGREGATORS.get("mean").from_config(AggregatorConfig(name="mean"), 24)
    fusion = LateFusion([speech_head, text_head]).eval()
    assert fusion.output_dim == 16 + 24
    speech_lens, token_lens = [40, 25, 9], [7, 12, 3]
    speech, speech_lens_t = _frames(speech_lens, dim=80, seed=10)
    tokens, token_lens_t = _frames(token_lens, dim=24, seed=11)
    with torch.no_grad():
        embedding = fusion([(speech, speech_lens_t), (tokens, token_lens_t)])
        assert embedding.shape == (3, 40)
        torch.testing.assert_close(embedding[:, :16], speech_head(speech, speech_lens_t))
        torch.testing.assert_close(embedding[:, 16:], text_head(tokens, token_lens_t))
        for row in range(3):
            alone = fusion(
                [
                    (speech[row : row + 1, : speech_lens[row]], speech_lens_t[row : row + 1]),
                    (tokens[row : row + 1, : token_lens[row]], token_lens_t[row : row + 1]),
                ]
            )
            torch.testing.assert_close(embedding[row : row + 1], alone, rtol=1e-4, atol=1e-5)


def test_single_stream_is_its_aggregator_on_the_one_stream():
    torch.manual_seed(0)
    head = AGGREGATORS.get("ecapa").from_config(TINY_ECAPA, 12).eval()
    fusion = SingleStream(head)
    frames, lens = _frames([9, 4], dim=12, seed=12, fill=0.0)
    with torch.no_grad():
        torch.testing.assert_close(fusion([(frames, lens)]), head(frames, lens))
    assert fusion.output_dim == 16
    with pytest.raises(ValueError, match="2 streams for 1"):
        fusion([(frames, lens), (frames, lens)])
