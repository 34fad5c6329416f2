"""Small tensor helpers shared by the audio upstreams: batch checks, per-utterance normalisation, re-padding."""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import pad_sequence

from ..errors import DataError
from ..util.masks import length_mask


def check_batch(wavs: torch.Tensor, wav_lens: torch.Tensor) -> torch.Tensor:
    """Validate wavs [B, S] / wav_lens [B]; returns wav_lens as int64 on wavs' device."""
    if wavs.dim() != 2:
        raise DataError(f"upstream input wavs must be [B, S] (batch, samples), got shape {tuple(wavs.shape)}")
    wav_lens = torch.as_tensor(wav_lens, device=wavs.device).long()
    if wav_lens.shape != (wavs.shape[0],):
        raise DataError(f"wav_lens must be [B]={wavs.shape[0]}, got shape {tuple(wav_lens.shape)}")
    if wav_lens.numel() and (int(wav_lens.min()) < 0 or int(wav_lens.max()) > wavs.shape[1]):
        raise DataError(f"wav_lens must lie in [0, {wavs.shape[1]}] (the padded length), got {wav_lens.tolist()}")
    return wav_lens


def zero_mean_unit_var(wavs: torch.Tensor, wav_lens: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Per-utterance (x - mean) / sqrt(var + eps) over the REAL samples only; padding stays 0.

    wavs [B, S], wav_lens [B] -> [B, S]. Same formula as transformers' Wav2Vec2FeatureExtractor
    (population variance, eps 1e-7), which however includes padding in the statistics when the
    checkpoint's extractor has return_attention_mask=False; we never do.
    """
    mask = length_mask(wav_lens, wavs.shape[1]).to(wavs.dtype)
    count = wav_lens.clamp(min=1).to(wavs.dtype)[:, None]
    mean = (wavs * mask).sum(1, keepdim=True) / count
    var = (((wavs - mean) * mask) ** 2).sum(1, keepdim=True) / count
    return (wavs - mean) / torch.sqrt(var + eps) * mask


def repad(per_utterance: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    """B x num_layers x [T_b, D] -> num_layers x [B, max T_b, D] (zero padding)."""
    num_layers = len(per_utterance[0])
    return [pad_sequence([layers[i] for layers in per_utterance], batch_first=True) for i in range(num_layers)]
