"""The train section of an experiment config (one fold's optimisation, augmentation and checkpointing).

Plain data, outside training/: a bundle's config.yaml holds it, and loading a bundle must not import training code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .data.wave_copies import DEFAULT_GAIN_DB, DEFAULT_SPEED, WaveCopies, check_wave_copies
from .errors import ConfigError

# what Lightning's Trainer accepts for precision (its aliases included), plus our "auto"
PRECISIONS = ("auto", "32", "32-true", "64", "64-true", "16", "16-mixed", "16-true", "bf16", "bf16-mixed",
              "bf16-true", "transformer-engine", "transformer-engine-float16")


@dataclass
class AugmentConfig:
    """time_masks: masks per utterance over time, each up to time_mask_width of its real frames (a fraction);
    channel_masks: masks over feature channels, each up to channel_mask_width of the channels; masked values
    are set to 0. mixup: alpha of the Beta distribution mixup draws lambda from (0: off; 0.2-0.4 is usual).
    wave_variants: fixed perturbed copies of each training clip (0: off; data/wave_copies.py); every epoch, each
    clip is used as it is or as one of its copies, uniformly (with train.refit the validation clips' copies join
    the refit's training). Copy k draws its speed factor (resampling: tempo and pitch), gain (dB) and white-noise
    SNR (dB; None: no noise) uniformly from `speed`, `gain_db` and `noise_snr_db`, seeded by the utterance id and
    k, so a feature cache encodes each copy once for every run. A range set while wave_variants is 0 is refused."""

    time_masks: int = 0
    time_mask_width: float = 0.1
    channel_masks: int = 0
    channel_mask_width: float = 0.1
    mixup: float = 0.0
    wave_variants: int = 0
    speed: list[float] = field(default_factory=lambda: list(DEFAULT_SPEED))
    gain_db: list[float] = field(default_factory=lambda: list(DEFAULT_GAIN_DB))
    noise_snr_db: list[float] | None = None

    def __post_init__(self):
        for key in ("time_masks", "channel_masks"):
            if getattr(self, key) < 0:
                raise ConfigError(f"key 'train.augment.{key}' is {getattr(self, key)}; expected 0 or more")
        for key in ("time_mask_width", "channel_mask_width"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"key 'train.augment.{key}' is {getattr(self, key)}; expected a fraction in [0, 1]")
        if self.mixup < 0:
            raise ConfigError(f"key 'train.augment.mixup' is {self.mixup}; expected 0 (off) or a positive alpha")
        check_wave_copies(self.wave_variants, self.speed, self.gain_db, self.noise_snr_db,
                          lambda key: f"key 'train.augment.{'wave_variants' if key == 'variants' else key}'")

    def wave_copies(self) -> WaveCopies | None:
        """The copies training draws from (None: off)."""
        if not self.wave_variants:
            return None
        return WaveCopies(self.wave_variants, list(self.speed), list(self.gain_db),
                          None if self.noise_snr_db is None else list(self.noise_snr_db))

    @property
    def masks_frames(self) -> bool:
        return (self.time_masks > 0 and self.time_mask_width > 0) or (
            self.channel_masks > 0 and self.channel_mask_width > 0)


@dataclass
class TrainConfig:
    """max_epochs: passes over the training set. lr_upstream / lr_downstream: peak learning rates of the two
    parameter groups (the paper fine-tunes the upstream far more gently than the head). lr_layer_decay: layer-wise
    decay of the upstream's rate (training/layer_decay.py): the top block at lr_upstream, each block below it
    this factor slower, the input embedding slowest (1: off; 0.7-0.9 is usual). warmup: fraction of all
    optimiser steps spent ramping up linearly; then linear decay to 0. grad_clip: max global L2 norm (0: off).
    accumulate: batches per optimiser step. precision: Lightning precision ("32", "bf16-mixed", "16-mixed") or
    "auto" (bf16-mixed on a GPU that has it, 16-mixed on other GPUs, 32 on CPU).
    top_k / monitor: checkpoints kept by validation "ua" or "wa" (the paper: 5, UA). average: also average the
    top-k into one model. keep_checkpoints: keep a fold's checkpoints/ folder (top-k weights files and
    last.ckpt, with the optimiser state) once the fold is finished, e.g. to `serkit average` them another way;
    False (default): removed once the fold's bundle and result.json are written (the bundle holds the model it
    reports; with large encoders they take GBs per fold). An unfinished fold keeps them either way (it resumes
    from them). deterministic: ask torch for deterministic kernels. accelerator/devices/strategy/
    num_nodes go to Lightning's Trainer as they are (DDP: strategy=ddp, devices=N).
    feature_cache: a folder (relative: to the working directory) where the frames of frozen (freeze "all")
    audio upstreams are cached, so each utterance is encoded once and later epochs, folds and runs only train
    the downstream (upstream/cache.py); with freeze "bottom:N" the frozen bottom's layers are cached and only
    the top blocks run; None (default): off, since "weighted" layers of a large encoder can take tens of GB.
    Trained upstreams (freeze "cnn" / "none") are never cached. feature_cache_dtype: "float16" (default) or "float32".
    label_smoothing: of the cross-entropy's targets (0: none). early_stopping: stop a fold after this many
    validation epochs without a better monitored score (0: off; the top-k kept so far are averaged as usual).
    augment: frame masks and mixup while training (training/augment.py), perturbed copies of the waveforms
    (data/wave_copies.py); all off by default.
    refit: once validation has chosen the top-k epochs, train a fresh model on train + valid for those epochs
    and test and bundle it instead (training/refit.py; one device; about twice a fold's training time).
    Every field is checked against its range when the config is built: a bad value names its key."""

    max_epochs: int = 10
    lr_upstream: float = 5e-5
    lr_downstream: float = 1e-3
    lr_layer_decay: float = 1.0
    weight_decay: float = 0.0
    warmup: float = 0.1
    grad_clip: float = 5.0
    accumulate: int = 1
    precision: str = "auto"
    top_k: int = 5
    monitor: str = "ua"
    average: bool = True
    keep_checkpoints: bool = False
    deterministic: bool = False
    accelerator: str = "auto"
    devices: str = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    log_every_n_steps: int = 10
    progress_bar: bool = True
    feature_cache: str | None = None
    feature_cache_dtype: str = "float16"
    label_smoothing: float = 0.0
    early_stopping: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    refit: bool = False

    def __post_init__(self):
        ranges = {  # key -> (check, what is expected)
            "max_epochs": (self.max_epochs >= 1, "1 or more"),
            "lr_upstream": (self.lr_upstream >= 0, "0 or more"),
            "lr_downstream": (self.lr_downstream > 0, "a positive learning rate"),
            "lr_layer_decay": (0 < self.lr_layer_decay <= 1, "a factor in (0, 1]; 1: every block at lr_upstream"),
            "weight_decay": (self.weight_decay >= 0, "0 or more"),
            "warmup": (0 <= self.warmup < 1, "a fraction of the optimiser steps in [0, 1)"),
            "grad_clip": (self.grad_clip >= 0, "0 (off) or a positive norm"),
            "accumulate": (self.accumulate >= 1, "1 or more batches per optimiser step"),
            "precision": (str(self.precision) in PRECISIONS, f"one of {', '.join(PRECISIONS)}"),
            "top_k": (self.top_k >= 1, "1 or more checkpoints"),
            "num_nodes": (self.num_nodes >= 1, "1 or more"),
            "log_every_n_steps": (self.log_every_n_steps >= 1, "1 or more"),
            "label_smoothing": (0 <= self.label_smoothing < 1, "a fraction in [0, 1)"),
            "early_stopping": (self.early_stopping >= 0, "0 (off) or a patience in validation epochs"),
            "devices": (str(self.devices) in ("auto", "-1") or not str(self.devices).isdigit()
                        or int(self.devices) >= 1, "auto, -1, a count of 1 or more, or a list of device ids"),
        }
        for key, (ok, expected) in ranges.items():
            if not ok:
                raise ConfigError(f"key 'train.{key}' is {getattr(self, key)!r}; expected {expected}")
