"""Progress a person can follow, as plain lines that read as well in a log file as on a terminal.

One line per validation epoch (fold, epoch, training loss, validation UA / WA, seconds), a line at most every
`every` seconds inside a long epoch (batches done, rate, ETA, and the feature cache's new / read clips, which
is the encoding progress of a frozen encoder's first epoch), and one line per finished fold with the run's ETA
(`FoldClock`). Written to stderr, flushed, so `serkit cv ... > log 2>&1` shows them as they happen.
"""

from __future__ import annotations

import time

import lightning as L
from lightning.pytorch.callbacks import Callback

from ..upstream.cache import installed_caches
from ..util.progress import duration as _duration
from ..util.progress import say


class ProgressLines(Callback):
    """Lightning callback: the epoch and in-epoch lines of one fold. `where`: e.g. "fold 2/6"."""

    def __init__(self, where: str, every: float = 30.0, epochs: int | None = None):
        self.where = where
        self.every = every
        self.epochs = epochs  # the total shown in "epoch i/N" (None: the trainer's max_epochs)
        self._epoch_start = self._last_line = 0.0

    def _cache_note(self, pl_module) -> str:
        caches = installed_caches(pl_module.model)
        if not caches:
            return ""
        new, read = sum(c.misses for c in caches), sum(c.hits for c in caches)
        return f", feature cache: {new} clips encoded, {read} read"

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module) -> None:
        self._epoch_start = self._last_line = time.monotonic()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        now = time.monotonic()
        if not trainer.is_global_zero or now - self._last_line < self.every:
            return
        self._last_line = now
        done, total = batch_idx + 1, trainer.num_training_batches
        rate = done / max(now - self._epoch_start, 1e-9)
        eta = (total - done) / rate if isinstance(total, int) else float("nan")
        say(f"{self.where} epoch {trainer.current_epoch + 1}/{self.epochs or trainer.max_epochs}: "
            f"batch {done}/{total}, {rate:.2f} batches/s, epoch ETA {_duration(eta)}{self._cache_note(pl_module)}")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.limit_val_batches == 0 and trainer.is_global_zero:  # no validation (a refit): the line is here
            loss = float(trainer.callback_metrics.get("train_loss", float("nan")))
            say(f"{self.where} epoch {trainer.current_epoch + 1}/{self.epochs or trainer.max_epochs}: loss {loss:.4f}, "
                f"{time.monotonic() - self._epoch_start:.1f} s{self._cache_note(pl_module)}")

    def on_validation_end(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        loss, ua, wa = (float(metrics[k]) if k in metrics else float("nan") for k in ("train_loss", "val_ua", "val_wa"))
        say(f"{self.where} epoch {trainer.current_epoch + 1}/{self.epochs or trainer.max_epochs}: loss {loss:.4f}, "
            f"valid UA {100 * ua:.1f} WA {100 * wa:.1f}, {time.monotonic() - self._epoch_start:.1f} s"
            f"{self._cache_note(pl_module)}")


class FoldClock:
    """The run's clock: a line per finished fold with its test scores, the time it took and the run's ETA."""

    def __init__(self, num_folds: int):
        self.num_folds = num_folds
        self.started = time.monotonic()
        self.done = self.trained = 0

    def fold_done(self, fold: int, ua: float, wa: float, skipped: bool = False) -> None:
        self.done += 1
        self.trained += not skipped  # folds a resumed run finds finished cost nothing: not in the rate
        elapsed = time.monotonic() - self.started
        eta = elapsed / max(self.trained, 1) * (self.num_folds - self.done)
        status = "already finished" if skipped else "finished"
        say(f"fold {fold} {status} ({self.done}/{self.num_folds}): test UA {100 * ua:.1f} WA {100 * wa:.1f}; "
            f"run {_duration(elapsed)} so far, ETA {_duration(eta)}")
