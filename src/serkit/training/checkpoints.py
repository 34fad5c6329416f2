"""A fold's checkpoints, written by Lightning's own ModelCheckpoint through one CheckpointIO plugin.

- `TopKCheckpoint`: the k best validation epochs by UA (or WA), weights only, as `epoch003-step000120.safetensors`
  files that feed checkpoint averaging. They hold the trained weights only (SERModule.on_save_checkpoint leaves
  out the frozen upstream parameters, which are the pretrained source's in every checkpoint). Its state
  (best_k_models) travels in last.ckpt, so a resumed fit keeps the same top-k.
- `last_checkpoint`: the full training state in last.ckpt after every validation, so a killed fold resumes there.
- `CheckpointFiles`: how both are written and read. A `.safetensors` path gets the weights as safetensors (no
  pickle); last.ckpt is torch.save'd through util.atomic (Lightning's own writer moves an fsspec temp file from the
  system temp folder, a copy into the real name across file systems: a kill mid-copy would truncate last.ckpt).
  Reads always use torch.load(weights_only=True). An evicted top-k file is deleted only once a last.ckpt that no
  longer names it is on disk: a crash in between must not leave a last.ckpt naming a deleted file.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from ..checkpoint import save_checkpoint
from ..errors import ConfigError, DataError
from ..util.atomic import atomic_file

MONITORS = ("ua", "wa")
VAL_SCORES = "serkit_val_scores"  # checkpoint entry (SERModule): the validation scores, for top-k file metadata


class TopKCheckpoint(ModelCheckpoint):
    FILE_EXTENSION = ".safetensors"  # CheckpointFiles writes these paths as safetensors

    def __init__(self, dirpath: str | Path, k: int, monitor: str):
        if monitor not in MONITORS:
            raise ConfigError(f"key 'train.monitor' is {monitor!r}; expected one of {', '.join(MONITORS)}")
        super().__init__(dirpath, "epoch{epoch:03d}-step{step:06d}", monitor=f"val_{monitor}", mode="max",
                         save_top_k=k, save_weights_only=True, auto_insert_metric_name=False,
                         save_on_train_epoch_end=False, enable_version_counter=False)

    def on_validation_end(self, trainer, pl_module) -> None:
        # Equal scores, earlier kept: ModelCheckpoint lets a later file in only when strictly better than the k-th,
        # but a better one then evicts the first saved of those tied at the k-th score. best_k_models is in saving
        # order, so pointing kth_best_model_path at the last saved of them makes it evict the latest instead.
        if len(self.best_k_models) == self.save_top_k:
            self.kth_best_model_path = [p for p, s in self.best_k_models.items() if s == self.kth_value][-1]
        super().on_validation_end(trainer, pl_module)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Kept files are looked up by name in this fold's folder: the run dir may have moved, and a last.ckpt must
        # not point averaging (or a deletion) anywhere else.
        def here(path: str) -> str:
            return os.path.join(self.dirpath, Path(str(path)).name) if path else path

        paths = {key: here(state_dict.get(key, "")) for key in ("best_model_path", "kth_best_model_path",
                                                                   "last_model_path")}
        best_k = {here(path): score for path, score in state_dict.get("best_k_models", {}).items()}
        super().load_state_dict({**state_dict, **paths, "dirpath": self.dirpath, "best_k_models": best_k})

    def on_fit_start(self, trainer, pl_module) -> None:
        # what a kill can leave: a top-k file written (or evicted) after the last last.ckpt, temp files of writes
        if trainer.is_global_zero and os.path.isdir(self.dirpath):
            for path in Path(self.dirpath).iterdir():
                if ((path.suffix == self.FILE_EXTENSION and str(path) not in self.best_k_models)
                        or (path.name.startswith(".") and path.name.endswith(".tmp"))):
                    path.unlink(missing_ok=True)

    def kept_paths(self) -> list[str]:
        """Kept files, best first; equal scores: the earlier first (the order averaging takes them in)."""
        return sorted(self.best_k_models, key=lambda path: -float(self.best_k_models[path]))


def last_checkpoint(dirpath: str | Path) -> ModelCheckpoint:
    """last.ckpt (full training state) after every validation. Not ModelCheckpoint(save_last=True): that writes
    last.ckpt only when a top-k file was written in the same step, and weights only when the top-k files are."""
    return ModelCheckpoint(dirpath, "last", save_top_k=1, save_on_train_epoch_end=False, enable_version_counter=False)


class CheckpointFiles(TorchCheckpointIO):
    """metadata: str -> str written into every top-k file (serkit.checkpoint wants CONFIG_HASH among them)."""

    def __init__(self, metadata: dict[str, str]):
        super().__init__()
        self.metadata = dict(metadata)
        self._evicted: list[Path] = []

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        path = Path(path)
        if path.suffix == TopKCheckpoint.FILE_EXTENSION:  # weights only: state_dict keys are "model.<key>"
            state = {key.removeprefix("model."): value for key, value in checkpoint["state_dict"].items()}
            scores = {name: f"{value:.6f}" for name, value in checkpoint.get(VAL_SCORES, {}).items()}
            save_checkpoint(state, path, {**self.metadata, **scores, "epoch": str(checkpoint["epoch"]),
                                          "step": str(checkpoint["global_step"])})
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as f:
            torch.save(checkpoint, f)
        for evicted in self._evicted:  # the last.ckpt just written no longer names them
            evicted.unlink(missing_ok=True)
        self._evicted.clear()

    def remove_checkpoint(self, path) -> None:
        self._evicted.append(Path(path))

    def load_checkpoint(self, path, map_location: Optional[Callable] = lambda storage, loc: storage,
                        weights_only: Optional[bool] = None) -> dict[str, Any]:
        try:  # a checkpoint is data: a pickle asking to build any other object (and so run code) is refused
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as e:
            match = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
            asked = f"it asks for {match.group(1)}" if match else str(e).strip().splitlines()[0][:200]
            raise DataError(f"refusing to load this checkpoint: it is not plain data ({asked}; torch.load with "
                            "weights_only=True loads tensors, numbers, strings and containers only). Delete it to "
                            "restart the fold from scratch", path) from None
        except (EOFError, RuntimeError) as e:
            raise DataError(f"checkpoint is damaged and cannot be read ({e}); delete it to restart the fold",
                            path) from None
