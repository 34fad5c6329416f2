import numpy as np
import pytest
import torch
from transformers import Speech2TextFeatureExtractor

from serkit.upstream import UpstreamConfig, build_upstream
from serkit.upstream.fbank import FbankUpstream


def reference_fbank(audio: torch.Tensor) -> np.ndarray:
    """transformers' own Kaldi-compatible numpy filterbank (no torchaudio here), without its CMVN."""
    extractor = Speech2TextFeatureExtractor(num_mel_bins=80, do_ceptral_normalize=False)
    return extractor(audio.numpy(), sampling_rate=16000, return_tensors="np").input_features[0]


@pytest.mark.parametrize("seconds", [0.05, 0.73, 2.0])
def test_equals_transformers_kaldi_compatible_fbank(seconds, wave):
    audio = wave(seconds, seed=1)
    out = FbankUpstream()(audio[None], torch.tensor([audio.shape[0]]))
    reference = reference_fbank(audio)
    assert out.hidden[0].shape == (1, reference.shape[0], 80)
    np.testing.assert_allclose(out.hidden[0][0].numpy(), reference, atol=1e-3, rtol=1e-4)


def test_frame_lens_follow_kaldi_snip_edges_and_short_clips_give_one_frame():
    lens = torch.tensor([1, 399, 400, 559, 560, 16000])
    out = FbankUpstream()(torch.randn(len(lens), 16000) * 0.1, lens)
    assert out.frame_lens.tolist() == [1, 1, 1, 1, 2, 98]
    assert out.hidden[0].shape == (6, 98, 80)


@pytest.mark.parametrize("cmn", [False, True])
def test_utterance_alone_equals_it_inside_a_padded_batch(cmn, wave, batch, same_real_frames):
    upstream = build_upstream(UpstreamConfig(name="fbank", cmn=cmn, freeze="all"))
    short, long = wave(0.41, seed=2), wave(1.2, seed=3)
    wavs, lens = batch([long, short], extra=999)
    together = upstream(wavs, lens)
    alone = upstream(short[None], torch.tensor([short.shape[0]]))
    same_real_frames(together, 1, alone, atol=1e-5)


def test_cmn_zeroes_the_mean_over_real_frames_only(wave, batch):
    wavs, lens = batch([wave(1.0, seed=4), wave(0.5, seed=5)])
    raw = FbankUpstream(cmn=False)(wavs, lens)
    out = FbankUpstream(cmn=True)(wavs, lens)
    n = int(out.frame_lens[1])
    assert n < out.hidden[0].shape[1]
    torch.testing.assert_close(out.hidden[0][1, :n].mean(0), torch.zeros(80), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.hidden[0][1, :n], raw.hidden[0][1, :n] - raw.hidden[0][1, :n].mean(0))


def test_describes_itself_and_has_nothing_to_train():
    upstream = build_upstream(UpstreamConfig(name="fbank", freeze="cnn"))
    assert (upstream.num_layers, upstream.hidden_size, upstream.frame_rate) == (1, 80, 100.0)
    assert list(upstream.parameters()) == []
