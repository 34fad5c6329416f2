"""One fold of the paper's protocol: fine-tune, keep the top-k checkpoints, average them, evaluate, bundle.

Read top to bottom: `run_fold` is the whole recipe. A finished fold leaves `result.json` and is skipped on
the next call; an interrupted one resumes from `checkpoints/last.ckpt` (Lightning restores the optimiser,
scheduler, epoch, the top-k ModelCheckpoint's state and our RNG states from it). Neither happens under
another config or split than the fold's own: that is refused (training/resume_check.py). Once `result.json`
is written, the fold's `checkpoints/` (top-k files, last.ckpt) is removed unless `train.keep_checkpoints`
(nothing reads it any more: the bundle holds the reported model); a crash between the two leaves a finished
fold whose next call removes them. With `train.refit`, a second fit on train + valid follows the first and its
model is the one tested and bundled (training/refit.py).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from ..bundle import save_bundle
from ..checkpoint import CONFIG_HASH, load_state_dict, load_trained_state_dict, read_metadata
from ..config import ExperimentConfig, config_hash, save_config
from ..data.corpora import FoldSplit
from ..errors import ConfigError, DataError
from ..evaluation.metrics import Metrics
from ..evaluation.prediction_table import SplitPredictions, read_predictions, write_predictions
from ..model import SERModel, build_model
from ..upstream.cache import install_feature_cache, installed_caches
from ..util.atomic import write_json
from .averaging import average_checkpoints
from .checkpoints import CheckpointFiles, TopKCheckpoint, last_checkpoint
from .datamodule import FoldDataModule
from .fit_log import FitLog, MetricsCSV
from .module import SERModule
from .predictions import evaluate_splits
from .progress import ProgressLines
from .refit import refit_and_test, require_one_process
from .resume_check import check_fold_record
from .rng_state import RNGState


@dataclass
class FoldResult:
    """Metrics of one fold: `best` = the single best checkpoint, `averaged` = the top-k average (None when
    averaging is off); each maps split name ("valid", "test") -> Metrics. `refit` (train.refit only): {"test":
    Metrics} of the model trained again on train + valid (training/refit.py). `reported` names the model that
    went into the bundle and the tables: "refit", "averaged" or "best". `chosen_epochs`: the epochs (0-based,
    best first) whose checkpoints make the reported model; None in results written before it was recorded."""

    fold: int
    best: dict[str, Metrics]
    averaged: dict[str, Metrics] | None
    reported: str
    refit: dict[str, Metrics] | None = None
    chosen_epochs: list[int] | None = None

    @property
    def test(self) -> Metrics:
        return {"refit": self.refit, "averaged": self.averaged, "best": self.best}[self.reported]["test"]

    def to_dict(self) -> dict:
        return {"fold": self.fold, "reported": self.reported, "chosen_epochs": self.chosen_epochs,
                **{name: None if part is None else {k: m.to_dict() for k, m in part.items()}
                   for name, part in (("best", self.best), ("averaged", self.averaged), ("refit", self.refit))}}

    @classmethod
    def from_dict(cls, d: dict) -> "FoldResult":
        def parts(part: dict | None) -> dict[str, Metrics] | None:
            return None if part is None else {k: Metrics.from_dict(m) for k, m in part.items()}

        # best and averaged are required; refit and chosen_epochs are absent from folds before those options
        return cls(fold=d["fold"], reported=d["reported"], best=parts(d["best"]), averaged=parts(d["averaged"]),
                   refit=parts(d.get("refit")), chosen_epochs=d.get("chosen_epochs"))


# Lightning warnings that are expected here and say nothing actionable: a frozen upstream is in eval mode
# on purpose; small folds have fewer batches than the logging interval; a resumed fold's checkpoints folder is
# not empty. Silenced while a fold runs only.
EXPECTED_WARNINGS = (r"Found \d+ module\(s\) in eval mode", r"The number of training batches .* logging interval",
                     r".*isinstance\(treespec, LeafSpec\)", r"Checkpoint directory .* exists and is not empty")
# a refit fold's record of its first fit (FirstFit), so that a fold killed during the refit does not fit again
TRAIN_ONLY = "train_only.json"
# metadata of every top-k file: what a reader of the file alone must know (the fold's bundle is complete)
OMITS = {"omits": "frozen upstream parameters (the pretrained source's; the fold's model bundle holds them)"}


def run_fold(cfg: ExperimentConfig, split: FoldSplit, labels: list[str], fold_dir: Path,
             progress: str | None = None) -> FoldResult | None:
    """Train and evaluate one fold in `fold_dir`. Returns None on non-zero DDP ranks (rank 0 evaluates).
    progress: a name such as "fold 2/6" to print progress lines under (training/progress.py); None: quiet."""
    with warnings.catch_warnings():
        for message in EXPECTED_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        return _run_fold(cfg, split, labels, Path(fold_dir), progress)


def _run_fold(cfg: ExperimentConfig, split: FoldSplit, labels: list[str], fold_dir: Path,
              progress: str | None) -> FoldResult | None:
    result_path = fold_dir / "result.json"
    ckpt_dir = fold_dir / "checkpoints"
    check_fold_record(fold_dir, cfg, split)  # run_cv checked every fold already; run_fold may be called alone
    if result_path.is_file():
        if not cfg.train.keep_checkpoints and _removal_was_asked(fold_dir):  # a crash came before the removal
            _remove_checkpoints(ckpt_dir)
        return FoldResult.from_dict(json.loads(result_path.read_text()))
    fold_dir.mkdir(parents=True, exist_ok=True)
    started = _cpu_and_wall()
    if cfg.train.refit and (fold_dir / TRAIN_ONLY).is_file():  # killed during its refit: the first fit is done
        first = FirstFit.read(fold_dir, config_hash(cfg.model))
        first.check_split(fold_dir, split)
        started = (started[0] - first.cpu_seconds, started[1] - first.wall_seconds)  # cost.json counts both fits
    else:
        first = _first_fit(cfg, split, labels, fold_dir, progress)
        if first is None:
            return None
        first.cpu_seconds, first.wall_seconds = (now - then for now, then in zip(_cpu_and_wall(), started))
        if cfg.train.refit:
            first.write(fold_dir, labels, config_hash(cfg.model))
            if not cfg.train.keep_checkpoints:  # nothing reads them now: last.ckpt can be GBs
                _remove_checkpoints(ckpt_dir)
    result, predictions, model = first.result, first.predictions, first.model
    if cfg.train.refit:
        first.model = model = None  # not used again: the refit must not train beside it on the GPU
        model, test, predictions["test"] = refit_and_test(
            cfg, split, labels, fold_dir, result.chosen_epochs, _trainer_options(cfg), progress,
            keep_snapshots=cfg.train.keep_checkpoints)
        result.refit, result.reported = {"test": test}, "refit"
    save_bundle(fold_dir / "model", model.cpu(), cfg, labels, metrics=result.to_dict())
    write_predictions(fold_dir / "predictions.csv", labels, predictions)  # the bundled model's, for ensembles
    cpu, wall = (now - then for now, then in zip(_cpu_and_wall(), started))
    write_json(fold_dir / "cost.json", {  # this process's share (a fold resumed mid-fit: since the resume)
        "cpu_seconds": round(cpu, 1), "wall_seconds": round(wall, 1), "epochs": first.epochs_run,
        **({"refit_epochs": max(result.chosen_epochs) + 1} if cfg.train.refit else {}),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "feature_cache": None if not cfg.train.feature_cache else [c.stats() for c in installed_caches(model)]})
    write_json(result_path, result.to_dict())  # its presence marks the fold as finished
    if not cfg.train.keep_checkpoints:  # only after result.json: a crash before it must still resume
        _remove_checkpoints(ckpt_dir)
    return result


@dataclass
class FirstFit:
    """What the fold's fit on its training utterances left: its result (with the epochs its top-k chose), its
    validation and test predictions, the epochs it ran and its cost. model: the reported model (None when read
    back from TRAIN_ONLY, which a refit does not need)."""

    result: FoldResult
    predictions: dict[str, SplitPredictions]
    epochs_run: int
    model: SERModel | None = None
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0

    def check_split(self, fold_dir: Path, split: FoldSplit) -> None:
        """The first fit's predictions must be of this split's validation and test utterances: a record without
        split.json (seeded from an archived run, scripts/seed_refit.py) is checked by them, and is given the
        split.json that later runs compare against (training/resume_check.py)."""
        for name in ("valid", "test"):
            recorded, now = set(self.predictions[name].ids), {u.id for u in getattr(split, name)}
            if recorded != now:
                raise ConfigError(f"{fold_dir / TRAIN_ONLY}: its first fit predicted {len(recorded)} {name} "
                                  f"utterances, this split has {len(now)} ({len(recorded ^ now)} differ): another "
                                  "corpus or folds option; delete the fold folder to train it afresh")
        if not (fold_dir / "split.json").is_file():
            write_json(fold_dir / "split.json", {name: [u.id for u in getattr(split, name)]
                                                 for name in ("train", "valid", "test")})

    def write(self, fold_dir: Path, labels: list[str], model_hash: str) -> None:
        write_predictions(fold_dir / "predictions.csv", labels, self.predictions)
        write_json(fold_dir / TRAIN_ONLY, {  # written last: marks the pair done
            "result": self.result.to_dict(), "epochs_run": self.epochs_run, CONFIG_HASH: model_hash,
            "cpu_seconds": round(self.cpu_seconds, 1), "wall_seconds": round(self.wall_seconds, 1)})

    @classmethod
    def read(cls, fold_dir: Path, model_hash: str) -> "FirstFit":
        path = fold_dir / TRAIN_ONLY
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
            result = FoldResult.from_dict(recorded["result"])
            if recorded[CONFIG_HASH] != model_hash:
                raise ConfigError(f"{path}: its first fit was trained with another model config (the config was "
                                  "changed since); delete the fold folder to train it afresh")
            _, predictions = read_predictions(fold_dir / "predictions.csv")
            return cls(result, predictions, recorded["epochs_run"], cpu_seconds=recorded["cpu_seconds"],
                       wall_seconds=recorded["wall_seconds"])
        except (ValueError, KeyError, TypeError) as error:  # ValueError: bad JSON or not UTF-8
            raise DataError(f"not a first-fit record ({type(error).__name__}: {error}); delete it to fit the fold "
                            "again", path) from None


def _first_fit(cfg: ExperimentConfig, split: FoldSplit, labels: list[str], fold_dir: Path,
               progress: str | None) -> FirstFit | None:
    """Fit on the training utterances, validating each epoch; score the best and the averaged top-k on
    valid and test. None on non-zero DDP ranks."""
    ckpt_dir = fold_dir / "checkpoints"
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model = build_model(cfg.model, num_classes=len(labels))
    if cfg.train.feature_cache:  # frozen upstreams' frames: computed once, read from disk afterwards
        install_feature_cache(model, cfg.train.feature_cache, cfg.train.feature_cache_dtype)
    module = SERModule(model, cfg.train, labels)
    datamodule = FoldDataModule(split, labels, cfg.data, seed=cfg.seed, copies=cfg.train.augment.wave_copies(),
                                epochs=cfg.train.max_epochs)
    topk = TopKCheckpoint(ckpt_dir, k=cfg.train.top_k, monitor=cfg.train.monitor)
    try:
        trainer = L.Trainer(
            **_trainer_options(cfg),
            default_root_dir=fold_dir,
            max_epochs=cfg.train.max_epochs,
            # RNGState: a resumed fit continues the uninterrupted run's random streams (Lightning does not save them).
            # Lightning runs the ModelCheckpoints last, in this order: last.ckpt holds this validation's top-k state.
            callbacks=[FitLog(fold_dir), RNGState(), *_early_stopping(cfg.train),
                       *([ProgressLines(progress)] if progress else []), topk, last_checkpoint(ckpt_dir)],
            # top-k files as safetensors weights, last.ckpt renamed into place (never half written),
            # weights-only loads
            plugins=[CheckpointFiles({CONFIG_HASH: config_hash(cfg.model), **OMITS})],
            logger=_loggers(fold_dir),
            num_sanity_val_steps=0,
        )
    except (MisconfigurationException, ValueError) as error:  # an accelerator, device or strategy it cannot use
        train = cfg.train
        raise ConfigError(f"train.accelerator={train.accelerator!r}, train.devices={train.devices!r}, train.strategy="
                          f"{train.strategy!r}: Lightning cannot train so here ({str(error).splitlines()[0]})") from None
    if cfg.train.refit:  # refused before the fit, not after hours of it
        require_one_process(trainer)
    if trainer.is_global_zero:
        save_config(cfg, fold_dir / "config.yaml")
        write_json(fold_dir / "split.json", {name: [u.id for u in getattr(split, name)]
                                             for name in ("train", "valid", "test")})
    resume = ckpt_dir / "last.ckpt"
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume if resume.is_file() else None, weights_only=True)
    if not trainer.is_global_zero:
        return None

    # scored where it trained (a GPU: Whisper's 30 s windows take minutes per fold on a CPU); bundled from the CPU
    model.to(trainer.strategy.root_device)
    loaders = {"valid": datamodule.eval_dataloader(split.valid), "test": datamodule.eval_dataloader(split.test)}
    # top-k files hold the trained weights; frozen ones are the model's own from its source
    kept = topk.kept_paths()
    if not kept:
        raise ConfigError("no checkpoint was kept: did validation run? (the validation set may be empty)")
    best_state = load_state_dict(kept[0])
    load_trained_state_dict(model, best_state, f"best checkpoint {kept[0]}")
    best, predictions = evaluate_splits(model, loaders, labels)
    averaged = None
    if cfg.train.average:
        load_trained_state_dict(model, average_checkpoints(kept), "averaged checkpoints")
        averaged, predictions = evaluate_splits(model, loaders, labels)
    else:
        load_trained_state_dict(model, best_state)
    chosen = [int(read_metadata(path)["epoch"]) for path in (kept if cfg.train.average else kept[:1])]
    result = FoldResult(split.fold, best, averaged, "averaged" if averaged is not None else "best",
                        chosen_epochs=chosen)
    return FirstFit(result, predictions, trainer.current_epoch, model)


def _remove_checkpoints(ckpt_dir: Path) -> None:
    """Delete a finished fold's top-k files, last.ckpt and temp files a kill left, then the folder if that
    emptied it (anything else put there is left alone). Every rank may call it: missing files are fine."""
    if not ckpt_dir.is_dir():
        return
    for path in [*ckpt_dir.glob("*.safetensors"), ckpt_dir / "last.ckpt", *ckpt_dir.glob(".*.tmp")]:
        path.unlink(missing_ok=True)
    try:
        ckpt_dir.rmdir()
    except OSError:  # not empty
        pass


def _removal_was_asked(fold_dir: Path) -> bool:
    """True when the config the fold was trained with (its config.yaml) says train.keep_checkpoints: false.
    A fold trained with keep_checkpoints: true, or by a serkit that kept them always (no such key), keeps
    them when the command is run again without the option."""
    try:
        recorded = yaml.safe_load((fold_dir / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):  # ValueError: not UTF-8
        return False
    train = recorded.get("train") if isinstance(recorded, dict) else None
    return isinstance(train, dict) and train.get("keep_checkpoints") is False


def _cpu_and_wall() -> tuple[float, float]:
    """(CPU seconds of this process, all threads and finished children, user + system; wall seconds)."""
    import resource
    import time

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime, time.monotonic()


def _early_stopping(train_cfg) -> list:
    """Lightning's EarlyStopping on the monitored validation score (its state travels in last.ckpt)."""
    if not train_cfg.early_stopping:
        return []
    from lightning.pytorch.callbacks import EarlyStopping

    return [EarlyStopping(monitor=f"val_{train_cfg.monitor}", mode="max", patience=train_cfg.early_stopping,
                          check_on_train_epoch_end=False)]


