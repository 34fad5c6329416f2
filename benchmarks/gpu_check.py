"""The GPU check (issue 11, section 6): Whisper base fine-tuned on RAVDESS's EmoBox folds in bf16, and the
training-step throughput of a wav2vec2-large-shaped encoder on IEMOCAP-like lengths.

Run on the GPU machine from the repository root, with the pack `benchmarks/gpu_pack.py` made here (it
installs the pack's wheels into /tmp first, then runs this script):

    bash benchmarks/gpu_check.sh --out $OUT/gpu_check.json

Part 1, Whisper base, real weights (the pack's copy of ../shared/models/whisper-base-encoder), fine-tuned:
the RAVDESS recipe of docs/results.md (configs/ravdess/common.yaml + whisper_base_stats_aug.yaml: weighted
layers, layer-normed, statistics pooling, standardised linear head, frame masks, mixup, label smoothing) with
the encoder trained (freeze "cnn": everything but its two input convolutions) instead of frozen, on EmoBox's
six actor-independent folds (8 emotions; validation = the next fold's actors). Per fold: serkit's
SERModule and FoldDataModule under Lightning's Trainer (precision bf16-mixed), the top-k checkpoints by
validation UA kept and averaged (TopKCheckpoint, average_checkpoints: what `serkit cv` does), the test set
scored on the GPU under the same autocast. Printed per fold: test UA / WA of the top-k average and of the
best single checkpoint, training utterances/s (over the epochs after the first, which pays for warm-up),
test inference utterances/s and peak GPU memory (torch.cuda.max_memory_allocated).
Not serkit's `run_fold`: it scores valid and test, best and averaged, on the CPU (model.cpu()) and writes a
bundle, which for Whisper base padded to 30 s costs minutes per fold even on 16 cores.
One workaround (log_mel_without_autocast): Whisper's log-mel features are computed outside the autocast,
which serkit's WhisperUpstream does not do yet (see there).

Why whisper_input "pad" (the default): it is what Whisper was trained on (every clip in a 30 s window) and
the mode of the best RAVDESS recipe (docs/results.md: crop cost Whisper tiny.en 1-2 points UA). On an H200 it
fits: a batch of ~14 RAVDESS clips (max_batch_seconds 60) is 14 windows of 1500 frames through a 20M-parameter
encoder, ~3.7 TFLOP forward and backward, tens of ms in bf16 (plus the host's log-mel padding), so an
epoch of ~960 training clips takes ~5.9 s and a fold of 6 epochs 46-55 s, validation, checkpoint averaging
and scoring included: six folds in ~5 minutes (measured, session 16: docs/benchmarks.md). `--whisper-input
crop` (about 8x less encoder work on 3-5 s clips) is the choice for a smaller GPU.

Part 2, throughput of a wav2vec2-large-shaped encoder (W2V2_LARGE: wav2vec2-large-lv60's architecture,
random weights, 315M parameters) with the paper's ECAPA-TDNN head (configs/paper/05_w2v2_ecapa.yaml, freeze
"cnn"): training steps on random audio whose durations are IEMOCAP-like (lognormal, mean ~4.5 s, from
benchmarks/batching.py, clipped to --w2v2-max-seconds), batched by serkit's DurationBatchSampler with
max_batch_seconds as given and the upstream's pad_multiple_s (the padded width rounded up to a multiple of that
many seconds); utterances/s and audio seconds/s over the steps after --w2v2-warmup, peak GPU memory, and how
many timed steps ran a padded width the process had not run before (each costs the GPU first-time work: on
the H200, 33 utt/s with most widths new against 62 with few, docs/benchmarks.md).

Budget: the whole run must end within 8 minutes. Part 1 starts a fold only while the time spent on it so far
plus its slowest fold fits in --budget-s (default 300 s), and a fold's training also stops at what is left of
it (Lightning's max_time); folds left out are listed. Part 2 is fixed by its step counts (~2 minutes on the
H200 with model building); with imports and the wheels' install, ~7 minutes in all (an estimate). The JSON (--out) is
rewritten after every fold, so a run cut short still leaves what it measured. Everything is seeded (--seed).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import gc
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from importlib import metadata
from pathlib import Path

import numpy as np
from lightning.pytorch.callbacks import Callback

import _common

REPO = _common.REPO
SAMPLE_RATE = _common.SAMPLE_RATE
WHISPER_CONFIGS = ("configs/ravdess/common.yaml", "configs/ravdess/whisper_base_stats_aug.yaml")
W2V2_CONFIG = "configs/paper/05_w2v2_ecapa.yaml"
IEMOCAP_LABELS = ("neu", "hap", "ang", "sad")
PRECISIONS = ("bf16-mixed", "16-mixed", "32-true")
# facebook/wav2vec2-large-lv60's architecture (its config.json): a 7-layer conv feature encoder with layer
# norm (512 channels, kernels 10,3,3,3,3,2,2, strides 5,2,2,2,2,2,2 -> 50 Hz), pre-LN Transformer of 24 layers,
# 1024 wide, 16 heads, FFN 4096, a convolutional positional embedding of 128 taps in 16 groups.
W2V2_LARGE = dict(
    hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096, hidden_act="gelu",
    feat_extract_norm="layer", feat_extract_activation="gelu", do_stable_layer_norm=True, conv_bias=True,
    conv_dim=(512,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),
    num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16, hidden_dropout=0.1, attention_dropout=0.1,
    activation_dropout=0.0, feat_proj_dropout=0.1, layerdrop=0.1, mask_time_prob=0.05, mask_time_length=10,
    vocab_size=32,
)
W2V2_SIZES = ("large", "tiny")  # tiny: serkit's tiny stand-in (hidden 32, 2 layers), for the CPU test


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--pack", type=Path, default=REPO / "gpu_pack", help="the folder benchmarks/gpu_pack.py wrote")
    p.add_argument("--out", type=Path, help="write the figures as JSON here (and the tables beside it as .md)")
    p.add_argument("--work", type=Path, help="scratch folder (decoded audio, checkpoints); default: a temporary one")
    p.add_argument("--threads", type=int, default=8, help="torch CPU threads and audio-decoding processes")
    p.add_argument("--num-workers", type=int, default=4, help="DataLoader worker processes")
    p.add_argument("--precision", default="bf16-mixed", choices=PRECISIONS, help="Lightning precision")
    p.add_argument("--seed", type=int, default=0)
    whisper = p.add_argument_group("part 1: Whisper base fine-tuned on RAVDESS, EmoBox folds")
    whisper.add_argument("--skip-whisper", action="store_true")
    whisper.add_argument("--config", nargs="+", default=list(WHISPER_CONFIGS),
                         help="experiment YAML files (relative to the repository root), merged in order")
    whisper.add_argument("--folds", default="", help="comma-separated folds (default: all six)")
    whisper.add_argument("--epochs", type=int, default=6)
    whisper.add_argument("--lr-upstream", type=float, default=2e-5,
                         help="peak learning rate of the encoder (the head keeps the recipe's)")
    whisper.add_argument("--whisper-input", default="pad", choices=("pad", "crop"))
    whisper.add_argument("--max-batch-seconds", type=float, default=60.0, help="real audio per batch")
    whisper.add_argument("--budget-s", type=float, default=300.0,
                         help="seconds for part 1: a fold starts only while the slowest fold so far still fits")
    whisper.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="further config overrides for part 1 (train.top_k=3, ...), applied last")
    w2v2 = p.add_argument_group("part 2: wav2vec2-large-shaped encoder, training-step throughput")
    w2v2.add_argument("--skip-w2v2", action="store_true")
    w2v2.add_argument("--w2v2-size", default="large", choices=W2V2_SIZES)
    w2v2.add_argument("--w2v2-batch-seconds", default="60,60,60/0.5,60/0.5,240/0.5",
                      help="comma-separated measurements, each SECONDS[/PAD]: max_batch_seconds (serkit's default "
                           "is 60) and the upstream's pad_multiple_s (0 or absent: off); run i draws its batches "
                           "with sampler seed --seed + i, so every run meets widths of its own")
    w2v2.add_argument("--w2v2-steps", type=int, default=30, help="timed training steps per measurement")
    w2v2.add_argument("--w2v2-warmup", type=int, default=5, help="untimed steps before them")
    w2v2.add_argument("--w2v2-max-seconds", type=float, default=20.0, help="longest utterance")
    args = p.parse_args(argv)
    args.fold_list = [int(f) for f in args.folds.split(",") if f.strip()]
    try:
        args.w2v2_runs = [parse_w2v2_run(item) for item in args.w2v2_batch_seconds.split(",") if item.strip()]
    except ValueError as error:
        p.error(f"--w2v2-batch-seconds {args.w2v2_batch_seconds!r}: {error}")
    if args.epochs < 1 or args.w2v2_steps < 1 or args.w2v2_warmup < 1 or args.threads < 1:
        p.error("--epochs, --w2v2-steps, --w2v2-warmup and --threads must be >= 1")
    if not args.skip_whisper and not (args.pack / "whisper-base-encoder").is_dir():
        p.error(f"--pack {args.pack}: no whisper-base-encoder folder (run benchmarks/gpu_pack.py first)")
    if not args.skip_whisper and not (args.pack / "ravdess").is_dir():
        p.error(f"--pack {args.pack}: no ravdess folder (run benchmarks/gpu_pack.py first)")
    return args


def parse_w2v2_run(item: str) -> tuple[float, float]:
    """'60' -> (60.0, 0.0); '60/0.5' -> (60.0, 0.5): max_batch_seconds and pad_multiple_s of one measurement
    (the pad in HFConfig's range; checked here, before torch is imported, so a typo costs no GPU time)."""
    seconds, _, pad = item.strip().partition("/")
    try:
        batch_seconds, pad_s = float(seconds), float(pad or 0)
    except ValueError:
        raise ValueError(f"{item.strip()!r} is not SECONDS or SECONDS/PAD (e.g. 60 or 60/0.5)") from None
    if not (math.isfinite(batch_seconds) and batch_seconds > 0):
        raise ValueError(f"{item.strip()!r}: max_batch_seconds must be a positive, finite number")
    if not (math.isfinite(pad_s) and (pad_s == 0 or pad_s * SAMPLE_RATE >= 1)):
        raise ValueError(f"{item.strip()!r}: pad_multiple_s must be 0 (off) or a finite number of seconds of at "
                         f"least one sample (1/{SAMPLE_RATE} s)")
    return batch_seconds, pad_s


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    _common.setup(args)
    _common.quiet_lightning()
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    report = {"command": " ".join(["python", *sys.argv]), "machine": machine_facts(device, args),
              "precision": args.precision, "whisper": None, "w2v2": None, "errors": []}
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="serkit_gpu_check_"))
    work.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        write_report(report, args, started)

    parts = [(name, run) for name, run, skip in (("whisper", whisper_part, args.skip_whisper),
                                                  ("w2v2", w2v2_part, args.skip_w2v2)) if not skip]
    try:
        for name, run in parts:
            try:
                run(args, device, work, report, save)
            except Exception:  # one part failing (an out-of-memory, say) must not lose the other's figures
                report["errors"].append({"part": name, "traceback": traceback.format_exc()})
                say(f"part {name} failed:\n{traceback.format_exc()}")
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(write_report(report, args, started), flush=True)
    return 1 if report["errors"] else 0


