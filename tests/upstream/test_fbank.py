"""The torch filterbank upstream against its oracles (kaldi-native-fbank, transformers' numpy Kaldi fbank),
its padding invariance, cmn, autocast, and its ONNX graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import Speech2TextFeatureExtractor

from serkit.data.audio import load_audio
from serkit.upstream import build_upstream
from serkit.upstream.fbank import FbankConfig, FbankUpstream, kaldi_reference, mel_matrix
from serkit_synth.voice import Prosody, Voice, synthesize

# Against kaldi-native-fbank (1.23: float32 throughout, kissfft). We repeat its float32 DC removal,
# pre-emphasis and window; what is left is its float32 FFT against our float64 DFT, which shows in the lowest
# mel bins of some frames (~1e-8 of the frame's energy there). Measured: RAVDESS (48 clips, every actor)
# max 2.5e-3, median clip 2.8e-4, 99th percentile <= 3.1e-5; today's folded-matrix twin was 8.2e-3 / 3.5e-4.
MAX_ATOL = 3e-3
BULK_ATOL = 4e-5  # 99 % of the values


def ours(samples: np.ndarray, upstream: FbankUpstream | None = None) -> np.ndarray:
    out = (upstream or FbankUpstream())(torch.from_numpy(samples)[None], torch.tensor([samples.shape[0]]))
    return out.hidden[0][0].numpy()


def assert_matches_kaldi(samples: np.ndarray) -> None:
    samples = samples.astype(np.float32)
    reference = kaldi_reference(samples)  # [T, 80]
    diff = np.abs(ours(samples) - reference)  # shapes must agree: T is Kaldi's frame count
    assert diff.max() < MAX_ATOL, f"max abs diff {diff.max():.2e} over {len(reference)} frames"
    assert np.percentile(diff, 99) < BULK_ATOL, f"99th percentile of abs diff {np.percentile(diff, 99):.2e}"


@pytest.mark.parametrize("seconds", [0.025, 0.0351, 0.5, 3.3])
def test_matches_kaldi_native_fbank_on_noise(seconds, wave):
    assert_matches_kaldi(wave(seconds, seed=7).numpy())


def test_matches_kaldi_native_fbank_on_a_synthetic_voice_and_silence():
    rng = np.random.default_rng(0)
    voice = synthesize(rng, Voice(f0=210.0, formant_scale=1.15), Prosody(1.2, 0.3, 5.0, -12.0, 0.7, 0.1), 1.5)
    assert_matches_kaldi(np.asarray(voice, dtype=np.float32))
    assert_matches_kaldi(np.zeros(8000, dtype=np.float32))  # every energy at the log floor
    assert np.all(ours(np.zeros(8000, dtype=np.float32)) == np.log(np.finfo(np.float32).eps))


def test_matches_kaldi_native_fbank_on_real_recordings(ravdess_dir):
    for path in sorted(ravdess_dir.glob("Actor_*/*.flac"))[::30]:
        assert_matches_kaldi(load_audio(path))


@pytest.mark.parametrize("seconds", [0.001, 0.024])
def test_a_clip_shorter_than_a_window_is_the_kaldi_window_zero_padded(seconds, wave):
    audio = wave(seconds, seed=7).numpy()  # Kaldi gives no frame for it; we give the zero-padded window's
    padded = np.pad(audio, (0, 400 - audio.shape[0]))
    np.testing.assert_allclose(ours(audio), kaldi_reference(padded), atol=MAX_ATOL, rtol=0)


@pytest.mark.parametrize("seconds", [0.05, 0.73, 2.0])
def test_equals_transformers_kaldi_compatible_fbank(seconds, wave):
    """A second, independent implementation (transformers' numpy Kaldi fbank, without its CMVN)."""
    audio = wave(seconds, seed=1)
    extractor = Speech2TextFeatureExtractor(num_mel_bins=80, do_ceptral_normalize=False)
    reference = extractor(audio.numpy(), sampling_rate=16000, return_tensors="np").input_features[0]
    out = FbankUpstream()(audio[None], torch.tensor([audio.shape[0]]))
    assert out.hidden[0].shape == (1, reference.shape[0], 80)
    np.testing.assert_allclose(out.hidden[0][0].numpy(), reference, atol=MAX_ATOL, rtol=1e-4)


def test_frame_lens_follow_kaldi_snip_edges_and_short_clips_give_one_frame():
    lens = torch.tensor([1, 399, 400, 559, 560, 16000])
    out = FbankUpstream()(torch.randn(len(lens), 16000) * 0.1, lens)
    assert out.frame_lens.tolist() == [1, 1, 1, 1, 2, 98]
    assert out.hidden[0].shape == (6, 98, 80)
    assert FbankUpstream()(torch.zeros(2, 150), torch.tensor([150, 20])).hidden[0].shape == (2, 1, 80)


@pytest.mark.parametrize("cmn", [False, True])
def test_utterance_alone_equals_it_inside_a_padded_batch(cmn, wave, batch, same_real_frames):
    upstream = build_upstream(FbankConfig(cmn=cmn, freeze="all"))
    short, long, tiny = wave(0.41, seed=2), wave(1.2, seed=3), wave(0.01, seed=4)
    wavs, lens = batch([long, short, tiny], extra=999)
    wavs[1, short.shape[0]:] = 0.5  # padding that is not zero must not leak either
    wavs[2, tiny.shape[0]:] = -0.3
    together = upstream(wavs, lens)
    for row, audio in ((1, short), (2, tiny)):
        same_real_frames(together, row, upstream(audio[None], torch.tensor([audio.shape[0]])), atol=1e-5)


def test_cmn_zeroes_the_mean_over_real_frames_only(wave, batch):
    wavs, lens = batch([wave(1.0, seed=4), wave(0.5, seed=5)])
    raw = FbankUpstream(cmn=False)(wavs, lens)
    out = FbankUpstream(cmn=True)(wavs, lens)
    n = int(out.frame_lens[1])
    assert n < out.hidden[0].shape[1]
    torch.testing.assert_close(out.hidden[0][1, :n].mean(0), torch.zeros(80), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.hidden[0][1, :n], raw.hidden[0][1, :n] - raw.hidden[0][1, :n].mean(0))


def test_autocast_does_not_lower_its_precision(wave):
    """bf16-mixed training (the default on GPUs) must see the same features as float32 inference."""
    audio = wave(1.0, seed=6)
    upstream = FbankUpstream()
    plain = upstream(audio[None], torch.tensor([audio.shape[0]])).hidden[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = upstream(audio[None], torch.tensor([audio.shape[0]])).hidden[0]
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, plain, atol=1e-6, rtol=0)


def test_describes_itself_and_has_nothing_to_train():
    upstream = build_upstream(FbankConfig(freeze="cnn"))
    assert (upstream.num_layers, upstream.hidden_size, upstream.frame_rate) == (1, 80, 100.0)
    assert list(upstream.parameters()) == [] and upstream.state_dict() == {}
    assert upstream.exportable("model.upstreams[0]") is upstream and upstream.padding_invariant


def test_mel_banks_are_kaldi_triangles():
    banks = mel_matrix()
    assert banks.shape == (257, 80) and banks.dtype == np.float32
    assert np.all(banks >= 0) and np.all(banks <= 1) and not banks[-1].any()  # Kaldi skips the Nyquist bin
    peaks = banks.argmax(axis=0)
    assert np.all(np.diff(peaks) >= 0) and peaks[0] > 0  # ordered by frequency; nothing at DC (low_freq 20 Hz)
    assert np.all(banks.sum(axis=0) > 0)  # every bank sees at least one FFT bin


@pytest.mark.parametrize("cmn", [False, True])
def test_its_onnx_graph_computes_the_same_features_at_other_lengths(cmn, wave, batch, tmp_path):
    """Traced on one batch, run on others of different widths (one shorter than a window): no shape was frozen."""
    onnxruntime = pytest.importorskip("onnxruntime")  # the `export` extra

    class Features(torch.nn.Module):  # the graph's outputs must be tensors
        def __init__(self):
            super().__init__()
            self.fbank = FbankUpstream(cmn=cmn).exportable("upstream")

        def forward(self, wavs, wav_lens):
            hidden, frame_lens = self.fbank(wavs, wav_lens)
            return hidden[0], frame_lens

    model = Features().eval()
    example = batch([wave(1.5, seed=1), wave(0.9, seed=2)])
    path = tmp_path / "fbank.onnx"
    batch_dim, samples_dim = torch.export.Dim("batch"), torch.export.Dim("samples", min=1)
    torch.onnx.export(model, example, path, dynamo=True, input_names=["wavs", "wav_lens"],
                      dynamic_shapes=({0: batch_dim, 1: samples_dim}, {0: batch_dim}))
    session = onnxruntime.InferenceSession(str(path))
    for waves in ([wave(0.7, seed=3), wave(0.02, seed=4), wave(0.3, seed=5)], [wave(0.01, seed=6)]):
        wavs, lens = batch(waves, extra=37)
        feats, frame_lens = session.run(None, {"wavs": wavs.numpy(), "wav_lens": lens.numpy()})
        expected = model(wavs, lens)
        assert frame_lens.tolist() == expected[1].tolist() and feats.shape == tuple(expected[0].shape)
        for row, n in enumerate(frame_lens.tolist()):
            np.testing.assert_allclose(feats[row, :n], expected[0][row, :n].numpy(), atol=1e-4, rtol=0)


def test_a_cast_to_bfloat16_moves_the_constants_but_never_rounds_them():
    """Lightning's "bf16-true" casts the module: the features must stay those of the float32 module."""
    wavs = torch.randn(2, 16000, generator=torch.Generator().manual_seed(0)) * 0.1
    expected = FbankUpstream().log_mel(wavs)
    cast = FbankUpstream().to(torch.bfloat16)
    assert (cast.window.dtype, cast.dft.dtype, cast.mel.dtype) == (torch.float32, torch.float64, torch.float64)
    assert torch.equal(cast.log_mel(wavs), expected)
