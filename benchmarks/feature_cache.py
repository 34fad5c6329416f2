"""Feature cache: epoch 2+ time as a fraction of epoch 1 when a frozen upstream's frames are cached.

Usage: python benchmarks/feature_cache.py [--clips 16] [--epochs 3] [--whisper DIR|none] [--threads 1] [--out FILE]

A frozen upstream (freeze "all") gives the same frames every epoch; with train.feature_cache
(src/serkit/upstream/cache.py, `install_feature_cache`) epoch 1 encodes every utterance and stores its
frames, and later epochs read them from disk, so they cost the audio decoding, the cache lookup and the
downstream only. Both sides train the same model (the upstream frozen, "weighted" layers -> mean pooling ->
linear) with SERModule through Lightning's Trainer.fit on serkit's own data loader (files decoded every
epoch, duration-bucketed batches), from the same initial weights; the baseline has no cache, so every epoch
encodes again. Upstream: the real Whisper tiny.en encoder from ../shared/models (once with whisper_input
"pad", serkit's default, once "crop", what the RAVDESS configs use), else a tiny random frozen wav2vec2.
Clips: RAVDESS recordings when ../shared/data/ravdess is there, else synthetic 2-6 s clips.
Goal (issue 6): with the cache, (median epoch 2+) / epoch 1 <= 0.1.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import _common

GOAL = 0.1
LABELS = ["neu", "hap", "ang", "sad"]


def utterances(args, tmp: Path) -> tuple[list, str]:
    """-> (Utterance rows with random labels, a description of the clips)."""
    import soundfile as sf

    from serkit.data.utterance import Utterance

    ravdess = _common.optional_dir(args.ravdess, _common.RAVDESS)
    if ravdess is not None:
        paths = _common.ravdess_files(ravdess, args.clips)
        note = f"{len(paths)} RAVDESS recordings"
    else:
        seconds = np.random.default_rng(args.seed).uniform(2, 6, args.clips)
        paths = _common.write_clips(tmp / "clips", seconds, args.seed)
        note = f"{len(paths)} synthetic 2-6 s clips"
    rng = np.random.default_rng(args.seed)
    rows = [Utterance(id=f"u{i:03d}", path=str(path), label=LABELS[int(rng.integers(len(LABELS)))],
                      speaker="s", group="g", duration=sf.info(str(path)).duration) for i, path in enumerate(paths)]
    durations = [row.duration for row in rows]
    return rows, f"{note}, {sum(durations):.0f} s of audio ({min(durations):.1f}-{max(durations):.1f} s each)"


def upstreams(args, tmp: Path) -> list[tuple[str, dict]]:
    """-> [(description, upstream config dict)] to measure."""
    whisper = _common.optional_dir(args.whisper, _common.WHISPER_TINY)
    if whisper is not None:
        return [(f"whisper tiny.en ({whisper.name}), whisper_input={mode}",
                 {"name": "whisper", "source": str(whisper), "layers": "weighted", "freeze": "all",
                  "whisper_input": mode}) for mode in args.whisper_inputs.split(",")]
    from serkit.upstream.tiny import save_tiny_speech_model

    source = save_tiny_speech_model(tmp / "tiny_wav2vec2", "wav2vec2", seed=args.seed)
    return [("tiny random wav2vec2 (hidden 32, 2 layers; no Whisper here)",
             {"name": "hf", "source": str(source), "layers": "weighted", "freeze": "all"})]


def fit_epochs(model, rows: list, epochs: int, max_batch_seconds: float, seed: int, tmp: Path) -> list[float]:
    """Train `epochs` epochs (SERModule, Trainer.fit, serkit's loader) -> seconds of each training epoch."""
    import lightning as L
    from lightning.pytorch.callbacks import Callback

    from serkit.config import load_config
    from serkit.data.dataset import build_loader
    from serkit.training.module import SERModule

    _common.quiet_lightning()
    seconds: list[float] = []

    class EpochClock(Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):
            seconds.append(time.perf_counter() - self.start)

    train = load_config({}).train
    train.max_epochs, train.progress_bar = epochs, False
    trainer = L.Trainer(default_root_dir=tmp, max_epochs=epochs, accelerator="cpu", devices=1, precision="32-true",
                        gradient_clip_val=train.grad_clip, callbacks=[EpochClock()], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, limit_val_batches=0)
    loader = build_loader(rows, LABELS, max_batch_seconds, shuffle=True, seed=seed)
    trainer.fit(SERModule(model, train, LABELS), train_dataloaders=loader)
    return seconds


def measure(upstream_cfg: dict, rows: list, args, tmp: Path) -> dict[str, list[float]]:
    """Epoch times without and with the feature cache, each from the same initial weights."""
    import copy

    import torch

    from serkit.config import load_config
    from serkit.data.batch import pad_waves
    from serkit.data.audio import load_audio
    from serkit.model import build_model
    from serkit.upstream.cache import install_feature_cache, installed_caches

    cfg = load_config(_common.tiny_bundle_config(upstream_cfg))
    torch.manual_seed(args.seed)
    initial = build_model(cfg.model, num_classes=len(LABELS))
    with torch.inference_mode():  # warm-up: a clip through the encoder, untimed, before any run
        for _ in range(args.warmup):
            initial.embed(*pad_waves([torch.from_numpy(load_audio(rows[0].path))]))
    results: dict = {"no cache": [], "cache": []}
    for _ in range(args.repeats):  # the two take turns; each cached run starts from an empty cache
        for name in ("no cache", "cache"):
            model = copy.deepcopy(initial)
            if name == "cache":
                cache_dir = Path(tempfile.mkdtemp(dir=tmp, prefix="feature_cache_"))
                if list(install_feature_cache(model, cache_dir)) != [0]:
                    sys.exit("the frozen upstream was not cached")
            results[name].append(fit_epochs(model, rows, args.epochs, args.max_batch_seconds, args.seed, tmp))
            if name == "cache":
                results["cache stats"] = installed_caches(model)[0].stats()
    return results


def main() -> int:
    p = _common.parser(__doc__, repeats=1, warmup=1,
                       repeats_help="training runs per side (each: --epochs epochs; the median over runs is reported)",
                       warmup_help="untimed encoder passes over one clip before the runs")
    p.add_argument("--epochs", type=int, default=3, help="epochs per run (epochs 2.. give the median)")
    p.add_argument("--clips", type=int, default=16, help="number of utterances")
    p.add_argument("--max-batch-seconds", type=float, default=60.0)
    p.add_argument("--whisper", help="Whisper encoder folder (default: ../shared/models/whisper-tiny.en-encoder "
                                     "when present; 'none': a tiny random wav2vec2)")
    p.add_argument("--whisper-inputs", default="pad,crop", help="whisper_input modes to measure")
    p.add_argument("--ravdess", help="RAVDESS folder (default: ../shared/data/ravdess when present; 'none': synthetic)")
    args = p.parse_args()
    _common.setup(args)
    if args.epochs < 2:
        sys.exit("--epochs must be >= 2")

    with tempfile.TemporaryDirectory(prefix="serkit_bench_cache_") as tmp:
        tmp = Path(tmp)
        rows, clip_note = utterances(args, tmp)
        table = _common.Table(
            f"Feature cache: frozen upstream, {clip_note}, {args.epochs} epochs",
            ["upstream", "no cache: epoch 1 / epochs 2+, s (baseline)", "no cache: ratio",
             "cache: epoch 1 / epochs 2+, s", "cache: ratio (epochs 2+ / epoch 1)",
             "cache epochs 2+ / no-cache epochs 2+", "goal", "met"],
        )
        for description, upstream_cfg in upstreams(args, tmp):
            result = measure(upstream_cfg, rows, args, tmp)
            cells = []
            for name in ("no cache", "cache"):
                first = _common.median([run[0] for run in result[name]])
                later = _common.median([_common.median(run[1:]) for run in result[name]])
                ratios = [_common.median(run[1:]) / run[0] for run in result[name]]
                cells += [f"{first:.2f} / {later:.2f}", f"{_common.median(ratios):.3f}"]
            ratio = _common.median([_common.median(run[1:]) / run[0] for run in result["cache"]])
            steady = (_common.median([_common.median(run[1:]) for run in result["cache"]])
                      / _common.median([_common.median(run[1:]) for run in result["no cache"]]))
            table.add(description, *cells, f"{steady:.3f}", f"<= {GOAL}", _common.verdict(ratio <= GOAL))
            stats = result["cache stats"]
            table.notes.append(f"{description}: the cache run encoded {stats['misses']} utterances and read "
                               f"{stats['hits']} from disk")
    table.notes += [
        "epoch 1 also carries one-off costs of a fit's first steps (the no-cache run's epoch 1 vs its later ones "
        "shows them); 'cache epochs 2+ / no-cache epochs 2+' compares steady epochs only",
        "epoch = one Lightning training epoch (no validation): decoding the files, batching, forward/backward, "
        f"optimiser; epochs 2+: their median; ratio per run, median over {args.repeats} run(s) per side",
        "the cache starts empty; the epoch 2+ cost that remains is file decoding, the sha1 of each clip's "
        "samples, reading its frames, and the downstream's training step",
    ]
    _common.emit([table], args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
