"""Memory of a fine-tuning process over clips of every length: oneDNN's primitive cache capped (64 entries, what
`serkit cv` / `serkit paper` now set, util/onednn.py) vs. oneDNN's own default (1024), and batches of one
fixed width as the control.

Usage: python benchmarks/train_memory.py [--steps 160] [--clips 3] [--encoder base|tiny] [--out FILE]

Why: a `serkit cv` process fine-tuning Whisper base in crop mode grew from 3.2 to 6.3 GB of resident memory
over an 8-class RAVDESS fold (docs/results.md). Crop mode runs a batch at its longest clip's width, so the
encoder's input convolutions meet a new shape with nearly every batch, and oneDNN (torch's CPU convolutions)
keeps the kernels it built per shape. Each side is a fresh subprocess (`--child`) that builds the model of
configs/ravdess/whisper_base_finetune.yaml (the real Whisper base of ../shared, or with `--encoder tiny` a tiny
random Whisper-shaped one) and runs --steps training steps (forward, backward, AdamW) on --clips clips of random
audio, 2.5-5 s each (RAVDESS-like), seeded: the same clips on every side but the control (3 clips of 3.75 s,
narrower than a varying batch's mean width, ~4.4 s). It reports its resident memory (VmRSS) after 10 steps
and at the end (on the trimming side right after a trim, as both are multiples of 10), and its peak (VmHWM). The
sides run one after another, --repeats times, taking turns. No goal in an issue: informative (results.md, "Not done
yet").
"""

from __future__ import annotations

import argparse
import ctypes
import json
import subprocess
import sys
import time
from pathlib import Path

import _common