# -- part 1: Whisper base fine-tuned on RAVDESS ----------------------------------------------------------


def whisper_part(args, device, work: Path, report: dict, save) -> None:
    """Every fold that fits the budget -> report["whisper"] (rewritten through `save` after each fold)."""
    from serkit.config import load_config, to_dict
    from serkit.data.prepare import prepare_corpus
    from serkit.evaluation.tables import CVSummary, FoldScores

    started = time.monotonic()
    root, unpacked = unpack_ravdess(args.pack / "ravdess", work / "ravdess", args.threads)
    cfg = load_config(*[REPO / c for c in args.config], overrides=[
        "data.corpus=ravdess", f"data.root={root}", "data.options.folds=emobox", "data.check=false",
        f"data.num_workers={args.num_workers}", f"data.max_batch_seconds={args.max_batch_seconds}",
        f"model.upstreams.0.source={(args.pack / 'whisper-base-encoder').resolve()}", "model.upstreams.0.freeze=cnn",
        f"model.upstreams.0.whisper_input={args.whisper_input}", f"train.max_epochs={args.epochs}",
        f"train.lr_upstream={args.lr_upstream}", f"train.precision={args.precision}", "train.feature_cache=null",
        "train.progress_bar=false", f"seed={args.seed}", *args.set])
    corpus_data = prepare_corpus(cfg.data)
    prepared, labels = corpus_data.prepared, corpus_data.classes
    folds = corpus_data.select_folds(args.fold_list)
    part = {"config_files": list(args.config), "config": to_dict(cfg), "labels": labels,
            "workarounds": ["Whisper log-mel features computed outside autocast (log_mel_without_autocast)"],
            "utterances": len(prepared.utterances), "unpack_seconds": round(unpacked, 1), "budget_s": args.budget_s,
            "folds": [], "skipped_folds": [], "summary": None}
    report["whisper"] = part
    fold_scores: list = []  # FoldScores of the folds run
    for fold in folds:
        left = args.budget_s - (time.monotonic() - started)
        slowest = max((row["seconds"] for row in part["folds"]), default=0.0)
        if part["folds"] and slowest > left:
            part["skipped_folds"].append(fold)
            say(f"whisper fold {fold}: skipped, {max(left, 0):.0f} s of the budget left, "
                f"a fold took up to {slowest:.0f} s")
            continue
        split = corpus_data.split(fold)
        row, reported, best = whisper_fold(cfg, split, labels, device, work / f"fold_{fold}", max(left, 30.0))
        part["folds"].append(row)
        fold_scores.append(FoldScores(fold=fold, metrics=reported, best_single=best))
        summary = CVSummary(fold_scores)
        part["summary"] = {"ua": summary.stat("ua").to_dict(), "wa": summary.stat("wa").to_dict(),
                           "best_single_ua": summary.stat("ua", best_single=True).to_dict(),
                           "averaging_gain_ua": None if summary.gain("ua") is None else summary.gain("ua").to_dict()}
        say(f"whisper fold {fold}: test UA {100 * reported.ua:.1f} WA {100 * reported.wa:.1f}, "
            f"{row['train_utt_per_s']:.1f} utt/s training, peak {fmt_gib(row['peak_gpu_bytes'])} GiB, "
            f"{row['seconds']:.0f} s")
        save()
    part["seconds"] = round(time.monotonic() - started, 1)


