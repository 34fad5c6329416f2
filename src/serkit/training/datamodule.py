"""One fold's loaders for Lightning: the training loader shards per DDP rank and alone draws the clips' wave copies
(data/wave_copies.py); evaluation never shards and never sees a copy."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from ..data.config import DataConfig
from ..data.corpora import FoldSplit
from ..data.dataset import build_loader
from ..data.utterance import Utterance
from ..data.wave_copies import WaveCopies


class FoldDataModule(L.LightningDataModule):
    """epochs: the trainer's max_epochs, so the training loader yields the same batch count in every epoch (Lightning
    reads it once; DurationBatchSampler, step 5)."""

    def __init__(self, split: FoldSplit, labels: list[str], cfg: DataConfig, seed: int = 0,
                 copies: WaveCopies | None = None, epochs: int | None = None):
        super().__init__()
        self.split = split
        self.labels = labels
        self.cfg = cfg
        self.seed = seed
        self.copies = copies
        self.epochs = epochs

    def train_dataloader(self) -> DataLoader:
        # The trainer knows the world only once fit() has started, hence the lookup here and not in __init__.
        world_size = self.trainer.world_size if self.trainer is not None else 1
        rank = self.trainer.global_rank if self.trainer is not None else 0
        loader = build_loader(
            self.split.train, self.labels, self.cfg.max_batch_seconds, shuffle=True, seed=self.seed,
            num_workers=self.cfg.num_workers, num_replicas=world_size, rank=rank, num_buckets=self.cfg.num_buckets,
            copies=self.copies, epochs=self.epochs,
        )
        # Lightning makes the first epoch's iterator (workers prefetch from it) right after asking for the loader and
        # before its own set_epoch; a resumed fit would deal epoch 0's batches in its first epoch. The trainer's
        # epoch is already restored from the checkpoint here.
        if self.trainer is not None:
            loader.batch_sampler.set_epoch(self.trainer.current_epoch)
        return loader

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader(self.split.valid)

    def eval_dataloader(self, utterances: list[Utterance]) -> DataLoader:
        """Every utterance once, in a fixed order, on every rank (metrics need the whole set)."""
        return build_loader(
            utterances, self.labels, self.cfg.max_batch_seconds, shuffle=False, seed=self.seed,
            num_workers=self.cfg.num_workers,
        )
