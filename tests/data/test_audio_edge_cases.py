"""Hostile and unusual audio inputs: each is either handled (resampled, mixed, clipped, padded downstream) or
refused with an AudioError that names the file and the reason. Training (UtteranceDataset), `serkit data
--check` and the model-facing helpers all decode through serkit.data.audio, so these cases hold for all."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
import torch

from serkit.data.audio import conform_samples, load_audio, read_frames
from serkit.data.dataset import UtteranceDataset
from serkit.data.utterance import Utterance
from serkit.errors import AudioError
from serkit.upstream.fbank import FbankConfig
from serkit.upstream.hf import HFConfig

SR = 16000


def tone(seconds: float = 0.5, sr: int = SR, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(wav: np.ndarray, sr: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    return float(np.fft.rfftfreq(len(wav), 1 / sr)[spectrum.argmax()])


def refused(path, match: str, **kwargs) -> AudioError:
    with pytest.raises(AudioError, match=match) as info:
        load_audio(path, **kwargs)
    assert str(path) in str(info.value), "the error must name the file"
    return info.value


def good_wav_bytes(seconds: float = 0.5) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, tone(seconds), SR, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------- refused files

REFUSED_BYTES = {
    "empty_file.wav": (lambda: b"", "cannot decode audio"),
    "text_named_wav.wav": (lambda: b"label,path\nneu,a.wav\n" * 30, "cannot decode audio"),
    "png_named_flac.flac": (lambda: b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "cannot decode audio"),
    "random_bytes.wav": (lambda: np.random.default_rng(0).bytes(4096), "cannot decode audio"),
    "header_cut_mid_fmt.wav": (lambda: good_wav_bytes()[:20], "cannot decode audio"),
    "header_only.wav": (lambda: good_wav_bytes()[:44], "no audio samples"),
}


@pytest.mark.parametrize("name", sorted(REFUSED_BYTES))
def test_undecodable_files_are_refused(tmp_path, name):
    make, match = REFUSED_BYTES[name]
    path = tmp_path / name
    path.write_bytes(make())
    refused(path, match)


def test_zero_samples(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0, np.float32), SR)
    refused(path, "no audio samples")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
def test_nan_and_inf_samples_are_refused(tmp_path, bad, subtype):
    samples = tone(0.1)
    samples[100] = bad
    path = tmp_path / f"bad_{subtype}.wav"
    sf.write(path, samples, SR, subtype=subtype)
    refused(path, "NaN or infinite")


def test_nan_in_one_channel_of_many_is_refused(tmp_path):
    samples = np.tile(tone(0.1)[:, None], (1, 4))
    samples[50, 3] = np.nan  # the mean would spread it; it must be caught before mixing
    path = tmp_path / "nan_channel.wav"
    sf.write(path, samples, SR, subtype="FLOAT")
    refused(path, "NaN or infinite")


def test_truncated_flac_is_refused(tmp_path):
    path = tmp_path / "cut.flac"
    sf.write(path, tone(2.0), SR)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    refused(path, "cannot decode audio")


def test_truncated_mp3_is_refused(tmp_path):
    full = tmp_path / "full.mp3"
    sf.write(full, tone(2.0), SR)
    path = tmp_path / "cut.mp3"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    error = refused(path, "truncated")
    assert "2.000 s" in str(error)  # what the header promised


def test_too_short_to_leave_one_sample_at_16k(tmp_path):
    path = tmp_path / "one_sample_96k.wav"
    sf.write(path, np.full(1, 0.1, np.float32), 96000, subtype="FLOAT")
    refused(path, "too short")


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_missing_file_or_directory(tmp_path, kind):
    path = tmp_path / "a.wav"
    if kind == "directory":
        path.mkdir()
        refused(path, "not a file")
    else:
        refused(path, "not found")


def test_unusable_path_is_refused_not_crashed(tmp_path):
    path = tmp_path / ("x" * 300 + ".wav")  # longer than a file name may be
    refused(path, "not a usable path")


def test_training_refuses_the_same_way(tmp_path):
    """UtteranceDataset (training and evaluation) decodes through load_audio: same error, same file."""
    path = tmp_path / "fake.wav"
    path.write_text("not audio")
    utt = Utterance(id="u1", path=str(path), label="neu", speaker="s", group="1", duration=1.0)
    with pytest.raises(AudioError, match="cannot decode audio") as info:
        UtteranceDataset([utt], ["neu"])[0]
    assert str(path) in str(info.value)


# ------------------------------------------------------------------------------------------ handled files


@pytest.mark.parametrize(
    ("subtype", "tolerance"),
    [("PCM_U8", 1 / 64), ("PCM_16", 1e-4), ("PCM_24", 1e-6), ("PCM_32", 1e-6), ("FLOAT", 0), ("DOUBLE", 1e-7),
     ("ULAW", 0.05), ("ALAW", 0.05)],
)
def test_sample_formats_decode_to_the_same_float_signal(tmp_path, subtype, tolerance):
    original = tone(0.25)
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, original, SR, subtype=subtype)
    wav = load_audio(path)
    assert wav.dtype == np.float32 and wav.shape == original.shape
    np.testing.assert_allclose(wav, original, atol=tolerance)


@pytest.mark.parametrize("sr", [7999, 8000, 11025, 22050, 44100, 48000, 96000])
def test_odd_sample_rates_are_resampled_to_16k(tmp_path, sr):
    path = tmp_path / f"rate_{sr}.wav"
    sf.write(path, tone(1.0, sr, freq=440.0), sr, subtype="PCM_16")
    wav = load_audio(path)
    assert abs(len(wav) - SR) <= 1
    assert peak_frequency(wav) == pytest.approx(440.0, abs=2.0)


def test_six_channels_are_mixed_by_their_mean(tmp_path):
    rng = np.random.default_rng(1)
    channels = rng.uniform(-0.5, 0.5, (1600, 6)).astype(np.float32)
    path = tmp_path / "surround.wav"
    sf.write(path, channels, SR, subtype="FLOAT")
    wav = load_audio(path)
    assert wav.shape == (1600,)
    np.testing.assert_allclose(wav, channels.mean(axis=1), atol=1e-6)


def test_clipped_pcm_is_loaded_as_is(tmp_path):
    clipped = np.clip(tone(0.25, amplitude=3.0), -1, 1)  # a recording that hit full scale
    path = tmp_path / "clipped.wav"
    sf.write(path, clipped, SR, subtype="PCM_16")
    wav = load_audio(path)
    np.testing.assert_allclose(wav, clipped, atol=1e-4)
    assert wav.max() == pytest.approx(1.0, abs=1e-4) and wav.min() == pytest.approx(-1.0, abs=1e-4)


def test_float_beyond_full_scale_is_clipped_pointwise(tmp_path):
    loud = tone(0.25, amplitude=40.0)
    loud[10] = 1e30  # a value that would overflow the filterbank's power spectrum
    path = tmp_path / "loud.wav"
    sf.write(path, loud, SR, subtype="FLOAT")
    wav = load_audio(path)
    np.testing.assert_array_equal(wav, np.clip(loud, -1, 1))
    # pointwise: a segment gets exactly the samples the whole file has there
    np.testing.assert_array_equal(load_audio(path, start=0.1, end=0.2), wav[1600:3200])


def test_truncated_wav_gives_the_samples_that_are_there(tmp_path):
    """libsndfile sizes a WAV's data chunk by the bytes present, so a cut file is a shorter, valid file."""
    original = tone(1.0)
    path = tmp_path / "cut.wav"
    sf.write(path, original, SR, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[: 44 + 2 * 6000 + 1])  # 6000 whole samples and half of the next
    wav = load_audio(path)
    assert len(wav) == 6000
    np.testing.assert_allclose(wav, original[:6000], atol=1e-4)