def whisper_fold(cfg, split, labels: list[str], device, fold_dir: Path, max_seconds: float):
    """Train one fold (at most `max_seconds`), score its test set with the best checkpoint and the top-k
    average -> (the fold's row, the reported Metrics, the best single checkpoint's Metrics)."""
    import lightning as L
    import torch

    from serkit.config import config_hash
    from serkit.model import build_model
    from serkit.checkpoint import load_state_dict, load_trained_state_dict
    from serkit.training.averaging import average_checkpoints
    from serkit.training.datamodule import FoldDataModule
    from serkit.training.module import SERModule
    from serkit.training.progress import ProgressLines
    from serkit.training.checkpoints import CheckpointFiles, TopKCheckpoint, last_checkpoint

    started = time.monotonic()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model = build_model(cfg.model, num_classes=len(labels))
    for upstream in model.upstreams:
        log_mel_without_autocast(upstream)
    module = SERModule(model, cfg.train, labels)
    datamodule = FoldDataModule(split, labels, cfg.data, seed=cfg.seed, epochs=cfg.train.max_epochs)
    topk = TopKCheckpoint(fold_dir / "checkpoints", k=cfg.train.top_k, monitor=cfg.train.monitor)
    timer = TrainTimer(device)
    trainer = L.Trainer(
        default_root_dir=fold_dir, max_epochs=cfg.train.max_epochs, max_time=datetime.timedelta(seconds=max_seconds),
        accelerator=accelerator(device), devices=1, precision=cfg.train.precision,
        gradient_clip_val=cfg.train.grad_clip or None, accumulate_grad_batches=cfg.train.accumulate,
        callbacks=[timer, ProgressLines(f"whisper fold {split.fold}"), topk, last_checkpoint(fold_dir / "checkpoints")],
        plugins=[CheckpointFiles({"config_hash": config_hash(cfg.model)})],
        logger=False, enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
        num_sanity_val_steps=0, log_every_n_steps=cfg.train.log_every_n_steps,
    )
    reset_peak(device)
    trainer.fit(module, datamodule=datamodule)
    model.to(device)  # Lightning hands the module back on the CPU
    test_loader = datamodule.eval_dataloader(split.test)
    kept = topk.kept_paths()
    if kept:  # else max_time stopped the fold before its first validation: the last weights are scored
        load_trained_state_dict(model, load_state_dict(kept[0]), f"best checkpoint {kept[0]}")
    best, test_rate = evaluate(model, test_loader, labels, device, cfg.train.precision)
    reported = best
    if cfg.train.average and len(kept) > 1:
        load_trained_state_dict(model, average_checkpoints(kept), "averaged checkpoints")
        reported, test_rate = evaluate(model, test_loader, labels, device, cfg.train.precision)
    row = {
        "fold": split.fold, "train_utterances": len(split.train), "valid_utterances": len(split.valid),
        "test_utterances": len(split.test), "epochs": len(timer.epochs), "max_epochs": cfg.train.max_epochs,
        "checkpoints_averaged": len(kept) if cfg.train.average and len(kept) > 1 else 0,
        "test": scores(reported), "best_single_test": scores(best),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        **timer.throughput(skip_first_epoch=True), "test_utt_per_s": test_rate,
        "peak_gpu_bytes": peak_bytes(device), "seconds": round(time.monotonic() - started, 1),
    }
    del trainer, module, model
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    shutil.rmtree(fold_dir, ignore_errors=True)
    return row, reported, best


