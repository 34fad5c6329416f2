"""Fine-tuning on a CPU in bfloat16: a training step of Whisper base fine-tuned whole (crop mode, the RAVDESS
recipe's model) in float32 vs under bf16 autocast (`train.precision=bf16-mixed`), in one run, as a ratio.

Usage: python benchmarks/cpu_precision.py [--batch 4] [--seconds 3.7] [--threads 1] [--out FILE]

CPUs with AVX512_BF16 or AMX (Intel Sapphire Rapids and later, AMD Zen 4 and later) run bfloat16 matrix products
in hardware through oneDNN; older ones emulate them, which can make bf16 slower than float32 (not measured here). Each side trains its own copy of the
same model (freeze "cnn", weighted layers -> statistics pooling -> linear) on the same batch: forward,
cross-entropy, backward, AdamW step; the weights and the optimiser stay float32 on both (mixed precision). The
recipe's dropout, mixup and label smoothing cost little and are left out; so are data loading, validation and
the batches' changing widths, which a real fold pays too (its time: the cost.json of a run with the option).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

import _common
from partial_finetune import encoder_source


def build(source: Path, seed: int):
    import torch

    from serkit.downstream import AggregatorConfig
    from serkit.model import ModelConfig, build_model
    from serkit.upstream.whisper import WhisperConfig

    cfg = ModelConfig(upstreams=[WhisperConfig(source=str(source), freeze="cnn", layer_norm=True,
                                               whisper_input="crop")],
                      aggregators=[AggregatorConfig(name="stats")])
    torch.manual_seed(seed)
    model = build_model(cfg, num_classes=8).train()
    return model, torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)


def cpu_flags() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    found = [f for f in ("avx512_bf16", "amx_bf16") if f in flags.split()]
    return ", ".join(found) or "neither avx512_bf16 nor amx_bf16 (bfloat16 is emulated)"


def main() -> None:
    p = _common.parser(__doc__, repeats=3)
    p.add_argument("--batch", type=int, default=4, help="clips per training step")
    p.add_argument("--seconds", type=float, default=3.7, help="clip length (RAVDESS: 3.7 s on average)")
    args = p.parse_args()
    _common.setup(args)
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        source, what = encoder_source(Path(tmp))
        wavs = torch.stack([torch.from_numpy(_common.voice_like(args.seconds, args.seed + i))
                            for i in range(args.batch)])
        lens = torch.full((args.batch,), wavs.shape[1])
        labels = torch.arange(args.batch) % 8
        sides, losses = {}, {}
        for name, autocast in (("float32", contextlib.nullcontext),
                               ("bf16 autocast",  # as Lightning's bf16-mixed enters it
                                lambda: torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False))):
            model, optimiser = build(source, args.seed)

            def step(model=model, optimiser=optimiser, autocast=autocast, name=name) -> None:
                optimiser.zero_grad()
                with autocast():
                    loss = torch.nn.functional.cross_entropy(model(wavs, lens).float(), labels)
                loss.backward()
                optimiser.step()
                losses.setdefault(name, float(loss))  # the first step's loss: same weights, same batch

            sides[name] = step
        times = _common.time_sides(sides, args.repeats, args.warmup)
    base = _common.median(times["float32"])
    table = _common.Table(f"Fine-tuning step on the CPU, {args.batch} clips of {args.seconds:g} s (crop), {what}",
                          ["side", "s / step (median, min-max)", "x float32", "first step's loss"])
    for name, values in times.items():
        table.add(name, _common.spread(values), _common.fmt(_common.median(values) / base), f"{losses[name]:.4f}")
    table.notes += [f"CPU bfloat16 support: {cpu_flags()}",
                    f"{args.repeats} timed steps per side after {args.warmup} untimed (sides take turns)"]
    _common.emit([table], args)


if __name__ == "__main__":
    sys.exit(main())
