"""The fold's loaders: with the run's epochs the training loader keeps one batch count (Lightning reads it once);
evaluation is every clip once, in a fixed order."""

from __future__ import annotations

import numpy as np

from serkit.data.config import DataConfig
from serkit.data.corpora import FoldSplit
from serkit.data.utterance import Utterance
from serkit.training.datamodule import FoldDataModule


def utterances(n: int, seed: int) -> list[Utterance]:
    lengths = np.random.default_rng(seed).uniform(0.5, 12.0, n).round(3)
    return [Utterance(f"u{i}", f"/nowhere/u{i}.wav", "neu", "s1", "g1", float(d)) for i, d in enumerate(lengths)]


def test_training_loader_keeps_one_batch_count_over_the_epochs():
    split = FoldSplit(1, train=utterances(40, seed=1), valid=utterances(9, seed=2), test=[])
    cfg = DataConfig(corpus="ravdess", max_batch_seconds=30.0, num_buckets=3)
    counts, natural = set(), set()
    for number in range(6):
        loader = FoldDataModule(split, ["neu"], cfg, seed=1, epochs=6).train_dataloader()
        loader.batch_sampler.set_epoch(number)
        batches = list(loader.batch_sampler)
        counts.add(len(batches))
        assert len(loader) == len(batches)
        assert sorted(i for b in batches for i in b) == list(range(40))
        plain = FoldDataModule(split, ["neu"], cfg, seed=1).train_dataloader().batch_sampler
        plain.set_epoch(number)
        natural.add(len(plain))
    assert len(natural) > 1 and counts == {max(natural)}
    valid = FoldDataModule(split, ["neu"], cfg, seed=1, epochs=6).val_dataloader().batch_sampler
    assert sorted(i for b in valid for i in b) == list(range(9))


def _fit_ids(datamodule: FoldDataModule, root, max_epochs: int, ckpt: str | None = None) -> dict[int, list[list[str]]]:
    """Fit a one-weight module on the datamodule's training batches: the utterance ids of each batch, per epoch."""
    import lightning as L
    import torch

    class Record(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))
            self.ids: dict[int, list[list[str]]] = {}

        def training_step(self, batch, index):
            self.ids.setdefault(self.current_epoch, []).append(list(batch.ids))
            return self.weight.sum() * 0.0

        def validation_step(self, batch, index):
            pass

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    module = Record()
    trainer = L.Trainer(max_epochs=max_epochs, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu", num_sanity_val_steps=0, default_root_dir=root,
                        callbacks=[L.pytorch.callbacks.ModelCheckpoint(dirpath=root, save_last=True, save_top_k=0)])
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)
    return module.ids


def test_a_resumed_fit_deals_the_uninterrupted_runs_batches(synth_iemocap_root, tmp_path):
    from serkit.data.corpora.iemocap import Iemocap

    utts = Iemocap.prepare(synth_iemocap_root).utterances
    split = FoldSplit(1, train=utts[:40], valid=utts[40:44], test=[])
    cfg = DataConfig(corpus="iemocap", max_batch_seconds=20.0)

    def datamodule() -> FoldDataModule:
        return FoldDataModule(split, sorted({u.label for u in utts}), cfg, seed=3, epochs=4)

    whole = _fit_ids(datamodule(), tmp_path / "whole", 4)
    _fit_ids(datamodule(), tmp_path / "killed", 2)
    resumed = _fit_ids(datamodule(), tmp_path / "killed", 4, ckpt=str(tmp_path / "killed" / "last.ckpt"))
    assert sorted(resumed) == [2, 3]
    assert whole[2] != whole[0]  # epochs differ, so dealing epoch 0's batches again would show
    assert resumed[2] == whole[2] and resumed[3] == whole[3]