def log_mel_without_autocast(upstream) -> None:
    """Workaround, until serkit's WhisperUpstream.log_mel does it itself: compute Whisper's log-mel features
    outside the trainer's autocast. Under bf16-mixed, transformers' torch feature extractor runs its mel
    matmul in bf16 (features Whisper was not trained on; on a GPU log10 then returns float32) and, on the
    CPU, hands a bf16 tensor to .numpy(), which raises. Nothing else of the upstream changes."""
    import torch

    if not hasattr(upstream, "log_mel"):
        return
    log_mel = upstream.log_mel

    def exact_log_mel(chunks, device):
        with torch.autocast(device.type, enabled=False):
            return log_mel(chunks, device)

    upstream.log_mel = exact_log_mel


def scores(metrics) -> dict:
    return {"ua": metrics.ua, "wa": metrics.wa, "macro_f1": metrics.macro_f1}


def unpack_ravdess(source: Path, target: Path, processes: int) -> tuple[Path, float]:
    """Decode the pack's Ogg/Opus RAVDESS (Actor_XX/<name>.ogg) to float WAV files of the same names in
    `target`, in parallel -> (target, seconds it took). serkit's RAVDESS loader then reads `target` as is."""
    started = time.monotonic()
    files = sorted(source.glob("Actor_*/*.ogg"))
    if not files:
        sys.exit(f"{source}: no Actor_XX/*.ogg files (run benchmarks/gpu_pack.py)")
    jobs = [(ogg, target / ogg.parent.name / f"{ogg.stem}.wav") for ogg in files]
    if processes > 1:
        with ProcessPoolExecutor(min(processes, len(jobs))) as pool:
            list(pool.map(_decode_job, jobs, chunksize=32))
    else:
        for job in jobs:
            _decode_job(job)
    seconds = time.monotonic() - started
    say(f"unpacked {len(jobs)} RAVDESS files to {target} in {seconds:.1f} s")
    return target, seconds


