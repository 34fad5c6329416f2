"""Audio files of every odd shape (written once per session) and a recognizer over the untrained tiny bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

# name -> (seconds, sample rate, channels, soundfile format, subtype)
ODD_FILES = {
    "mono_16k.wav": (2.0, 16000, 1, "WAV", "FLOAT"),
    "stereo_44k1.wav": (1.5, 44100, 2, "WAV", "PCM_16"),
    "phone_8k.wav": (3.0, 8000, 1, "WAV", "PCM_16"),
    "tiny_0.1s.wav": (0.1, 16000, 1, "WAV", "PCM_16"),
    "nested/voice_22k.flac": (1.2, 22050, 1, "FLAC", "PCM_16"),
    "nested/deeper/voice_48k.ogg": (0.8, 48000, 2, "OGG", "VORBIS"),
}
LONG_FILE = "ten_minutes_8k.wav"  # 10 min at 8 kHz, 16-bit: 9.6 MB, read window by window
LONG_SECONDS, LONG_RATE = 600.0, 8000


def voice_like(seconds: float, sample_rate: int, channels: int, seed: int) -> np.ndarray:
    """[S, channels] float32: a few harmonics of a gliding f0 under a syllable-rate envelope, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t + seed)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t + seed) ** 2
    mono = 0.2 * envelope * voiced + 0.01 * rng.standard_normal(t.size)
    return np.stack([mono * (1 - 0.2 * c) for c in range(channels)], axis=1).astype(np.float32)


@pytest.fixture(scope="session")
def odd_audio_dir(tmp_path_factory) -> Path:
    """A folder (with sub-folders) of ODD_FILES plus a non-audio file that directory search must skip."""
    root = tmp_path_factory.mktemp("odd_audio")
    for seed, (name, (seconds, rate, channels, fmt, subtype)) in enumerate(ODD_FILES.items()):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, voice_like(seconds, rate, channels, seed), rate, format=fmt, subtype=subtype)
    (root / "nested" / "README.txt").write_text("not audio\n")
    return root


@pytest.fixture(scope="session")
def long_audio_file(tmp_path_factory) -> Path:
    """10 minutes at 8 kHz, 16-bit PCM, written in one-minute blocks (never whole in memory here either)."""
    path = tmp_path_factory.mktemp("long_audio") / LONG_FILE
    with sf.SoundFile(path, "w", samplerate=LONG_RATE, channels=1, subtype="PCM_16") as f:
        for minute in range(int(LONG_SECONDS // 60)):
            f.write(voice_like(60.0, LONG_RATE, 1, seed=100 + minute)[:, 0])
    return path


@pytest.fixture(scope="session")
def odd_files() -> dict:
    """ODD_FILES, handed out as a fixture (helpers are not imported from conftest: see tests/upstream/conftest.py)."""
    return ODD_FILES


@pytest.fixture(scope="session")
def long_file_spec() -> tuple[float, int]:
    """(seconds, sample rate) of long_audio_file."""
    return LONG_SECONDS, LONG_RATE


@pytest.fixture(scope="session")
def voice():
    return voice_like


@pytest.fixture(scope="session")
def recognizer(tiny_bundle):
    from serkit.inference import EmotionRecognizer

    return EmotionRecognizer.load(tiny_bundle)


@pytest.fixture
def ravdess_files(ravdess_dir) -> list[Path]:
    """8 real recordings: one per actor of actors 1..8 (different emotions and statements)."""
    files = []
    for actor in range(1, 9):
        candidates = sorted((ravdess_dir / f"Actor_{actor:02d}").glob("*.flac"))
        if candidates:
            files.append(candidates[(actor * 7) % len(candidates)])
    if len(files) < 8:
        pytest.skip(f"{ravdess_dir} holds fewer than 8 actors' recordings")
    return files
