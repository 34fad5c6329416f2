"""Waveform augmentation that a feature cache can afford: each training clip or one of its fixed copies.

Each utterance has `wave_variants` fixed perturbed copies (speed, gain, noise; data/wave_copies.py), the same
samples every time they are made, so a feature cache encodes each once: K copies cost K more encodings of the
corpus, once, for every later epoch, fold, seed and run. Each time a training batch is drawn, every utterance in
it is kept or replaced by one of its copies, uniformly among the K + 1 (torch's global generator: the run seeds
it and last.ckpt restores it, so a resumed fold draws what an uninterrupted one does). Validation, test,
averaging, bundles and inference never see a copy (`FoldDataModule.on_before_batch_transfer` applies it in the
training loop only).
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.batch import Batch, pad_waves
from ..data.wave_copies import wave_copy
from ..train_config import AugmentConfig


class WavePerturbation:
    """Batch -> Batch: each utterance kept or replaced by one of its `wave_variants` fixed copies (uniformly),
    re-padded (speed changes lengths): wavs [B, S'] float32, wav_lens [B]. Labels, ids and texts are unchanged."""

    def __init__(self, cfg: AugmentConfig):
        if cfg.wave_variants < 1:
            raise ValueError("WavePerturbation needs wave_variants >= 1")
        self.cfg = cfg

    def copy(self, wav: np.ndarray, utterance_id: str, k: int) -> np.ndarray:
        """Copy k (1..wave_variants) of the utterance whose samples are wav [S]."""
        return wave_copy(wav, utterance_id, k, self.cfg.speed, self.cfg.gain_db, self.cfg.noise_snr_db)

    def __call__(self, batch: Batch) -> Batch:
        choice = torch.randint(0, self.cfg.wave_variants + 1, (len(batch),)).tolist()  # 0: the clip as it is
        waves = []
        for b, k in enumerate(choice):
            wav = batch.wavs[b, : int(batch.wav_lens[b])]
            waves.append(wav if k == 0 else torch.from_numpy(self.copy(wav.cpu().numpy(), batch.ids[b], k)))
        wavs, wav_lens = pad_waves(waves)
        return Batch(wavs, wav_lens, batch.labels, batch.ids, batch.texts)