def _decode_job(job: tuple[Path, Path]) -> None:
    import soundfile as sf

    source, target = job
    target.parent.mkdir(parents=True, exist_ok=True)
    wav, rate = sf.read(str(source), dtype="float32", always_2d=False)
    sf.write(str(target), wav, rate, subtype="FLOAT")  # float: no clipping of Opus overshoot


def evaluate(model, loader, labels: list[str], device, precision: str):
    """-> (Metrics of the model on the loader, utterances per second), under the training precision's autocast."""
    from serkit.evaluation.metrics import compute_metrics
    from serkit.training.predictions import predict_loader

    sync(device)
    started = time.perf_counter()
    with autocast(device, precision):
        _, probs, targets = predict_loader(model, loader)
    sync(device)
    seconds = time.perf_counter() - started
    return compute_metrics(probs.argmax(-1), targets, labels), len(targets) / max(seconds, 1e-9)


# -- part 2: wav2vec2-large-shaped encoder, training-step throughput -------------------------------------


def w2v2_part(args, device, work: Path, report: dict, save) -> None:
    """One throughput measurement per --w2v2-batch-seconds -> report["w2v2"] (saved after each)."""
    import lightning as L
    import torch

    from batching import iemocap_like
    from serkit.config import load_config
    from serkit.model import build_model
    from serkit.training.module import SERModule
    from serkit.upstream.hf import HFSpeechUpstream

    started = time.monotonic()
    source = save_w2v2_config(work / f"wav2vec2-{args.w2v2_size}", args.w2v2_size)
    cfg = load_config(REPO / W2V2_CONFIG, overrides=[f"model.upstreams.0.source={source}",
                                                     f"train.precision={args.precision}", f"seed={args.seed}"])
    L.seed_everything(cfg.seed, verbose=False)
    model = build_model(cfg.model, num_classes=len(IEMOCAP_LABELS), pretrained=False)  # random weights
    built = time.monotonic() - started
    durations = np.minimum(iemocap_like(args.seed), args.w2v2_max_seconds)
    upstream_cfg = {**dataclasses.asdict(cfg.model.upstreams[0]), "pad_multiple_s": "per run (runs[i])"}
    part = {"size": args.w2v2_size, "architecture": W2V2_LARGE if args.w2v2_size == "large" else "tiny",
            "config": W2V2_CONFIG, "upstream": upstream_cfg,
            "aggregator": cfg.model.aggregators[0].name,
            "params": sum(p.numel() for p in model.parameters()),
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "durations": {"count": len(durations), "mean_s": float(durations.mean()),
                          "max_s": float(durations.max()), "min_s": float(durations.min())},
            "build_seconds": round(built, 1), "warmup_steps": args.w2v2_warmup, "runs": []}
    report["w2v2"] = part
    (upstream,) = [m for m in model.modules() if isinstance(m, HFSpeechUpstream)]
    seen_widths: set[int] = set()  # padded widths this process has run: the GPU's first-time costs are per shape
    for index, (batch_seconds, pad_s) in enumerate(args.w2v2_runs):
        # the option of the built model's upstream (HFConfig.pad_multiple_s), switched per measurement
        upstream.pad_multiple = int(round(pad_s * SAMPLE_RATE))
        loader = random_speech_loader(durations, batch_seconds, args.seed + index, args.num_workers)
        module = SERModule(model, cfg.train, list(IEMOCAP_LABELS))
        timer = TrainTimer(device)
        trainer = L.Trainer(
            max_steps=args.w2v2_warmup + args.w2v2_steps, accelerator=accelerator(device),
            devices=1, precision=args.precision, gradient_clip_val=cfg.train.grad_clip or None,
            limit_val_batches=0, callbacks=[timer], enable_checkpointing=False, logger=False,
            enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
            num_sanity_val_steps=0,
        )
        reset_peak(device)
        trainer.fit(module, train_dataloaders=loader)
        widths = [upstream.padded_width(max(n, upstream.min_samples), device) for n in timer.longest]
        untimed, timed = widths[:args.w2v2_warmup], widths[args.w2v2_warmup:]
        seen_widths.update(untimed)
        new = [w for w in timed if w not in seen_widths and not seen_widths.add(w)]
        run = {"max_batch_seconds": batch_seconds, "pad_multiple_s": pad_s, "sampler_seed": args.seed + index,
               **timer.step_throughput(args.w2v2_warmup), "distinct_widths": len(set(timed)),
               "new_widths": len(new), "peak_gpu_bytes": peak_bytes(device)}
        part["runs"].append(run)
        say(f"wav2vec2-{args.w2v2_size}, max_batch_seconds {batch_seconds:g}, pad_multiple_s {pad_s:g}: "
            f"{run['utt_per_s']:.1f} utt/s, {run['steps']} steps of {run['utts_per_step']:.1f} utterances, "
            f"{run['new_widths']} of them on a width new to the process, peak {fmt_gib(run['peak_gpu_bytes'])} GiB")
        del trainer, module
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        save()
    part["seconds"] = round(time.monotonic() - started, 1)


