"""Waveform augmentation that a feature cache can afford: a few fixed perturbed copies of each training clip.

Speed perturbation (Ko et al. 2015; sox's `speed`: tempo and pitch change together), gain and additive white
noise change what the encoder hears, so unlike frame masks they must run before it. Drawing fresh parameters
every epoch would make every epoch encode every clip again; instead each utterance has `wave_variants` fixed
copies, copy k's parameters drawn from a generator seeded by (utterance id, k) alone. A copy is the same
samples every time it is made, so the feature cache (keyed by the samples' content) encodes it once, and later
epochs, folds, seeds and runs read it back: K copies cost K more encodings of the corpus, once.

Each time a training batch is drawn, every utterance in it is replaced by one of its copies or kept as it is,
uniformly among the K + 1 (torch's global generator: the run seeds it and last.ckpt restores it, so a resumed fold
draws what an uninterrupted one does). Validation, test, averaging, bundles and inference never see it
(`FoldDataModule.on_before_batch_transfer` applies it in the training loop only).
"""

from __future__ import annotations

import hashlib

import numpy as np
import soxr
import torch

from ..data.audio import TARGET_SAMPLE_RATE
from ..data.batch import Batch, pad_waves
from ..train_config import AugmentConfig


def variant_parameters(cfg: AugmentConfig, utterance_id: str, k: int) -> dict[str, float | None]:
    """Copy k (1..wave_variants) of one utterance: {"speed", "gain_db", "snr_db" (None: no noise)}, drawn
    uniformly from the configured ranges by a generator seeded with the id and k only (not the run's seed)."""
    seed = int.from_bytes(hashlib.sha256(f"serkit-wave-variant/{utterance_id}/{k}".encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    draws = rng.random(3)  # always three, so changing one range leaves the other parameters as they were
    noise = cfg.noise_snr_db
    return {"speed": _between(cfg.speed, draws[0]), "gain_db": _between(cfg.gain_db, draws[1]),
            "snr_db": None if noise is None else _between(noise, draws[2]), "noise_seed": seed}


def _between(bounds, fraction: float) -> float:
    low, high = float(bounds[0]), float(bounds[1])
    return low + (high - low) * float(fraction)


def perturb(wav: np.ndarray, speed: float, gain_db: float, snr_db: float | None, noise_seed: int = 0) -> np.ndarray:
    """wav [S] float32 16 kHz -> [round(S / speed)] float32: resampled as if played `speed` times faster (soxr,
    read at 16 kHz), scaled by gain_db, then white noise added at snr_db (its seed fixed, so the same every time).
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


class WavePerturbation:
    """Batch -> Batch: each utterance kept or replaced by one of its `wave_variants` fixed copies (uniformly),
    re-padded (speed changes lengths): wavs [B, S'] float32, wav_lens [B]. Labels, ids and texts are unchanged."""

    def __init__(self, cfg: AugmentConfig):
        if cfg.wave_variants < 1:
            raise ValueError("WavePerturbation needs wave_variants >= 1")
        self.cfg = cfg

    def copy(self, wav: np.ndarray, utterance_id: str, k: int) -> np.ndarray:
        """Copy k (1..wave_variants) of the utterance whose samples are wav [S]."""
        return perturb(wav, **variant_parameters(self.cfg, utterance_id, k))

    def __call__(self, batch: Batch) -> Batch:
        choice = torch.randint(0, self.cfg.wave_variants + 1, (len(batch),)).tolist()  # 0: the clip as it is
        waves = []
        for b, k in enumerate(choice):
            wav = batch.wavs[b, : int(batch.wav_lens[b])]
            waves.append(wav if k == 0 else torch.from_numpy(self.copy(wav.cpu().numpy(), batch.ids[b], k)))
        wavs, wav_lens = pad_waves(waves)
        return Batch(wavs, wav_lens, batch.labels, batch.ids, batch.texts)
