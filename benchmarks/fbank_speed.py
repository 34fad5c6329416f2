"""The filterbank upstream's speed: kaldi-native-fbank one utterance at a time (what serkit ran until the torch
filterbank, samples passed as Python lists) against the batched torch filterbank (upstream/fbank.py), on one
CPU thread, with the largest difference between the two.

    python benchmarks/fbank_speed.py [--utterances 64] [--repeats 3]

Needs kaldi-native-fbank (the `test` extra). Utterances: 1-10 s of noise under a slow envelope (the cost does
not depend on the content). Torch runs them as one padded batch, and as length-sorted batches of 8 (what
duration-bucketed training batches look like).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from serkit.upstream.fbank import FbankUpstream, kaldi_reference


def best_of(repeats: int, run) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def padded(waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lens = torch.tensor([len(w) for w in waves])
    wavs = torch.zeros(len(waves), int(lens.max()))
    for row, w in enumerate(waves):
        wavs[row, : len(w)] = torch.from_numpy(w)
    return wavs, lens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    waves = []
    for seconds in rng.uniform(1.0, 10.0, args.utterances):
        n = int(seconds * 16000)
        envelope = 0.5 + 0.5 * np.sin(np.linspace(0, 6.0, n))
        waves.append((0.1 * envelope * rng.standard_normal(n)).astype(np.float32))
    total_seconds = sum(len(w) for w in waves) / 16000
    upstream = FbankUpstream().eval()
    one_batch = padded(waves)
    ordered = sorted(waves, key=len)
    batches_of_8 = [padded(ordered[i: i + 8]) for i in range(0, len(ordered), 8)]

    with torch.inference_mode():
        kaldi = [kaldi_reference(w) for w in waves]
        out = upstream(*one_batch)
        diff = max(float(np.abs(out.hidden[0][row, : len(k)].numpy() - k).max()) for row, k in enumerate(kaldi))
        rows = [
            ("kaldi-native-fbank, per utterance", best_of(args.repeats, lambda: [kaldi_reference(w) for w in waves])),
            ("torch, one padded batch", best_of(args.repeats, lambda: upstream(*one_batch))),
            ("torch, sorted batches of 8", best_of(args.repeats, lambda: [upstream(*b) for b in batches_of_8])),
        ]
    print(f"{args.utterances} utterances, {total_seconds:.0f} s of audio, 1 thread, best of {args.repeats}")
    print(f"{'':36s} {'seconds':>8s} {'x real time':>12s} {'vs kaldi':>9s}")
    for name, seconds in rows:
        print(f"{name:36s} {seconds:8.3f} {total_seconds / seconds:12.0f} {rows[0][1] / seconds:8.2f}x")
    print(f"max abs difference torch vs kaldi-native-fbank (log-mel): {diff:.2e}")


if __name__ == "__main__":
    main()