def save_w2v2_config(directory: Path, size: str) -> Path:
    """config.json + preprocessor_config.json of a wav2vec2 encoder (no weights: built with random ones)."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor

    from serkit.upstream.tiny import FAMILIES, TINY_SPEECH

    sizes = W2V2_LARGE if size == "large" else {**TINY_SPEECH, **FAMILIES["wav2vec2"][1]}
    Wav2Vec2Config(**sizes).save_pretrained(directory)
    # the large models' preprocessing: per-utterance normalisation, padding masked by an attention mask
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=True,
                             return_attention_mask=True).save_pretrained(directory)
    return directory


def random_speech_loader(durations: np.ndarray, max_batch_seconds: float, seed: int, num_workers: int):
    """A DataLoader of serkit Batches of random audio of the given durations (seeded per utterance), batched
    by serkit's DurationBatchSampler, shuffled, as training batches them."""
    from torch.utils.data import DataLoader

    from serkit.data.dataset import collate
    from serkit.data.sampler import DurationBatchSampler

    sampler = DurationBatchSampler(durations.tolist(), max_batch_seconds, shuffle=True, seed=seed)
    return DataLoader(RandomSpeech(durations, seed), batch_sampler=sampler, collate_fn=collate,
                      num_workers=num_workers, persistent_workers=num_workers > 0)


class RandomSpeech:
    """Dataset: utterance i is seeded noise of durations[i] seconds, label i mod 4 (what is learnt is not the
    point: the step's cost is)."""

    def __init__(self, durations: np.ndarray, seed: int):
        self.durations = durations
        self.seed = seed

    def __len__(self) -> int:
        return len(self.durations)

    def __getitem__(self, i: int):
        from serkit.data.dataset import Example
        import torch

        rng = np.random.default_rng([self.seed, i])
        samples = int(round(self.durations[i] * SAMPLE_RATE))
        wav = torch.from_numpy((0.1 * rng.standard_normal(samples)).astype(np.float32))
        return Example(wav, i % len(IEMOCAP_LABELS), f"random_{i:05d}", None)


# -- timing, memory, precision ---------------------------------------------------------------------------


