"""A fold's own record of its fits: where each (re)start began, and what every DDP rank ended with.

`fits.jsonl` gets one line per fit start ({"start_epoch", "global_step", "world_size"}), so a resumed fold
shows where it picked up. With DDP, `ranks/<rank>.json` holds each rank's parameter checksum and batch count
at the end: DDP keeps replicas identical, and these files let anyone check that it did.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from ..util.atomic import write_json


class FitLog(Callback):
    def __init__(self, fold_dir: str | Path):
        self.fold_dir = Path(fold_dir)
        self.train_batches = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            line = {"start_epoch": trainer.current_epoch, "global_step": trainer.global_step,
                    "world_size": trainer.world_size}
            with open(self.fold_dir / "fits.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.train_batches += 1

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.world_size == 1:
            return
        with torch.no_grad():
            checksum = sum(float(p.double().sum()) for p in pl_module.parameters())
        ranks = self.fold_dir / "ranks"
        ranks.mkdir(exist_ok=True)
        write_json(ranks / f"{trainer.global_rank}.json",
                   {"param_checksum": checksum, "train_batches": self.train_batches, "epoch": trainer.current_epoch})
