"""Memory of `serkit predict` on long audio: peak RSS on a 10-minute recording vs. a 10-second one.

Usage: python benchmarks/predict_memory.py [--minutes 10] [--bundle DIR] [--segments vad] [--threads 1] [--out FILE]

Each run is a fresh `python -m serkit predict BUNDLE FILE --out ROWS` subprocess; its peak resident memory
is the kernel's ru_maxrss for exactly that process (os.wait4), so nothing of this script's own memory is
counted. Both recordings are 16 kHz 16-bit mono wavs of the same speech-like signal, written block by
block. `serkit predict` reads a long input one window at a time (10 s windows, 5 s hop by default) and
batches windows by length, so its memory should not grow with the recording. A third row shows a process
that only imports serkit and loads the bundle: what any prediction costs before the first sample.
The model: a tiny random wav2vec2 bundle (hf upstream -> mean pooling -> linear), or --bundle DIR.
Goal (issue 6): peak(10 min) <= 1.2 x peak(10 s).
--segments vad (issue 13) measures the timeline path instead: `serkit predict --segments vad`, which first
runs Silero VAD over the file block by block (30 s blocks; 4 bytes per 32 ms frame kept), then predicts each
speech segment (at most 10 s). The recordings are then speech-like bursts between silences (serkit's
synthetic voice, which Silero takes for speech), so that there are segments to predict. Same goal.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import _common

GOAL = 1.2
LOAD_ONLY = "from serkit.inference import EmotionRecognizer; import sys; EmotionRecognizer.load(sys.argv[1])"


def write_recording(path: Path, seconds: float, seed: int, talk: bool = False) -> Path:
    """A 16 kHz 16-bit mono wav of `seconds`, written a minute at a time (never whole in memory). talk:
    utterances of 1.5-6 s between silences of 0.5-2 s (serkit_synth.montage.synthetic_talk) instead of voice_like."""
    import soundfile as sf

    with sf.SoundFile(path, "w", samplerate=_common.SAMPLE_RATE, channels=1, subtype="PCM_16") as f:
        done, block = 0.0, 0
        while done < seconds:
            step = min(60.0, seconds - done)
            f.write(_talk(step, seed * 1000 + block) if talk else _common.voice_like(step, seed * 1000 + block))
            done += step
            block += 1
    return path


def _talk(seconds: float, seed: int):
    """[round(seconds * 16000)] float32: synthetic utterances between silences, cut to length."""
    import numpy as np

    from serkit_synth.montage import synthetic_talk

    rng = np.random.default_rng(seed)
    pattern = [(float(rng.uniform(0.5, 2.0)), float(rng.uniform(1.5, 6.0))) for _ in range(int(seconds // 2) + 1)]
    samples, _ = synthetic_talk(pattern, seed=seed, tail_seconds=0.0)
    return samples[: round(seconds * _common.SAMPLE_RATE)]


def tiny_bundle(directory: Path, seed: int) -> Path:
    import torch

    from serkit.bundle import save_bundle
    from serkit.config import load_config
    from serkit.model import build_model
    from serkit.upstream.tiny import save_tiny_speech_model

    source = save_tiny_speech_model(directory / "encoder", "wav2vec2", seed=seed)
    cfg = load_config(_common.tiny_bundle_config({"name": "hf", "source": str(source), "layers": "last",
                                                  "freeze": "all"}))
    torch.manual_seed(seed)
    model = build_model(cfg.model, num_classes=4)
    return save_bundle(directory / "bundle", model, cfg, ["neu", "hap", "ang", "sad"], metrics={"note": "untrained"})


def peak_rss_mb(command: list[str], threads: int) -> float:
    """Run `command`; -> its peak resident set size in MiB (ru_maxrss is in KiB on Linux)."""
    process = subprocess.Popen(command, env=_common.thread_env(threads), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
    process.stderr.close()
    if process.returncode:
        sys.exit(f"{' '.join(command)} failed ({process.returncode}):\n{stderr.decode(errors='replace')[-2000:]}")
    return usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)  # macOS reports bytes


def main() -> int:
    p = _common.parser(__doc__, repeats=3, warmup=0, repeats_help="subprocess runs per recording (median reported)",
                       warmup_help="unmeasured runs of each before the measured ones")
    p.add_argument("--minutes", type=float, default=10.0, help="length of the long recording")
    p.add_argument("--short-seconds", type=float, default=10.0, help="length of the short recording")
    p.add_argument("--bundle", type=Path, help="a model bundle to use instead of the tiny random one")
    p.add_argument("--segments", choices=("windows", "vad"), default="windows",
                   help="windows: fixed windows (issue 6); vad: the speech-segmented timeline (issue 13)")
    args = p.parse_args()
    _common.setup(args)

    with tempfile.TemporaryDirectory(prefix="serkit_bench_memory_") as tmp:
        tmp = Path(tmp)
        bundle = args.bundle or tiny_bundle(tmp, args.seed)
        talk = args.segments == "vad"
        short = write_recording(tmp / "short.wav", args.short_seconds, args.seed, talk)
        long = write_recording(tmp / "long.wav", args.minutes * 60, args.seed, talk)

        def predict(path: Path):
            return [sys.executable, "-m", "serkit", "predict", str(bundle), str(path), "--out", str(tmp / "rows.jsonl"),
                    "--segments", args.segments]

        commands = {"load": [sys.executable, "-c", LOAD_ONLY, str(bundle)], "short": predict(short),
                    "long": predict(long)}
        peaks: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.warmup):
            for command in commands.values():
                peak_rss_mb(command, args.threads)
        for _ in range(args.repeats):  # the three take turns
            for name, command in commands.items():
                peaks[name].append(peak_rss_mb(command, args.threads))
        rows = sum(1 for _ in open(tmp / "rows.jsonl", encoding="utf-8"))  # the last (long) run's output

    load, short_mb, long_mb = (_common.median(peaks[name]) for name in ("load", "short", "long"))
    ratio = long_mb / short_mb
    mode = "" if args.segments == "windows" else " --segments vad"
    table = _common.Table(
        f"Peak memory of `serkit predict{mode}` (RSS, MiB): {args.minutes:g}-minute vs {args.short_seconds:g}-second "
        "recording",
        ["process", "peak RSS, MiB", "above load-only, MiB", "ratio to the short recording", "goal", "met"],
    )
    table.add("import serkit + load the bundle (no prediction)", _common.spread(peaks["load"]), "0", "", "", "")
    table.add(f"`serkit predict`, {args.short_seconds:g} s recording (baseline)", _common.spread(peaks["short"]),
              f"{short_mb - load:.0f}", "1.00x", "", "")
    table.add(f"`serkit predict`, {args.minutes:g} min recording", _common.spread(peaks["long"]),
              f"{long_mb - load:.0f}", f"{ratio:.2f}x", f"<= {GOAL}x", _common.verdict(ratio <= GOAL))
    model = str(args.bundle) if args.bundle else "tiny random wav2vec2 bundle (hf -> mean -> linear)"
    table.notes += [
        f"model: {model}; " + ("default windows (10 s, hop 5 s)" if args.segments == "windows" else
                               "Silero VAD segments (default VadSettings)")
        + f"; the long run wrote {rows} rows (the whole file + one per "
        + ("window)" if args.segments == "windows" else "speech segment)"),
        f"median (min-max) of {args.repeats} runs each, one subprocess per run (ru_maxrss of that process)",
    ]
    _common.emit([table], args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