class TrainTimer(Callback):
    """Lightning callback: the end time, utterances and audio seconds of every training step, and per epoch the
    seconds from its start to its last step's end (validation excluded; data loading, forward, backward and
    the optimiser step included). The GPU is synchronised at each point, so the times are the GPU's too."""

    def __init__(self, device):
        self.device = device
        self.steps: list[tuple[float, int, float]] = []  # (end time, utterances, audio seconds)
        self.longest: list[int] = []  # the longest clip of each step, samples
        self.epochs: list[tuple[float, int, float]] = []  # (seconds, utterances, audio seconds)
        self._epoch_start = 0.0
        self._epoch_first_step = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        sync(self.device)
        self._epoch_start = time.perf_counter()
        self._epoch_first_step = len(self.steps)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        sync(self.device)
        self.steps.append((time.perf_counter(), len(batch), float(batch.wav_lens.sum()) / SAMPLE_RATE))
        self.longest.append(int(batch.wav_lens.max()))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        steps = self.steps[self._epoch_first_step:]
        if steps:
            self.epochs.append((steps[-1][0] - self._epoch_start, sum(s[1] for s in steps), sum(s[2] for s in steps)))

    def throughput(self, skip_first_epoch: bool) -> dict:
        """Training utterances/s and audio seconds/s over the epochs (after the first, when there are more)."""
        epochs = self.epochs[1:] if skip_first_epoch and len(self.epochs) > 1 else self.epochs
        seconds = sum(e[0] for e in epochs)
        return {"train_seconds": round(sum(e[0] for e in self.epochs), 2),
                "first_epoch_seconds": round(self.epochs[0][0], 2) if self.epochs else None,
                "timed_epochs": len(epochs),
                "train_utt_per_s": sum(e[1] for e in epochs) / max(seconds, 1e-9),
                "train_audio_s_per_s": sum(e[2] for e in epochs) / max(seconds, 1e-9)}

    def step_throughput(self, skip: int) -> dict:
        """Utterances/s and audio seconds/s from the end of step `skip` to the end of the last one."""
        timed = self.steps[skip:]
        if not timed:
            return {"steps": 0, "utt_per_s": float("nan"), "audio_s_per_s": float("nan"), "utts_per_step": float("nan"),
                    "audio_s_per_step": float("nan"), "step_seconds_median": float("nan")}
        seconds = timed[-1][0] - self.steps[skip - 1][0]
        ends = [self.steps[skip - 1][0], *(s[0] for s in timed)]
        return {"steps": len(timed), "seconds": round(seconds, 3),
                "utt_per_s": sum(s[1] for s in timed) / max(seconds, 1e-9),
                "audio_s_per_s": sum(s[2] for s in timed) / max(seconds, 1e-9),
                "utts_per_step": float(np.mean([s[1] for s in timed])),
                "audio_s_per_step": float(np.mean([s[2] for s in timed])),
                "step_seconds_median": float(np.median(np.diff(ends)))}


def accelerator(device) -> str:
    return "gpu" if device.type == "cuda" else "cpu"


