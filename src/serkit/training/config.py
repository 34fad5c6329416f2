"""The train section of an experiment config (one fold's optimisation and checkpointing)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    """max_epochs: passes over the training set. lr_upstream / lr_downstream: peak learning rates of the two
    parameter groups (the paper fine-tunes the upstream far more gently than the head). warmup: fraction of all
    optimiser steps spent ramping up linearly; then linear decay to 0. grad_clip: max global L2 norm (0: off).
    accumulate: batches per optimiser step. precision: Lightning precision ("32", "bf16-mixed", "16-mixed") or
    "auto" (bf16-mixed on a GPU that has it, 16-mixed on other GPUs, 32 on CPU).
    top_k / monitor: checkpoints kept by validation "ua" or "wa" (the paper: 5, UA). average: also average the
    top-k into one model. deterministic: ask torch for deterministic kernels. accelerator/devices/strategy/
    num_nodes go to Lightning's Trainer as they are (DDP: strategy=ddp, devices=N).
    feature_cache: a folder (relative: to the working directory) where the frames of frozen (freeze "all")
    audio upstreams are cached, so each utterance is encoded once and later epochs, folds and runs only train
    the downstream (upstream/cache.py); None (default): off, since "weighted" layers of a large encoder can
    take tens of GB. Trained upstreams are never cached. feature_cache_dtype: "float16" (default) or "float32"."""

    max_epochs: int = 10
    lr_upstream: float = 5e-5
    lr_downstream: float = 1e-3
    weight_decay: float = 0.0
    warmup: float = 0.1
    grad_clip: float = 5.0
    accumulate: int = 1
    precision: str = "auto"
    top_k: int = 5
    monitor: str = "ua"
    average: bool = True
    deterministic: bool = False
    accelerator: str = "auto"
    devices: str = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    log_every_n_steps: int = 10
    progress_bar: bool = True
    feature_cache: str | None = None
    feature_cache_dtype: str = "float16"
