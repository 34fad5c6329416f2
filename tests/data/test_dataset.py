"""Dataset + collate + build_loader: 16 kHz mono waveforms into zero-padded Batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from serkit.data.batch import Batch
from serkit.data.dataset import UtteranceDataset, build_loader, collate
from serkit.data.utterance import Utterance


def wav(path: Path, samples: np.ndarray, sr: int = 16000) -> str:
    sf.write(path, samples.astype(np.float32), sr, subtype="FLOAT")
    return str(path)


@pytest.fixture
def corpus(tmp_path) -> tuple[list[Utterance], np.ndarray]:
    rng = np.random.default_rng(0)
    stereo = rng.uniform(-0.5, 0.5, (8000, 2))
    return [
        Utterance("a", wav(tmp_path / "a.wav", rng.uniform(-0.5, 0.5, 16000)), "hap", "s1", "1", 1.0, text="hi"),
        Utterance("b", wav(tmp_path / "b.wav", stereo, 16000), "sad", "s2", "1", 0.5),
        Utterance("c", wav(tmp_path / "c.wav", rng.uniform(-0.5, 0.5, 4000), 8000), "ang", "s3", "2", 0.5),
        Utterance("d", "d.wav", "fru", "s4", "2", 0.25, start=0.25, end=0.5, text="segment"),
    ], stereo


def test_items_are_16k_mono_with_label_indices(corpus, tmp_path):
    utts, stereo = corpus
    wav(tmp_path / "d.wav", np.linspace(0, 1, 16000, endpoint=False))
    dataset = UtteranceDataset(utts, ["neu", "hap", "ang", "sad"], root=tmp_path)
    items = [dataset[i] for i in range(len(dataset))]
    assert [e.wav.shape[0] for e in items] == [16000, 8000, 8000, 4000]
    assert all(e.wav.dtype == torch.float32 and e.wav.dim() == 1 for e in items)
    torch.testing.assert_close(items[1].wav, torch.from_numpy(stereo.mean(axis=1).astype(np.float32)))
    assert [e.label for e in items] == [1, 3, 2, -1]  # fru is not a class: -1
    assert items[3].wav[0].item() == pytest.approx(0.25, abs=1e-6)  # the segment starts at 0.25 s


def test_collate_pads_with_zeros(corpus, tmp_path):
    utts, _ = corpus
    dataset = UtteranceDataset(utts[:3], ["hap", "sad", "ang"])
    items = [dataset[i] for i in range(3)]
    batch = collate(items)
    assert isinstance(batch, Batch)
    assert batch.wavs.shape == (3, 16000) and batch.wavs.dtype == torch.float32
    assert batch.wav_lens.tolist() == [16000, 8000, 8000] and batch.wav_lens.dtype == torch.long
    assert batch.labels.tolist() == [0, 1, 2] and batch.labels.dtype == torch.long
    assert batch.ids == ["a", "b", "c"]
    assert batch.texts == ["hi", "", ""]
    for row, item in zip(batch.wavs, items, strict=True):
        n = item.wav.shape[0]
        torch.testing.assert_close(row[:n], item.wav)
        assert not row[n:].any()
    assert collate(items[1:]).texts is None


def test_build_loader_yields_every_utterance_once(corpus, tmp_path):
    utts, _ = corpus
    wav(tmp_path / "d.wav", np.zeros(16000) + 0.1)
    utts = utts[:3] + [Utterance("d", str(tmp_path / "d.wav"), "hap", "s4", "2", 0.25, start=0.25, end=0.5)]
    loader = build_loader(utts, ["hap", "sad", "ang"], max_batch_seconds=1.2, shuffle=True, seed=0)
    for epoch in range(2):
        loader.batch_sampler.set_epoch(epoch)
        batches = list(loader)
        assert len(batches) == len(loader)
        assert sorted(i for b in batches for i in b.ids) == ["a", "b", "c", "d"]
        assert all(b.wavs.shape[0] * b.wavs.shape[1] <= 1.2 * 16000 for b in batches)


def test_lightning_advances_the_sampler_epoch(corpus):
    from lightning.fabric.utilities.data import _set_sampler_epoch  # what the fit loop calls each epoch

    utts, _ = corpus
    loader = build_loader(utts[:3], ["hap", "sad", "ang"], max_batch_seconds=1.2, shuffle=True, seed=0)
    _set_sampler_epoch(loader, 4)
    assert loader.batch_sampler.epoch == 4
