"""Utterance lists as a torch Dataset of 16 kHz mono waveforms, collated into `Batch`.

    loader = build_loader(split.train, labels, max_batch_seconds=60, shuffle=True, seed=0)
    for batch in loader:   # Batch: wavs [B, S] float32, wav_lens [B], labels [B] int64, ids, texts
        ...

A training loader may draw fixed perturbed copies of its clips (`copies`, data/wave_copies.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from .audio import TARGET_SAMPLE_RATE, load_audio
from .batch import Batch, pad_waves
from .sampler import DEFAULT_NUM_BUCKETS, DurationBatchSampler
from .utterance import Utterance
from .wave_copies import CopyChoices, WaveCopies


@dataclass
class Example:
    """One decoded utterance: wav [S] float32 16 kHz mono; label index (-1: not in the class list)."""

    wav: torch.Tensor
    label: int
    id: str
    text: str | None


class UtteranceDataset(Dataset):
    """Reads `utterances[i]` (its start..end segment) on access; relative paths are taken from `root`.
    With `copies`, item (i, k) is copy k of utterances[i] (k = 0: the clip itself; `CopyChoices` yields them)."""

    def __init__(self, utterances: Sequence[Utterance], labels: Sequence[str], root: str | Path | None = None,
                 copies: WaveCopies | None = None):
        self.utterances = list(utterances)
        self.index = {label: i for i, label in enumerate(labels)}  # the classifier's output order
        self.root = None if root is None else Path(root)
        self.copies = copies

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, item: int | tuple[int, int]) -> Example:
        i, k = item if isinstance(item, tuple) else (item, 0)
        utt = self.utterances[i]
        path = Path(utt.path)
        if self.root is not None and not path.is_absolute():
            path = self.root / path
        wav = load_audio(path, utt.start, utt.end, TARGET_SAMPLE_RATE)
        if k:
            if self.copies is None or not 1 <= k <= self.copies.variants:
                raise IndexError(f"copy {k} of {utt.id!r}: this dataset has "
                                 f"{self.copies.variants if self.copies else 0} copies per clip")
            wav = self.copies.make(wav, utt.id, k)
        return Example(torch.from_numpy(wav), self.index.get(utt.label, -1), utt.id, utt.text)


def collate(examples: Sequence[Example]) -> Batch:
    """Examples -> Batch: wavs [B, S] zero-padded; texts None when no example has one ("" fills gaps)."""
    wavs, wav_lens = pad_waves([e.wav for e in examples])
    labels = torch.tensor([e.label for e in examples], dtype=torch.long)
    texts = [e.text or "" for e in examples] if any(e.text is not None for e in examples) else None
    return Batch(wavs, wav_lens, labels, [e.id for e in examples], texts)


def build_loader(utterances: Sequence[Utterance], labels: Sequence[str], max_batch_seconds: float, shuffle: bool,
                 seed: int = 0, num_workers: int = 0, num_replicas: int = 1, rank: int = 0,
                 root: str | Path | None = None, num_buckets: int = DEFAULT_NUM_BUCKETS,
                 copies: WaveCopies | None = None, epochs: int | None = None) -> DataLoader:
    """A DataLoader of Batch over `utterances`, batched by DurationBatchSampler. Outside Lightning (which
    does it by itself), call `loader.batch_sampler.set_epoch(epoch)` before each epoch. copies (training
    only): each clip, every epoch, is itself or one of its `copies.variants` copies (CopyChoices, seeded by seed).
    epochs (training): the same batch count in each of them, as Lightning expects (DurationBatchSampler, step 5)."""
    dataset = UtteranceDataset(utterances, labels, root, copies)
    sampler = DurationBatchSampler([utt.duration for utt in dataset.utterances], max_batch_seconds, shuffle=shuffle,
                                   seed=seed, num_buckets=num_buckets, num_replicas=num_replicas, rank=rank,
                                   epochs=epochs)
    if copies is not None and copies.variants:
        sampler = CopyChoices(sampler, len(dataset), copies.variants, seed)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers,
                      persistent_workers=num_workers > 0)