def _trainer_options(cfg: ExperimentConfig) -> dict:
    """Trainer arguments that the fold's fit and its refit share."""
    return dict(
        accelerator=cfg.train.accelerator,
        devices=_devices(cfg.train.devices),
        strategy=cfg.train.strategy,
        num_nodes=cfg.train.num_nodes,
        precision=_precision(cfg.train.precision),
        gradient_clip_val=cfg.train.grad_clip or None,
        accumulate_grad_batches=cfg.train.accumulate,
        deterministic=cfg.train.deterministic,
        log_every_n_steps=cfg.train.log_every_n_steps,
        enable_progress_bar=cfg.train.progress_bar,
        enable_model_summary=False,
        # Our bucketing batch sampler shards per rank itself; Lightning must not wrap it.
        use_distributed_sampler=False,
    )


def _devices(devices: str):
    return int(devices) if str(devices).isdigit() else devices


def _precision(precision: str) -> str:
    if precision != "auto":
        return precision
    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def _loggers(fold_dir: Path) -> list:
    loggers = [MetricsCSV(fold_dir)]  # keeps a resumed fold's earlier rows
    try:  # TensorBoard logs when the tensorboard package is installed (optional dependency)
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(fold_dir, name="tensorboard", version=""))
    except ImportError:
        pass
    return loggers