def test_garbage_after_a_valid_header_decodes_as_noise(tmp_path):
    """Corruption inside PCM data cannot be told from sound: it decodes (finite, in range), as any player would."""
    path = tmp_path / "noisy.wav"
    path.write_bytes(good_wav_bytes()[:44] + np.random.default_rng(0).bytes(3200))
    wav = load_audio(path)
    assert len(wav) == 1600 and np.isfinite(wav).all() and np.abs(wav).max() <= 1.0


@pytest.mark.parametrize("samples", [1, 100, 399])
def test_shorter_than_the_receptive_field_is_padded_by_the_upstreams(tmp_path, samples):
    """load_audio keeps the few samples; fbank and wav2vec2 pad up to their 400-sample window: one frame."""
    from serkit.upstream.build import build_upstream
    from serkit.upstream.tiny import save_tiny_speech_model

    path = tmp_path / "short.wav"
    sf.write(path, tone(samples / SR), SR, subtype="PCM_16")
    wav = torch.from_numpy(load_audio(path))
    assert wav.shape == (samples,)
    model_dir = save_tiny_speech_model(tmp_path / "tiny_w2v2", "wav2vec2")
    for cfg in (FbankConfig(layers="last", freeze="all"),
                HFConfig(source=str(model_dir), layers="last", freeze="all")):
        upstream = build_upstream(cfg).eval()
        with torch.no_grad():
            out = upstream(wav[None], torch.tensor([samples]))
        assert out.frame_lens.tolist() == [1], cfg.name
        assert all(torch.isfinite(h).all() for h in out.hidden), cfg.name


# ---------------------------------------------------------------- file objects, arrays and raw frame spans


def test_file_object_decodes_like_the_path_and_errors_use_its_name(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, tone(0.3, 22050), 22050, subtype="PCM_16")
    np.testing.assert_array_equal(load_audio(io.BytesIO(path.read_bytes())), load_audio(path))
    with pytest.raises(AudioError, match="upload.wav: cannot decode audio"):
        load_audio(io.BytesIO(b"not audio at all" * 10), name="upload.wav")


def test_integer_arrays_conform_like_the_file_they_came_from(tmp_path):
    pcm16 = (tone(0.25) * 32767).astype(np.int16)
    path = tmp_path / "pcm.wav"
    sf.write(path, pcm16, SR, subtype="PCM_16")
    np.testing.assert_allclose(conform_samples(pcm16, SR), load_audio(path), atol=1e-6)
    unsigned = np.array([0, 128, 255], np.uint8)
    np.testing.assert_allclose(conform_samples(unsigned, SR), [-1.0, 0.0, 127 / 128])


@pytest.mark.parametrize(
    ("samples", "sample_rate", "match"),
    [(np.zeros((0,), np.float32), SR, "S > 0"), (np.zeros((2, 3, 4), np.float32), SR, "shape"),
     (np.zeros(10, np.float32), 0, "sample rate"), (np.array(["a", "b"]), SR, "dtype")],
)
def test_bad_arrays_are_refused(samples, sample_rate, match):
    with pytest.raises(AudioError, match=match):
        conform_samples(samples, sample_rate, name="<array>")


def test_read_frames_decodes_only_the_span(tmp_path):
    ramp = np.linspace(0, 1, 8000, endpoint=False, dtype=np.float32)
    path = tmp_path / "ramp.wav"
    sf.write(path, np.stack([ramp, -ramp], axis=1), 8000, subtype="FLOAT")
    frames, sample_rate = read_frames(path, 2000, 3000)
    assert sample_rate == 8000 and frames.shape == (1000, 2)
    np.testing.assert_array_equal(frames[:, 0], ramp[2000:3000])
