"""A fold's own records of its fits: the logged metrics, where each (re)start began, what every DDP rank ended with.

- `MetricsCSV` (a Lightning logger): `logs/metrics.csv`, one row per logging call as Lightning's CSVLogger writes
  it, but continued by a resumed fit (Lightning's deletes the file it finds). The earlier fits' rows are kept up to
  the first step this fit logs, so the rows of an interrupted epoch, logged again, do not appear twice.
- `FitLog` (a callback): `fits.jsonl` gets one line per fit start ({"start_epoch", "global_step", "world_size"}):
  the first epoch this fit trains (a fit resumed from a finished one trains nothing and writes no line). With DDP,
  `ranks/<rank>.json` holds each rank's parameter checksum and batch count at the end: DDP keeps replicas
  identical, and these files let anyone check that it did.
Both files are rewritten whole and atomically (not appended): a kill mid-write cannot leave half a line.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from ..util.atomic import write_json, write_text


class MetricsCSV(Logger):
    def __init__(self, fold_dir: str | Path):
        super().__init__()
        self.path = Path(fold_dir) / "logs" / "metrics.csv"
        self.rows: list[dict] | None = None  # read from the file at this fit's first row

    name = property(lambda self: "logs")
    version = property(lambda self: "")

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass  # the fold's config.yaml has them

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self.rows is None:
            earlier = csv.DictReader(io.StringIO(self.path.read_text(encoding="utf-8"))) if self.path.is_file() else []
            self.rows = [row for row in earlier if step is None or int(float(row.get("step") or 0)) < step]
        self.rows.append({**metrics, "step": step})  # numbers: Lightning has turned tensors into scalars

    @rank_zero_only
    def save(self) -> None:
        if not self.rows:
            return
        text = io.StringIO()
        # epoch and step first, as Lightning's CSVLogger writes them; then the metrics in the order first logged
        columns = list(dict.fromkeys(key for row in self.rows for key in row))
        writer = csv.DictWriter(text, sorted(columns, key=lambda key: key not in ("epoch", "step")))  # stable sort
        writer.writeheader()
        writer.writerows(self.rows)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text(self.path, text.getvalue())


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
            path = self.fold_dir / "fits.jsonl"
            line = {"start_epoch": trainer.current_epoch, "global_step": trainer.global_step,
                    "world_size": trainer.world_size}
            write_text(path, (path.read_text(encoding="utf-8") if path.is_file() else "") + json.dumps(line) + "\n")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.train_batches += 1

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.world_size > 1:
            with torch.no_grad():
                checksum = sum(float(p.double().sum()) for p in pl_module.parameters())
            (self.fold_dir / "ranks").mkdir(exist_ok=True)
            write_json(self.fold_dir / "ranks" / f"{trainer.global_rank}.json",
                       {"param_checksum": checksum, "train_batches": self.train_batches,
                        "epoch": trainer.current_epoch})
