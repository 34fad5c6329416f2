"""A cached head's training step: the feature cache serving its layers as views of one padded block, which a
weighted LayerSelector mixes in place, vs. the code before (each layer padded on its own, then stacked into a copy).

Usage: python benchmarks/cached_layers.py [--batch 32] [--steps 20] [--repeats 5] [--layers 7] [--dim 512] [--out FILE]

Why: a py-spy profile of a frozen Whisper base head's epoch from the feature cache (session 17, 8-class RAVDESS)
spent 52 % in LayerSelector.forward, 21 % of it in torch.stack of the 7 layers into [L, B, T, D]. Both sides run
the same step on the same frames, read from the same on-disk cache (src/serkit/upstream/cache.py, float16
entries, Whisper base's shape: 7 layers of 512 dims, 150-250 frames a clip, RAVDESS's 3-5 s at 50 frames/s):
the cache lookup and padding, the weighted LayerSelector with layer_norm (the RAVDESS recipes), statistics
pooling, a linear layer, cross-entropy, backward and an AdamW step. Both give the same numbers bit for bit
(tests/upstream/test_cache.py); only where the padded layers live differs. Audio decoding, which a real epoch
also pays (~13 % in that profile), is not in either side. No goal in an issue: informative.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

import _common


def build(args, directory: Path):
    """-> (cache class per side, wavs [B, S], wav_lens [B], encode) with every clip already in the cache."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    from serkit.upstream.base import UpstreamOutput
    from serkit.upstream.cache import FeatureCache

    class StackedBefore(FeatureCache):
        """The code before: one padded tensor per layer, which a weighted selector then stacks into a copy."""

        @staticmethod
        def _pad(per_row, device):
            return [pad_sequence([stored[slot] for stored in per_row], batch_first=True).to(device, torch.float32)
                    for slot in range(len(per_row[0]))]

    rng = np.random.default_rng(args.seed)
    frames = rng.integers(150, 251, args.batch)
    wavs = torch.from_numpy(rng.standard_normal((args.batch, 16000)).astype(np.float32))  # distinct clips
    wav_lens = torch.full((args.batch,), 16000)
    generator = torch.Generator().manual_seed(args.seed)

    def encode(sub_wavs, sub_lens):  # stands for the frozen encoder, only ever run on the first (untimed) call
        lens = torch.from_numpy(frames[: sub_wavs.shape[0]]).long()  # the cache fills all rows at once
        hidden = [torch.randn(sub_wavs.shape[0], int(lens.max()), args.dim, generator=generator) * (i + 1)
                  for i in range(args.layers)]
        return UpstreamOutput(hidden, lens)

    sides = {"serkit: views of one block, mixed in place": FeatureCache,
             "baseline: a tensor per layer, stacked (before)": StackedBefore}
    key = "benchmark"
    FeatureCache(directory, key, args.layers, tuple(range(args.layers)))(encode, wavs, wav_lens)
    return sides, wavs, wav_lens, encode, key


def make_step(cache_class, args, directory: Path, key: str, wavs, wav_lens, encode):
    """-> (a callable running --steps training steps of a fresh head, its parameters); the same initial weights on
    every side, so after the same number of steps the sides' parameters must be equal bit for bit."""
    import torch
    from torch.nn import functional as F

    from serkit.downstream.stats_pool import StatisticsPooling
    from serkit.upstream.layers import LayerSelector

    cache = cache_class(directory, key, args.layers, tuple(range(args.layers)))
    torch.manual_seed(args.seed)
    selector = LayerSelector(args.layers, "weighted", layer_norm=True)
    pooling, linear = StatisticsPooling(args.dim), torch.nn.Linear(2 * args.dim, 8)
    params = [*selector.parameters(), *linear.parameters()]
    optimiser = torch.optim.AdamW(params, lr=1e-3)
    labels = torch.arange(args.batch) % 8

    def run() -> None:
        for _ in range(args.steps):
            out = cache(encode, wavs, wav_lens)
            logits = linear(pooling(selector(out.hidden), out.frame_lens))
            optimiser.zero_grad()
            F.cross_entropy(logits, labels).backward()
            optimiser.step()
        if cache.misses:
            sys.exit("the cache missed: the benchmark would time the fake encoder")

    return run, params


def main() -> int:
    p = _common.parser(__doc__, repeats=5, warmup=1,
                       repeats_help="timed runs of --steps steps per side (the sides take turns; median reported)")
    p.add_argument("--batch", type=int, default=32, help="clips per batch")
    p.add_argument("--steps", type=int, default=20, help="training steps per timed run")
    p.add_argument("--layers", type=int, default=7, help="cached layers (Whisper base: 7)")
    p.add_argument("--dim", type=int, default=512, help="frame dimension (Whisper base: 512)")
    args = p.parse_args()
    _common.setup(args)
    if min(args.batch, args.steps, args.layers, args.dim) < 1:
        sys.exit("--batch, --steps, --layers and --dim must be >= 1")

    with tempfile.TemporaryDirectory(prefix="serkit_bench_layers_") as tmp:
        sides, wavs, wav_lens, encode, key = build(args, Path(tmp))
        steps = {name: make_step(cls, args, Path(tmp), key, wavs, wav_lens, encode) for name, cls in sides.items()}
        times = _common.time_sides({name: run for name, (run, _) in steps.items()}, args.repeats, args.warmup)
    import torch

    ours, before = (params for _, params in steps.values())
    if not all(torch.equal(a, b) for a, b in zip(ours, before)):
        sys.exit("the two sides trained different weights: the change is not a pure speed-up")
    baseline = _common.median(times["baseline: a tensor per layer, stacked (before)"])
    table = _common.Table(
        f"Cached head, training step: {args.batch} clips x {args.layers} layers x {args.dim} dims, float16 cache",
        ["side", "ms / step, median (min-max)", "time / baseline"])
    for name, seconds in times.items():
        per_step = [1000 * s / args.steps for s in seconds]
        table.add(name, _common.spread(per_step), f"{_common.median(seconds) / baseline:.3f}")
    table.notes += [
        f"{args.repeats} timed runs of {args.steps} steps per side after {args.warmup} untimed; the sides take turns",
        "step = cache lookup (safetensors read) and padding, weighted LayerSelector (layer_norm), statistics "
        "pooling, linear, cross-entropy, backward, AdamW; no audio decoding",
        "checked: after the runs both sides hold the same weights bit for bit",
    ]
    _common.emit([table], args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
