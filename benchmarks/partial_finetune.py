"""Partial fine-tuning cost: a training step with the top blocks trained on the cached bottom (freeze
"bottom:N") vs full fine-tuning of the same encoder (freeze "cnn"), in one run, as a ratio (issue 11 section 5).

Usage: python benchmarks/partial_finetune.py [--bottom 4] [--batch 4] [--seconds 3.7] [--threads 1] [--out FILE]

The encoder is Whisper base (../shared/models/whisper-base-encoder; without it, a random encoder of the same
shape), pad mode, weighted layers -> statistics pooling -> linear, as the RAVDESS recipe. Each side trains a copy
of that model on the same batch of RAVDESS-length synthetic clips: forward, cross-entropy, backward, AdamW step.
- full: freeze "cnn" (everything but the two input convolutions trains), no cache (a trained encoder's frames
  change every step);
- partial: freeze "bottom:N", its bottom's layers read from a feature cache warmed by the untimed first step,
  so a step runs the top blocks on the real frames only;
- frozen: freeze "all" from the cache, the head alone (the floor).
An epoch is the same number of such steps on every side, so the step ratio is the epoch ratio. Goal: partial
<= 1/3 of full with the top 2 of 6 blocks trained (--bottom 4).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import _common

GOAL = 1 / 3


def encoder_source(tmp: Path) -> tuple[Path, str]:
    """Whisper base's real weights when ../shared has them, else a random encoder of base's shape."""
    if (_common.WHISPER_BASE / "config.json").is_file():
        return _common.WHISPER_BASE, "Whisper base (real weights)"
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    config = WhisperConfig(d_model=512, encoder_layers=6, encoder_attention_heads=8, encoder_ffn_dim=2048,
                           decoder_layers=1, decoder_attention_heads=8, decoder_ffn_dim=2048, num_mel_bins=80)
    WhisperModel(config).save_pretrained(tmp / "whisper")
    WhisperFeatureExtractor(feature_size=80).save_pretrained(tmp / "whisper")
    return tmp / "whisper", "random encoder of Whisper base's shape (../shared absent)"


def build(source: Path, freeze: str, cache: Path | None, seed: int):
    import torch

    from serkit.model import ModelConfig, build_model
    from serkit.upstream.cache import install_feature_cache
    from serkit.downstream import AggregatorConfig
    from serkit.upstream.whisper import WhisperConfig

    cfg = ModelConfig(upstreams=[WhisperConfig(source=str(source), freeze=freeze,
                                                layer_norm=True, whisper_input="pad")],
                      aggregators=[AggregatorConfig(name="stats")])
    torch.manual_seed(seed)
    model = build_model(cfg, num_classes=8)
    if cache is not None:
        install_feature_cache(model, cache)
    trained = [p for p in model.parameters() if p.requires_grad]
    return model.train(), torch.optim.AdamW(trained, lr=1e-5), sum(p.numel() for p in trained)


def main() -> None:
    p = _common.parser(__doc__, repeats=3)
    p.add_argument("--bottom", type=int, default=4, help="frozen blocks of the partial side (bottom:N)")
    p.add_argument("--batch", type=int, default=4, help="clips per training step")
    p.add_argument("--seconds", type=float, default=3.7, help="clip length (RAVDESS: 3.7 s on average)")
    args = p.parse_args()
    _common.setup(args)
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source, what = encoder_source(tmp)
        clips = [torch.from_numpy(_common.voice_like(args.seconds, args.seed + i)) for i in range(args.batch)]
        wavs = torch.stack(clips)
        lens = torch.full((args.batch,), wavs.shape[1])
        labels = torch.arange(args.batch) % 8
        sides, params = {}, {}
        for name, freeze, cache in (("full (freeze cnn)", "cnn", None),
                                    (f"partial (bottom:{args.bottom}, cached bottom)", f"bottom:{args.bottom}",
                                     tmp / "cache"),
                                    ("frozen (freeze all, cached)", "all", tmp / "cache")):
            model, optimiser, params[name] = build(source, freeze, cache, args.seed)

            def step(model=model, optimiser=optimiser) -> None:
                optimiser.zero_grad()
                torch.nn.functional.cross_entropy(model(wavs, lens), labels).backward()
                optimiser.step()

            sides[name] = step
        times = _common.time_sides(sides, args.repeats, args.warmup)  # warm-up fills the caches
    full = _common.median(times["full (freeze cnn)"])
    table = _common.Table(
        f"Training step, {args.batch} clips of {args.seconds:g} s: partial fine-tuning vs full, {what}",
        ["side", "trainable params", "s / step (median, min-max)", "x full"])
    for name, values in times.items():
        table.add(name, f"{params[name]:,}", _common.spread(values), _common.fmt(_common.median(values) / full))
    ratio = _common.median(times[f"partial (bottom:{args.bottom}, cached bottom)"]) / full
    table.notes += [f"partial / full = {ratio:.3f}; goal <= {GOAL:.3f} (top 2 of 6 blocks): "
                    f"{_common.verdict(ratio <= GOAL)}",
                    "pad mode: full fine-tuning runs the whole 30 s window (1500 frames) through every block; the "
                    "partial side's top blocks see the real frames only (upstream/whisper.py)",
                    f"{args.repeats} timed steps per side after {args.warmup} untimed (sides take turns)"]
    _common.emit([table], args)


if __name__ == "__main__":
    sys.exit(main())
