"""Refit (`train.refit`): train the fold's recipe again on its training + validation utterances.

A fold keeps its validation speakers out of training so that they can choose the checkpoints. On a small corpus
(RAVDESS: 16 training actors, 4 validation) that costs the model a fifth of its speakers. Refit keeps the
choice and gives the speakers back: once the usual fit has chosen its top-k epochs on validation, a fresh model
(same seed, same config, same learning-rate schedule over `max_epochs`) trains on train + valid; its weights at
the end of those same epochs are averaged (or, with `average: false`, the best epoch's taken) and that model is
the one tested and bundled. Validation plays no part in the second fit (nothing is left to choose), so its
metrics and predictions stay the first fit's: `serkit ensemble --select` still weighs out-of-sample predictions.
The probe's `--refit` does the same for the logistic regression (baselines/probe.py).

The refit is not resumable within itself: a fold killed during it starts the refit again (the first fit's
outcome, in `train_only.json` and `predictions.csv`, is kept; what the killed refit saved is deleted first).
One device only: a DDP run refuses the option, before the first fit and again before the refit.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback

from ..checkpoint import CONFIG_HASH, load_trained_state_dict, save_checkpoint, trained_state_dict
from ..config import ExperimentConfig, config_hash
from ..data.corpora import FoldSplit
from ..errors import ConfigError
from ..evaluation.metrics import Metrics
from ..evaluation.prediction_table import SplitPredictions
from ..model import SERModel, build_model
from ..upstream.cache import install_feature_cache
from .averaging import average_checkpoints
from .datamodule import FoldDataModule
from .fit_log import MetricsCSV
from .module import SERModule
from .predictions import evaluate_splits
from .progress import ProgressLines


class EpochSnapshots(Callback):
    """Saves the trained weights at the end of each epoch in `epochs` (0-based) to `folder`, and stops the fit
    after the last of them. `paths()`: the files in the order `epochs` gave (best first)."""

    def __init__(self, folder: Path, epochs: list[int], metadata: dict[str, str]):
        self.folder, self.epochs, self.metadata = folder, list(epochs), metadata

    def path(self, epoch: int) -> Path:
        return self.folder / f"epoch{epoch:03d}.safetensors"

    def paths(self) -> list[Path]:
        return [self.path(epoch) for epoch in self.epochs]

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: SERModule) -> None:
        epoch = trainer.current_epoch
        if epoch in self.epochs:
            save_checkpoint(trained_state_dict(pl_module.model), self.path(epoch),
                            {**self.metadata, "epoch": str(epoch)})
        if epoch >= max(self.epochs):
            trainer.should_stop = True


def require_one_process(trainer: L.Trainer) -> None:
    if trainer.world_size > 1:
        raise ConfigError(f"train.refit runs on one device, but this fit has {trainer.world_size} processes; "
                          "set train.devices=1 or leave refit off")


def refit_and_test(cfg: ExperimentConfig, split: FoldSplit, labels: list[str], fold_dir: Path, epochs: list[int],
                   trainer_options: dict, progress: str | None = None, keep_snapshots: bool = False
                   ) -> tuple[SERModel, Metrics, SplitPredictions]:
    """Train a fresh model on split.train + split.valid and average its weights at `epochs` (0-based, best
    first). trainer_options: the first fit's Trainer arguments (precision, accelerator, clipping, ...).
    keep_snapshots: leave the per-epoch weights in `fold_dir/refit/checkpoints` (train.keep_checkpoints).
    -> (the model, on the CPU; its test metrics; its test predictions)."""
    if not epochs:
        raise ConfigError("train.refit: the first fit chose no epoch to refit to")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model = build_model(cfg.model, num_classes=len(labels))
    if cfg.train.feature_cache:
        install_feature_cache(model, cfg.train.feature_cache, cfg.train.feature_cache_dtype)
    joined = FoldSplit(split.fold, train=[*split.train, *split.valid], valid=[], test=split.test)
    datamodule = FoldDataModule(joined, labels, cfg.data, seed=cfg.seed, copies=cfg.train.augment.wave_copies(),
                                epochs=cfg.train.max_epochs)
    folder = fold_dir / "refit"
    shutil.rmtree(folder / "checkpoints", ignore_errors=True)  # a killed refit's: never averaged into this one
    snapshots = EpochSnapshots(folder / "checkpoints", epochs, {CONFIG_HASH: config_hash(cfg.model)})
    trainer = L.Trainer(
        **trainer_options,
        default_root_dir=folder,
        # the first fit's max_epochs: the learning-rate schedule has the same shape; EpochSnapshots stops it early
        max_epochs=cfg.train.max_epochs,
        limit_val_batches=0,  # nothing to validate on: the validation speakers are training data now
        callbacks=[snapshots, *([ProgressLines(f"{progress} refit", epochs=max(epochs) + 1)] if progress else [])],
        logger=[MetricsCSV(folder)],
        enable_checkpointing=False,
    )
    require_one_process(trainer)
    trainer.fit(SERModule(model, cfg.train, labels), datamodule=datamodule)
    paths = snapshots.paths()
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:  # the refit ended before an epoch the first fit chose (it cannot, unless something stopped it)
        raise RuntimeError(f"train.refit: the second fit ended before saving {missing}")
    load_trained_state_dict(model, average_checkpoints(paths), f"refit checkpoints {folder}")
    model.to(trainer.strategy.root_device)
    metrics, predictions = evaluate_splits(model, {"test": datamodule.eval_dataloader(split.test)}, labels)
    if not keep_snapshots:
        shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    return model.cpu(), metrics["test"], predictions["test"]
