"""Lightning callback: keep the model weights of the k best validation epochs as safetensors files.

Weights only (no optimiser, and no frozen upstream parameters: they are the pretrained source's in every
checkpoint), so they are small, load without pickle, and feed checkpoint averaging. The
tracker's state travels inside Lightning's last.ckpt (state_dict/load_state_dict), so a resumed run keeps
the same top-k; files that a crash left behind without being recorded there are removed on resume.
An evicted file is deleted only after the last.ckpt whose tracker no longer names it has been written (at the
next validation, or at the end of the fit): deleting it at once would let a crash between the two leave a
last.ckpt that names a deleted file, and the resumed fold would fail when it averages.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback

from ..checkpoint import load_state_dict, save_checkpoint, trained_state_dict
from ..errors import ConfigError
from .topk import TopK

MONITORS = ("ua", "wa")
# metadata of every top-k file: what a reader of the file alone must know (the fold's bundle is complete)
OMITS = {"omits": "frozen upstream parameters (the pretrained source's; the fold's model bundle holds them)"}


class TopKWeights(Callback):
    def __init__(self, dirpath: str | Path, k: int, monitor: str, config_hash: str):
        if monitor not in MONITORS:
            raise ConfigError(f"key 'train.monitor' is {monitor!r}; expected one of {', '.join(MONITORS)}")
        self.dirpath = Path(dirpath)
        self.metric = f"val_{monitor}"
        self.config_hash = config_hash
        self.tracker = TopK(k, metric=self.metric, mode="max")
        self._evicted: list[str] = []  # evicted files, deleted once a written last.ckpt no longer names them

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.metric not in trainer.callback_metrics:
            return
        # Lightning runs ModelCheckpoint after this callback: the last.ckpt now on disk was written after the
        # previous evictions, so they are safe to delete.
        self._delete_evicted()
        score = float(trainer.callback_metrics[self.metric])
        step = trainer.global_step
        path = self.dirpath / f"epoch{trainer.current_epoch:03d}-step{step:06d}.safetensors"
        # Every rank updates its tracker (identical: validation metrics are identical on all ranks); rank 0
        # alone writes and deletes files.
        if not self.tracker.would_keep(score, step):
            return
        if trainer.is_global_zero:
            metadata = {"config_hash": self.config_hash, self.metric: f"{score:.6f}",
                        "epoch": str(trainer.current_epoch), "step": str(step), **OMITS}
            # trained weights only: frozen upstream weights are the source's, the same in every checkpoint
            save_checkpoint(trained_state_dict(pl_module.model), path, metadata)
        decision = self.tracker.push(score, step, str(path))
        if trainer.is_global_zero and decision.evicted is not None:
            self._evicted.append(decision.evicted)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._delete_evicted()  # the final last.ckpt was written at the final validation

    def _delete_evicted(self) -> None:
        kept = set(self.tracker.paths())  # a path evicted and then pushed again (overwritten) is kept
        for path in self._evicted:
            if path not in kept:
                Path(path).unlink(missing_ok=True)
        self._evicted.clear()

    def state_dict(self) -> dict:
        return self.tracker.to_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        # Each kept file is looked up by name in this fold's checkpoints folder: the run dir may have moved (or
        # be resumed from another working directory), and a checkpoint cannot point the averaging elsewhere.
        entries = [{**e, "path": str(self.dirpath / Path(str(e.get("path", ""))).name)}
                   for e in state_dict.get("entries", []) if isinstance(e, dict)]
        self.tracker = TopK.from_dict({**state_dict, "entries": entries})

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or not self.dirpath.is_dir():
            return
        kept = {Path(p).name for p in self.tracker.paths()}
        for orphan in self.dirpath.glob("*.safetensors"):
            if orphan.name not in kept:
                orphan.unlink()
        for leftover in self.dirpath.glob(".*.tmp"):  # temp files of writes a kill interrupted
            leftover.unlink(missing_ok=True)

    def kept_paths(self) -> list[str]:
        """Best first."""
        return self.tracker.paths()

    def best_state_dict(self) -> dict:
        best = self.tracker.best()
        if best is None:
            raise ConfigError("no checkpoint was kept: did validation run? (the validation set may be empty)")
        return load_state_dict(best.path)
