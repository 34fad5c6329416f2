"""Training-loop overhead: serkit's Lightning training step vs. a bare PyTorch loop on the same model and batches.

Usage: python benchmarks/train_overhead.py [--steps 30] [--encoder tiny|small] [--threads 1] [--out FILE]

Both sides train a copy of the same SERModel (a random wav2vec2: serkit's tiny test stand-in, or with
--encoder small a bigger one; freeze "cnn", weighted layers -> mean pooling -> linear: the paper's recipe at
toy size) on the same pre-built batches, so they do the same arithmetic; what differs is the loop around it.
- serkit: SERModule through Lightning's Trainer.fit, with the Trainer arguments, callbacks (top-k weights,
  fit log, RNG state, last.ckpt), checkpoint plugin and CSV logger that training/fold.py's run_fold gives
  it, with TrainConfig's defaults (gradient clipping at 5, warm-up + linear decay, logging every 10 steps);
  once with the progress bar on (the default) and once off (train.progress_bar=false). No validation.
- bare loop: zero_grad, forward, cross-entropy, backward, clip_grad_norm_(5) (so both clip), AdamW step,
  LambdaLR step with the same schedule and the same two parameter groups, every module in the train/eval
  mode it had in serkit's fit (so dropout and SpecAugment act alike on both sides).
Measured: the time from one step's start to the next's (data fetch, hooks, logging, everything), median over
the steps after --skip-steps, then median over --repeats fits. Goal (issue 6): serkit <= 1.1x the bare loop.
The fixed cost per step (serkit - bare, in ms) does not grow with the model, so a real encoder's much longer
step makes the ratio smaller than this tiny model's.
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import _common

GOAL = 1.1
LABELS = ["neu", "hap", "ang", "sad"]


def build_model(tmp: Path, seed: int, family: str, size: str = "tiny"):
    """SERModel over a random encoder, as the paper's configs build it (freeze cnn, weighted layers)."""
    import torch

    from serkit.config import load_config
    from serkit.model import build_model as build

    source = _common.save_speech_model(tmp / "encoder", family, size, seed)
    cfg = load_config(_common.tiny_bundle_config({"name": "hf", "source": str(source), "layers": "weighted",
                                                  "freeze": "cnn"}))
    torch.manual_seed(seed)
    return build(cfg.model, num_classes=len(LABELS)), cfg


def make_batches(steps: int, batch_size: int, seconds: float, seed: int) -> list:
    """`steps` Batches of `batch_size` speech-like clips of 0.8-1.0 x `seconds` (zero-padded, as the loader pads)."""
    import torch

    from serkit.data.batch import Batch, pad_waves

    rng = np.random.default_rng(seed)
    batches = []
    for step in range(steps):
        waves = [torch.from_numpy(_common.voice_like(seconds * rng.uniform(0.8, 1.0), seed * 10_000 + step * 100 + i))
                 for i in range(batch_size)]
        wavs, wav_lens = pad_waves(waves)
        labels = torch.from_numpy(rng.integers(0, len(LABELS), batch_size))
        batches.append(Batch(wavs, wav_lens, labels, [f"s{step}_{i}" for i in range(batch_size)]))
    return batches


# the train/eval mode of every module of the model during serkit's fit (recorded at its first step): the bare
# loop trains in the same modes, so both sides do the same arithmetic (dropout, SpecAugment) whatever they are
MODES: list[bool] = []


class StepClock:
    """perf_counter() at the start of every step; `intervals(skip)`: seconds between consecutive starts."""

    def __init__(self):
        self.starts: list[float] = []

    def tick(self) -> None:
        self.starts.append(time.perf_counter())

    def step_seconds(self, skip: int) -> float:
        intervals = np.diff(self.starts)[skip:]
        return float(np.median(intervals))


def run_serkit(model, cfg, batches: list, tmp: Path, progress_bar: bool, skip: int) -> float:
    """Trainer.fit of SERModule over `batches` (one epoch), with run_fold's Trainer set-up -> seconds per step."""
    import lightning as L
    from lightning.pytorch.callbacks import Callback
    from torch.utils.data import DataLoader

    from serkit.config import config_hash
    from serkit.training.checkpoints import CheckpointFiles, TopKCheckpoint, last_checkpoint
    from serkit.training.fit_log import FitLog, MetricsCSV
    from serkit.training.module import SERModule
    from serkit.training.rng_state import RNGState

    _common.quiet_lightning()
    clock = StepClock()

    class Clock(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            clock.tick()
            if not MODES:
                MODES.extend(m.training for m in pl_module.model.modules())

        def on_train_end(self, trainer, pl_module):
            clock.tick()  # the end of the last step

    fold_dir = Path(tempfile.mkdtemp(dir=tmp, prefix="fold_"))
    train = copy.deepcopy(cfg.train)
    train.progress_bar = progress_bar
    module = SERModule(model, train, LABELS)
    ckpt_dir = fold_dir / "checkpoints"
    # the Trainer of training/fold.py run_fold (kept in step by hand), on the CPU, with 32-bit precision
    trainer = L.Trainer(
        default_root_dir=fold_dir, max_epochs=1, accelerator="cpu", devices=1, precision="32-true",
        gradient_clip_val=train.grad_clip or None, accumulate_grad_batches=train.accumulate,
        deterministic=train.deterministic,
        callbacks=[FitLog(fold_dir), RNGState(), Clock(), TopKCheckpoint(ckpt_dir, k=train.top_k, monitor=train.monitor),
                   last_checkpoint(ckpt_dir)],
        plugins=[CheckpointFiles({"config_hash": config_hash(cfg.model)})],
        logger=[MetricsCSV(fold_dir)], log_every_n_steps=train.log_every_n_steps,
        enable_progress_bar=train.progress_bar, enable_model_summary=False, use_distributed_sampler=False,
        num_sanity_val_steps=0, limit_val_batches=0,
    )
    loader = DataLoader(batches, batch_size=None, collate_fn=lambda batch: batch)
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):  # the progress bar's lines
        trainer.fit(module, train_dataloaders=loader)
    return clock.step_seconds(skip)


