"""The batch every model consumes."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Batch:
    """wavs [B, S] float32 zero-padded 16 kHz mono; wav_lens [B] int64 samples; labels [B] int64 (-1 if unknown);
    texts: transcripts or None; ids: utterance ids."""

    wavs: torch.Tensor
    wav_lens: torch.Tensor
    labels: torch.Tensor
    ids: list[str]
    texts: list[str] | None = None

    def to(self, device) -> "Batch":
        return Batch(self.wavs.to(device), self.wav_lens.to(device), self.labels.to(device), self.ids, self.texts)

    def __len__(self) -> int:
        return len(self.ids)


def pad_waves(waves: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """list of [S_i] -> (wavs [B, max S] zero-padded, wav_lens [B])."""
    wav_lens = torch.tensor([w.shape[0] for w in waves], dtype=torch.long)
    wavs = torch.zeros(len(waves), int(wav_lens.max()) if len(waves) else 0, dtype=torch.float32)
    for i, w in enumerate(waves):
        wavs[i, : w.shape[0]] = w
    return wavs, wav_lens
