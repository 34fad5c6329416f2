"""Audio I/O: decoding, mono mixing, resampling to 16 kHz, segments, and an AudioError for each bad file."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from serkit.data import audio
from serkit.data.audio import audio_info, load_audio
from serkit.errors import AudioError


def sine(freq: float, seconds: float, sr: int) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(wav: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    return float(np.fft.rfftfreq(len(wav), 1 / sr)[spectrum.argmax()])


def test_info_reads_the_header(tmp_path):
    path = tmp_path / "a.flac"
    sf.write(path, np.zeros((12000, 2), np.float32), 24000)
    sample_rate, frames, channels, duration = audio_info(path)
    assert (sample_rate, frames, channels) == (24000, 12000, 2)
    assert duration == pytest.approx(0.5)


def test_stereo_is_mixed_to_mono(tmp_path):
    rng = np.random.default_rng(0)
    left, right = rng.uniform(-0.5, 0.5, (2, 1600)).astype(np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    wav = load_audio(path)
    assert wav.dtype == np.float32 and wav.shape == (1600,)
    np.testing.assert_allclose(wav, (left + right) / 2, atol=1e-6)


@pytest.mark.parametrize("sr", [8000, 44100])
def test_resampled_to_16k_keeps_length_and_pitch(tmp_path, sr):
    path = tmp_path / f"sine_{sr}.wav"
    sf.write(path, sine(440.0, 1.0, sr), sr, subtype="FLOAT")
    wav = load_audio(path)
    assert abs(len(wav) - 16000) <= 1
    assert peak_frequency(wav, 16000) == pytest.approx(440.0, abs=2.0)


def test_other_containers_decode(tmp_path):
    for name in ("a.flac", "a.ogg"):
        sf.write(tmp_path / name, sine(300.0, 0.25, 16000), 16000)
        wav = load_audio(tmp_path / name)
        assert abs(len(wav) - 4000) <= 1
        assert peak_frequency(wav, 16000) == pytest.approx(300.0, abs=8.0)


def test_segment_reads_only_its_frames(tmp_path, monkeypatch):
    ramp = np.linspace(0, 1, 16000, endpoint=False, dtype=np.float32)  # sample i holds i / 16000
    path = tmp_path / "ramp.wav"
    sf.write(path, ramp, 16000, subtype="FLOAT")
    seeks, reads = [], []
    real_seek, real_read = sf.SoundFile.seek, sf.SoundFile.read

    def read(self, *args, **kwargs):
        frames = real_read(self, *args, **kwargs)
        reads.append(len(frames))
        return frames

    monkeypatch.setattr(audio.sf.SoundFile, "seek",
                        lambda self, frames, *a: seeks.append(frames) or real_seek(self, frames, *a))
    monkeypatch.setattr(audio.sf.SoundFile, "read", read)
    wav = load_audio(path, start=0.5, end=0.75)
    assert len(wav) == 4000
    np.testing.assert_allclose(wav[[0, -1]], ramp[[8000, 11999]], atol=1e-6)
    assert seeks == [8000] and sum(reads) == 4000  # decoded by seeking (in blocks: see data/audio.py)
    assert len(load_audio(path, start=0.25)) == 12000


def test_segment_of_a_resampled_file(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, sine(500.0, 2.0, 8000), 8000)
    wav = load_audio(path, start=0.5, end=1.5)
    assert abs(len(wav) - 16000) <= 1
    assert peak_frequency(wav, 16000) == pytest.approx(500.0, abs=2.0)


def test_end_rounded_just_past_the_file_is_clamped(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, np.ones(16000, np.float32) * 0.1, 16000)
    assert len(load_audio(path, start=0.5, end=1.01)) == 8000


def _assert_audio_error(path, match, **kwargs):
    with pytest.raises(AudioError, match=match) as info:
        load_audio(path, **kwargs)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    _assert_audio_error(tmp_path / "nope.wav", "not found")


def test_non_audio_bytes_with_wav_name(tmp_path):
    path = tmp_path / "fake.wav"
    path.write_bytes(b"this is not a RIFF file at all" * 20)
    _assert_audio_error(path, "cannot decode")
    with pytest.raises(AudioError, match="cannot decode"):
        audio_info(path)


def test_zero_samples(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    _assert_audio_error(path, "no audio samples")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_samples(tmp_path, bad):
    samples = np.full(800, 0.1, np.float32)
    samples[400] = bad
    path = tmp_path / "bad.wav"
    sf.write(path, samples, 16000, subtype="FLOAT")
    _assert_audio_error(path, "NaN or infinite")


@pytest.mark.parametrize(("start", "end"), [(2.0, None), (-0.1, None), (0.2, 1.5), (0.5, 0.4)])
def test_segment_outside_the_file(tmp_path, start, end):
    path = tmp_path / "one_second.wav"
    sf.write(path, np.full(16000, 0.1, np.float32), 16000)
    _assert_audio_error(path, "outside the file", start=start, end=end)