def sync(device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def reset_peak(device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats(device)


def peak_bytes(device) -> int | None:
    """torch.cuda.max_memory_allocated since the last reset_peak; None on the CPU."""
    if device.type != "cuda":
        return None
    import torch

    return int(torch.cuda.max_memory_allocated(device))


def autocast(device, precision: str):
    import torch

    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "16-mixed":
        return torch.autocast(device.type, dtype=torch.float16)
    return contextlib.nullcontext()


def fmt_gib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**30:.2f}"


def say(line: str) -> None:
    """A progress line on stderr (the tables go to stdout at the end)."""
    print(line, file=sys.stderr, flush=True)


# -- the report ------------------------------------------------------------------------------------------


def machine_facts(device, args) -> dict:
    import torch

    versions = {}
    for package in ("torch", "transformers", "lightning", "numpy", "soundfile", "soxr", "omegaconf"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "cuda": torch.version.cuda,
            "bf16_supported": bool(device.type == "cuda" and torch.cuda.is_bf16_supported()),
            "cpu_count": os.cpu_count(), "threads": args.threads, "python": platform.python_version(),
            "versions": versions}


def write_report(report: dict, args, started: float) -> str:
    """Write the figures so far to --out (JSON) and the tables beside it (.md) -> the tables' Markdown."""
    report["seconds"] = round(time.monotonic() - started, 1)
    text = render(report, report["seconds"])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        for path, content in ((args.out, json.dumps(report, indent=2, default=_plain) + "\n"),
                              (args.out.with_suffix(".md"), text)):
            temp = path.with_name(f".{path.name}.tmp")
            temp.write_text(content, encoding="utf-8")
            os.replace(temp, path)  # a run killed at its time limit leaves whole files
    return text


def _plain(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def render(report: dict, seconds: float) -> str:
    """The Markdown the run prints at the end (and writes beside the JSON)."""
    machine = report["machine"]
    tables = []
    whisper = report.get("whisper")
    if whisper is not None:
        upstream = whisper["config"]["model"]["upstreams"][0]
        table = _common.Table(
            f"Whisper base fine-tuned on RAVDESS, EmoBox folds, 8 emotions ({report['precision']}, "
            f"freeze {upstream['freeze']}, whisper_input {upstream['whisper_input']}, "
            f"max {whisper['config']['train']['max_epochs']} epochs)",
            ["fold", "train / test utts", "epochs", "test UA % (top-k avg)", "test WA %", "best single UA %",
             "train utt/s", "test utt/s", "peak GPU GiB", "fold s"])
        for row in whisper["folds"]:
            table.add(row["fold"], f"{row['train_utterances']} / {row['test_utterances']}",
                      f"{row['epochs']}/{row['max_epochs']}", f"{100 * row['test']['ua']:.1f}",
                      f"{100 * row['test']['wa']:.1f}", f"{100 * row['best_single_test']['ua']:.1f}",
                      f"{row['train_utt_per_s']:.1f}", f"{row['test_utt_per_s']:.1f}",
                      fmt_gib(row["peak_gpu_bytes"]), f"{row['seconds']:.0f}")
        summary = whisper.get("summary")
        if summary:
            rates = [r["train_utt_per_s"] for r in whisper["folds"]]
            peaks = [r["peak_gpu_bytes"] for r in whisper["folds"] if r["peak_gpu_bytes"] is not None]
            table.add("mean ± std", "", "", _pct(summary["ua"]), _pct(summary["wa"]), _pct(summary["best_single_ua"]),
                      f"{np.mean(rates):.1f}", "", fmt_gib(max(peaks)) + " (max)" if peaks else "n/a", "")
        train, data = whisper["config"]["train"], whisper["config"]["data"]
        table.notes += [
            f"configs {', '.join(whisper['config_files'])}; lr_upstream {train['lr_upstream']:g}, lr_downstream "
            f"{train['lr_downstream']:g}, max_batch_seconds {data['max_batch_seconds']:g}, top_k {train['top_k']}, "
            f"seed {whisper['config']['seed']}; {whisper['utterances']} utterances (Opus-coded in the pack)",
            "train utt/s: training utterances over the epochs after the first (data loading, forward, backward, "
            "optimiser; validation excluded); test utt/s: the test set scored under the same autocast; peak GPU: "
            "torch.cuda.max_memory_allocated over the fold",
        ]
        if whisper["skipped_folds"]:
            table.notes.append(f"folds {', '.join(map(str, whisper['skipped_folds']))} not run: the budget of "
                               f"{whisper['budget_s']:g} s for this part was spent")
        tables.append(table)
    w2v2 = report.get("w2v2")
    if w2v2 is not None:
        table = _common.Table(
            f"Training-step throughput: wav2vec2-{w2v2['size']}-shaped encoder (random weights, "
            f"{w2v2['params'] / 1e6:.0f}M parameters) + {w2v2['aggregator']}, IEMOCAP-like lengths, "
            f"{report['precision']}",
            ["max_batch_seconds", "pad_multiple_s", "sampler seed", "timed steps", "widths (new)", "utts / step",
             "audio s / step", "median step s", "utt/s", "audio s/s", "peak GPU GiB"])
        for run in w2v2["runs"]:
            table.add(f"{run['max_batch_seconds']:g}", f"{run['pad_multiple_s']:g}", run["sampler_seed"], run["steps"],
                      f"{run['distinct_widths']} ({run['new_widths']})", f"{run['utts_per_step']:.1f}",
                      f"{run['audio_s_per_step']:.1f}", f"{run['step_seconds_median']:.3f}", f"{run['utt_per_s']:.1f}",
                      f"{run['audio_s_per_s']:.1f}", fmt_gib(run["peak_gpu_bytes"]))
        durations = w2v2["durations"]
        table.notes += [
            f"durations: {durations['count']} lognormal IEMOCAP-like lengths (benchmarks/batching.py), clipped to "
            f"{durations['max_s']:g} s: mean {durations['mean_s']:.2f} s; batched by DurationBatchSampler, shuffled",
            f"{w2v2['config']} (freeze {w2v2['upstream']['freeze']}, layers {w2v2['upstream']['layers']}): "
            f"{w2v2['trainable_params'] / 1e6:.0f}M trainable; steps timed after {w2v2['warmup_steps']} untimed "
            "ones, the GPU synchronised at each step's end",
            "widths (new): distinct padded widths among the timed steps (in brackets, how many the process had not "
            "run before: each costs the GPU first-time work); one model runs every measurement, in order",
        ]
        tables.append(table)
    header = (f"GPU check on {machine['device']} (CUDA {machine['cuda']}, torch {machine['versions']['torch']}, "
              f"transformers {machine['versions']['transformers']}, lightning {machine['versions']['lightning']}), "
              f"{seconds:.0f} s in all")
    failures = "".join(f"\n**Part {e['part']} failed:** `{e['traceback'].strip().splitlines()[-1]}` (traceback in the "
                       "JSON and the log)\n" for e in report.get("errors", []))
    return f"`{report['command']}`\n\n{header}\n\n" + "\n".join(t.render() for t in tables) + failures


def _pct(stat: dict) -> str:
    std = "—" if stat["std"] is None else f"{100 * stat['std']:.1f}"
    return f"{100 * stat['mean']:.1f} ± {std}"


if __name__ == "__main__":
    sys.exit(main())
