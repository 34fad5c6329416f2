"""A fold's own record of its fits: where each (re)start began, and what every DDP rank ended with.

`fits.jsonl` gets one line per fit start ({"start_epoch", "global_step", "world_size"}), so a resumed fold
shows where it picked up: the first epoch this fit trains (written when it starts; a fit resumed from a
finished one trains nothing and writes no line). With DDP, `ranks/<rank>.json` holds each rank's parameter
checksum and batch count at the end: DDP keeps replicas identical, and these files let anyone check that it did.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from ..util.atomic import write_json, write_text


class FitLog(Callback):
    def __init__(self, fold_dir: str | Path):
        self.fold_dir = Path(fold_dir)
        self.train_batches = 0
        self._logged = False

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Not on_train_start: resuming from a last.ckpt written at an epoch's end, Lightning reports that
        # (unfinished) epoch there, though the first epoch it trains is the next one.
        if trainer.is_global_zero and not self._logged:
            self._logged = True
            line = {"start_epoch": trainer.current_epoch, "global_step": trainer.global_step,
                    "world_size": trainer.world_size}
            # rewritten whole and atomically (not appended): a kill mid-write cannot leave half a line
            path = self.fold_dir / "fits.jsonl"
            before = path.read_text(encoding="utf-8") if path.is_file() else ""
            write_text(path, before + json.dumps(line) + "\n")

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
