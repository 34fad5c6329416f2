"""Fixed perturbed copies of a clip: speed, gain and white noise, each copy the same samples every time.

Speed perturbation (Ko et al. 2015; sox's `speed`: tempo and pitch change together), gain and additive noise
change what an encoder hears, so they must be applied before it. Copy k of an utterance draws its parameters
from a generator seeded by (utterance id, k) alone, not by a run's seed: a copy is the same samples in every
epoch, fold, seed and run, so a feature cache keyed by the samples (upstream/cache.py) encodes it once.
Training draws among the copies (training/wave_augment.py); the linear probe adds them as training rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import soxr

from .audio import TARGET_SAMPLE_RATE


def variant_parameters(utterance_id: str, k: int, speed: Sequence[float], gain_db: Sequence[float],
                       noise_snr_db: Sequence[float] | None) -> dict:
    """Copy k (1, 2, ...) of one utterance -> {"speed", "gain_db", "snr_db" (None: no noise), "noise_seed"},
    each drawn uniformly from its [low, high] range by a generator seeded with the id and k only."""
    seed = int.from_bytes(hashlib.sha256(f"serkit-wave-variant/{utterance_id}/{k}".encode()).digest()[:8], "little")
    draws = np.random.default_rng(seed).random(3)  # always three: one range's change leaves the others' draws
    return {"speed": _between(speed, draws[0]), "gain_db": _between(gain_db, draws[1]),
            "snr_db": None if noise_snr_db is None else _between(noise_snr_db, draws[2]), "noise_seed": seed}


def _between(bounds: Sequence[float], fraction: float) -> float:
    low, high = float(bounds[0]), float(bounds[1])
    return low + (high - low) * float(fraction)


def perturb(wav: np.ndarray, speed: float, gain_db: float, snr_db: float | None, noise_seed: int = 0) -> np.ndarray:
    """wav [S] float32 16 kHz -> [~S / speed] float32: resampled as if played `speed` times faster (soxr, read
    back at 16 kHz), scaled by gain_db, then white noise added at snr_db (seeded, so the same every time).
    Samples are not clipped: a gain above 0 dB may leave [-1, 1], which the encoders' feature extractors accept."""
    out = np.asarray(wav, dtype=np.float32)
    if speed != 1.0 and out.size:
        out = soxr.resample(out, TARGET_SAMPLE_RATE * speed, TARGET_SAMPLE_RATE).astype(np.float32)
    out = out * np.float32(10.0 ** (gain_db / 20.0))
    if snr_db is not None and out.size:
        power = float(np.mean(out.astype(np.float64) ** 2))
        noise = np.random.default_rng(noise_seed).standard_normal(out.size)
        out = out + (noise * np.sqrt(power / 10.0 ** (snr_db / 10.0))).astype(np.float32)
    return out


def wave_copy(wav: np.ndarray, utterance_id: str, k: int, speed: Sequence[float], gain_db: Sequence[float],
              noise_snr_db: Sequence[float] | None) -> np.ndarray:
    """Copy k of the utterance `utterance_id` whose samples are wav [S]."""
    return perturb(wav, **variant_parameters(utterance_id, k, speed, gain_db, noise_snr_db))