SIDES = {  # name -> (extra environment, batch widths, malloc_trim every N steps (0: never))
    "serkit (oneDNN cache capped at 64)": ({"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "64"}, "vary", 0),
    "baseline: oneDNN's default cache (1024)": ({"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "1024"}, "vary", 0),
    "control: default cache, one fixed width": ({"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "1024"}, "fixed", 0),
    "capped + glibc malloc_trim every 10 steps": ({"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "64"}, "vary", 10),
}
WARM_STEPS = 10
CLIP_SECONDS = (2.5, 5.0)


def status_mib(field: str) -> float:
    """VmRSS / VmHWM of this process, MiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(args) -> int:
    """One side: the steps, then one JSON line on stdout."""
    import numpy as np
    import torch

    from serkit.config import load_config
    from serkit.model import build_model

    source = args.source or str(_common.WHISPER_BASE)
    cfg = load_config(_common.REPO / "configs/ravdess/common.yaml",
                      _common.REPO / "configs/ravdess/whisper_base_finetune.yaml",
                      overrides=[f"model.upstreams.0.source={source}"])
    torch.manual_seed(args.seed)
    model = build_model(cfg.model, num_classes=8).train()
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    rng = np.random.default_rng(args.seed)
    libc = ctypes.CDLL("libc.so.6") if args.trim_every else None
    low, high = (int(s * _common.SAMPLE_RATE) for s in CLIP_SECONDS)
    warm = None
    started = time.perf_counter()
    for step in range(1, args.steps + 1):
        lens = rng.integers(low, high, args.clips) if args.widths == "vary" else [(low + high) // 2] * args.clips
        wav_lens = torch.as_tensor(lens, dtype=torch.long)
        wavs = torch.from_numpy(rng.standard_normal((args.clips, int(wav_lens.max()))).astype("float32")) * 0.1
        loss = model.classifier(model.embed(wavs, wav_lens, None)).logsumexp(-1).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if args.trim_every and step % args.trim_every == 0:
            libc.malloc_trim(0)  # hand freed heap pages back to the kernel
        if step == WARM_STEPS:
            warm = status_mib("VmRSS")
    seconds = time.perf_counter() - started
    print(json.dumps({"warm_mib": warm, "end_mib": status_mib("VmRSS"), "peak_mib": status_mib("VmHWM"),
                      "seconds_per_step": seconds / args.steps}))
    return 0


def main() -> int:
    p = _common.parser(__doc__, repeats=1, warmup=None, repeats_help="runs per side (median)")
    p.add_argument("--steps", type=int, default=160, help=f"training steps per run (more than {WARM_STEPS})")
    p.add_argument("--clips", type=int, default=3, help="clips per step")
    p.add_argument("--encoder", choices=("base", "tiny"), default="base",
                   help="the real Whisper base of ../shared, or a tiny random Whisper-shaped encoder")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # the options of one side's process
    p.add_argument("--widths", choices=("vary", "fixed"), default="vary", help=argparse.SUPPRESS)
    p.add_argument("--source", help=argparse.SUPPRESS)
    p.add_argument("--trim-every", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.steps <= WARM_STEPS or args.clips < 1:
        sys.exit(f"--steps must be more than {WARM_STEPS} and --clips at least 1")
    _common.setup(args)
    if args.child:
        return child(args)

    import tempfile

    with tempfile.TemporaryDirectory(prefix="serkit_bench_train_memory_") as tmp:
        source = tiny_whisper(Path(tmp)) if args.encoder == "tiny" else str(_common.WHISPER_BASE)
        if args.encoder == "base" and not _common.WHISPER_BASE.is_dir():
            sys.exit(f"no Whisper base at {_common.WHISPER_BASE} (../shared); use --encoder tiny")
        runs: dict[str, list[dict]] = {side: [] for side in SIDES}
        for _ in range(args.repeats):  # the sides take turns
            for side, (extra, widths, trim_every) in SIDES.items():
                env = {k: v for k, v in _common.thread_env(args.threads).items()
                       if k not in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "DNNL_PRIMITIVE_CACHE_CAPACITY")} | extra
                command = [sys.executable, __file__, "--child", "--widths", widths, "--source", source,
                           "--steps", str(args.steps), "--clips", str(args.clips), "--threads", str(args.threads),
                           "--seed", str(args.seed), "--trim-every", str(trim_every)]
                done = subprocess.run(command, env=env, capture_output=True, text=True)
                if done.returncode:
                    sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
                runs[side].append(json.loads(done.stdout.strip().splitlines()[-1]))

    med = {side: {key: _common.median([r[key] for r in rs]) for key in rs[0]} for side, rs in runs.items()}
    table = _common.Table(
        f"Resident memory of a fine-tuning process, Whisper {args.encoder} (whisper_base_finetune.yaml: crop, "
        f"freeze cnn), {args.steps} steps of {args.clips} clips of {CLIP_SECONDS[0]:g}-{CLIP_SECONDS[1]:g} s, "
        f"{args.threads} thread(s)",
        ["side", f"RSS MiB after {WARM_STEPS} steps", f"RSS MiB after {args.steps}", "growth MiB", "peak MiB",
         "peak / capped peak", "s / step", "s / step vs capped"])
    capped = med[next(iter(SIDES))]
    for side, m in med.items():
        table.add(side, f"{m['warm_mib']:.0f}", f"{m['end_mib']:.0f}", f"{m['end_mib'] - m['warm_mib']:+.0f}",
                  f"{m['peak_mib']:.0f}", f"{m['peak_mib'] / capped['peak_mib']:.2f}x",
                  _common.fmt(m["seconds_per_step"]), f"{m['seconds_per_step'] / capped['seconds_per_step']:.2f}x")
    table.notes += [f"median of {args.repeats} run(s) per side; each run a fresh subprocess; RSS = its VmRSS, "
                    "peak = its VmHWM",
                    "control: every clip of every step the same length (3.75 s), so every shape is met once",
                    "the malloc_trim side trims every 10 steps, so its two RSS columns are read right after a trim"]
    _common.emit([table], args)
    return 0


def tiny_whisper(directory: Path) -> str:
    from serkit.upstream.tiny import save_tiny_whisper

    return str(save_tiny_whisper(directory / "whisper-tiny", window_seconds=30))


if __name__ == "__main__":
    sys.exit(main())