def run_bare(model, cfg, batches: list, skip: int) -> float:
    """The textbook loop on the same model, optimiser, schedule and clipping -> seconds per step."""
    import torch
    import torch.nn.functional as F

    from serkit.training.schedule import warmup_linear_decay

    train = cfg.train
    groups = model.parameter_groups()
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in groups["upstream"] if p.requires_grad], "lr": train.lr_upstream},
         {"params": [p for p in groups["downstream"] if p.requires_grad], "lr": train.lr_downstream}],
        weight_decay=train.weight_decay,
    )
    total = len(batches)
    warmup = int(round(train.warmup * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_linear_decay(step, total, warmup))
    clock = StepClock()
    model.train()
    if MODES:  # the modes serkit's fit trained in (see MODES)
        for module, training in zip(model.modules(), MODES):
            module.training = training
    for batch in batches:
        clock.tick()
        optimizer.zero_grad(set_to_none=True)
        logits = model(batch.wavs, batch.wav_lens)
        loss = F.cross_entropy(logits.float(), batch.labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimizer.step()
        scheduler.step()
    clock.tick()
    return clock.step_seconds(skip)


def _eval_mode_modules(model) -> int:
    """How many modules of the model's trainable (not frozen) upstreams were in eval mode in serkit's fit."""
    if not MODES:
        return 0
    modes = dict(zip(model.modules(), MODES))
    return sum(not modes[m] for upstream in model.upstreams if not upstream.frozen for m in upstream.modules())


def main() -> int:
    p = _common.parser(__doc__, repeats=5, warmup=1, repeats_help="timed fits per side (the median is reported)",
                       warmup_help="untimed fits per side first")
    p.add_argument("--steps", type=int, default=30, help="optimiser steps per fit")
    p.add_argument("--skip-steps", type=int, default=5, help="first steps of each fit left out of the median")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--clip-seconds", type=float, default=3.0, help="longest clip of a batch (others 0.8-1.0x)")
    p.add_argument("--family", default="wav2vec2", choices=("wav2vec2", "hubert", "wavlm", "data2vec-audio"),
                   help="random encoder family (serkit.upstream.tiny)")
    p.add_argument("--encoder", default="tiny", choices=_common.ENCODER_SIZES,
                   help="encoder size: serkit's tiny test stand-in, or a small one (hidden 256, 4 layers) whose "
                        "longer step shows how the fixed per-step cost weighs less")
    args = p.parse_args()
    _common.setup(args)
    if args.steps <= args.skip_steps + 1:
        sys.exit("--steps must exceed --skip-steps + 1")

    with tempfile.TemporaryDirectory(prefix="serkit_bench_train_") as tmp:
        tmp = Path(tmp)
        model, cfg = build_model(tmp, args.seed, args.family, args.encoder)
        batches = make_batches(args.steps, args.batch_size, args.clip_seconds, args.seed)
        initial = copy.deepcopy(model)

        def side(run):
            results = []

            def call():
                results.append(run(copy.deepcopy(initial)))  # every fit starts from the same weights
            return call, results

        bare, bare_s = side(lambda m: run_bare(m, cfg, batches, args.skip_steps))
        quiet, quiet_s = side(lambda m: run_serkit(m, cfg, batches, tmp, False, args.skip_steps))
        default, default_s = side(lambda m: run_serkit(m, cfg, batches, tmp, True, args.skip_steps))
        # serkit first: the bare loop copies the module modes its first fit recorded
        _common.time_sides({"serkit": default, "serkit quiet": quiet, "bare": bare}, args.repeats, args.warmup)
        # time_sides timed whole fits (set-up included); the per-step figures are what the sides reported
        bare_s, quiet_s, default_s = (r[args.warmup:] for r in (bare_s, quiet_s, default_s))

    base = _common.median(bare_s)
    table = _common.Table(
        f"Training-loop overhead: {_common.encoder_description(args.family, args.encoder)}, batch {args.batch_size} x "
        f"<= {args.clip_seconds:g} s, {args.steps} steps per fit",
        ["loop", "ms per step", "overhead, ms per step", "ratio to bare loop", "goal", "met"],
    )
    table.add("bare PyTorch loop (baseline)", _common.spread([1000 * s for s in bare_s]), "-", "1.00x", "", "")
    for name, seconds in (("serkit: SERModule + Trainer.fit (progress bar on: the default)", default_s),
                          ("serkit: the same, train.progress_bar=false", quiet_s)):
        step = _common.median(seconds)
        table.add(name, _common.spread([1000 * s for s in seconds]), f"{1000 * (step - base):.1f}",
                  f"{step / base:.2f}x", f"<= {GOAL}x", _common.verdict(step / base <= GOAL))
    eval_modules = _eval_mode_modules(initial)
    if eval_modules:
        table.notes.append(
            f"{eval_modules} modules of the trained (freeze 'cnn') encoder were in eval mode during serkit's fit "
            "(no dropout, no SpecAugment): Lightning >= 2.2 does not call train() and from_pretrained returns "
            "an eval-mode model; the bare loop uses the same modes, so both do the same arithmetic")
    table.notes += [
        f"per step: median over steps {args.skip_steps + 1}-{args.steps} of a fit; shown: median (min-max) over "
        f"{args.repeats} fits per side after {args.warmup} warm-up fit, the sides taking turns",
        "every fit starts from the same initial weights and sees the same batches (no audio decoding on either side)",
    ]
    _common.emit([table], args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
