"""A tiny synthetic manifest corpus shared by the baseline tests: two 'emotions' that differ in pitch and
loudness, four speakers (one fold each)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

SPEAKERS = ("spk1", "spk2", "spk3", "spk4")


def make_voice(f0: float, loudness: float, seed: int, seconds: float = 1.0) -> np.ndarray:
    """A vowel-like harmonic tone at `f0` Hz with a little vibrato and noise, [S] float32 at 16 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    f0_track = f0 * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0_track) / 16000
    tone = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = np.minimum(1, np.minimum(t, t[-1] - t) / 0.05)
    return (loudness * envelope * tone / 2 + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    """24 files: per speaker 3 'calm' (low, soft) and 3 'excited' (high, loud) clips; speaker-wise pitch offsets."""
    root = tmp_path_factory.mktemp("tiny_corpus")
    lines = ["path,label,speaker"]
    for s, speaker in enumerate(SPEAKERS):
        for i in range(6):
            label = "calm" if i % 2 == 0 else "excited"
            f0 = (120 if label == "calm" else 260) * (1 + 0.08 * s) * (1 + 0.03 * i)
            loudness = 0.15 if label == "calm" else 0.6
            name = f"{speaker}_{i}.wav"
            sf.write(root / name, make_voice(f0, loudness, seed=10 * s + i), 16000)
            lines.append(f"{name},{label},{speaker}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root / "manifest.csv"


@pytest.fixture
def voice():
    """make_voice, for tests that write a clip of their own."""
    return make_voice
