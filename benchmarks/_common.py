"""What every benchmark script shares: arguments, thread settings, timing, the Markdown table, test inputs.

Imported by the scripts as `_common` (they run as `python benchmarks/<name>.py`, so this folder is on
sys.path). torch is imported only after `setup(args)` has set the thread environment, so that both sides of
a comparison run on the same number of threads from their first operation on.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
WHISPER_TINY = SHARED / "models" / "whisper-tiny.en-encoder"
WHISPER_BASE = SHARED / "models" / "whisper-base-encoder"
RAVDESS = SHARED / "data" / "ravdess"
SAMPLE_RATE = 16000
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def parser(doc: str, repeats: int = 5, warmup: int | None = 1, repeats_help: str | None = None,
           warmup_help: str | None = None) -> argparse.ArgumentParser:
    """An ArgumentParser with the options every script has: --threads, --repeats, --warmup (unless warmup is
    None: nothing to warm up), --seed, --out. The help texts say what a repeat / warm-up is in that script."""
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--threads", type=int, default=1,
                   help="torch / BLAS / OpenMP threads, the same for both sides of the comparison")
    p.add_argument("--repeats", type=int, default=repeats,
                   help=repeats_help or "timed runs per side (the median is reported)")
    if warmup is not None:
        p.add_argument("--warmup", type=int, default=warmup,
                       help=warmup_help or "untimed runs per side before the timed ones")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic inputs")
    p.add_argument("--out", type=Path, help="also write the Markdown table to this file")
    return p


def setup(args: argparse.Namespace) -> None:
    """Thread count for this process (and the subprocesses it starts), an offline hub, quiet libraries.
    Call before the first `import torch`."""
    if args.threads < 1 or getattr(args, "repeats", 1) < 1 or getattr(args, "warmup", 0) < 0:
        sys.exit("--threads and --repeats must be >= 1, --warmup >= 0")
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import torch

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(args.threads)
    except RuntimeError:  # already set (only possible once per process, before any parallel work)
        pass
    import warnings

    # Lightning's advice lines (workers, eval-mode modules, ...) are about training setups, not about speed
    warnings.filterwarnings("ignore", module=r"lightning(\..*)?")
    warnings.filterwarnings("ignore", message=r".*(num_workers|eval mode|LeafSpec|logging interval).*")
    import logging

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "transformers", "serkit"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars on every from_pretrained


def quiet_lightning() -> None:
    """Lightning sets its loggers to INFO when imported ("GPU available: False", tips): call after importing it."""
    import logging

    import lightning  # noqa: F401

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def thread_env(threads: int) -> dict[str, str]:
    """os.environ for a subprocess that must run on `threads` threads."""
    return {**os.environ, **{name: str(threads) for name in _THREAD_VARIABLES}}


def time_sides(sides: dict[str, Callable[[], object]], repeats: int, warmup: int) -> dict[str, list[float]]:
    """Seconds of each timed call, per side. The sides take turns (a, b, a, b, ...) so that a change in the
    machine's load (the CPU is shared) affects both alike; warm-up calls come first and are not timed."""
    for _ in range(warmup):
        for run in sides.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, run in sides.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> str:
    """'median (min-max)' with 3 significant digits, for a column that shows how steady a number was."""
    return f"{fmt(median(values))} ({fmt(min(values))}-{fmt(max(values))})"


def fmt(value: float, digits: int = 3) -> str:
    if value == 0 or not np.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}" if abs(value) < 10 ** digits else f"{value:.0f}"


@dataclass
class Table:
    """A Markdown table with a title and notes; `render()` is what is printed and written to --out."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells) -> None:
        self.rows.append([str(c) for c in cells])

    def render(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def verdict(met: bool) -> str:
    return "yes" if met else "**no**"


def machine_note(args: argparse.Namespace) -> str:
    """One line on where the numbers come from (the CPU is shared with other jobs: load average at the end)."""
    import torch

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{args.threads} thread(s); load average at the end {load} (a shared CPU: other jobs ran too)")


def emit(tables: Sequence[Table], args: argparse.Namespace, command: str | None = None) -> None:
    """Print the tables (+ the command line and the machine note) and write them to args.out if given."""
    command = command or "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    text = f"`{command}`\n\n" + "\n".join(t.render() for t in tables) + f"\n_{machine_note(args)}_\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")


# -- inputs ---------------------------------------------------------------------------------------------


def voice_like(seconds: float, seed: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """[S] float32 speech-like audio: harmonics of a gliding f0 under a syllable-rate envelope, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    f0 = 110 + 60 * rng.random() + 30 * np.sin(2 * np.pi * (0.5 + rng.random()) * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * (3 + 2 * rng.random()) * t + seed) ** 2
    return (0.2 * envelope * voiced + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def write_clips(directory: Path, seconds: Sequence[float], seed: int) -> list[Path]:
    """One 16 kHz mono 16-bit wav per length in `seconds` -> their paths (clip_000.wav, ...)."""
    import soundfile as sf

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, duration in enumerate(seconds):
        path = directory / f"clip_{i:03d}.wav"
        sf.write(path, voice_like(duration, seed * 1000 + i), SAMPLE_RATE, subtype="PCM_16")
        paths.append(path)
    return paths


def short_archive(directory: Path, files: int, seed: int, subsets: dict[str, int]) -> dict[str, Path]:
    """An archive of `files` short clips (0.5-3 s, each of its own length) in directory/"all", and for each
    {name: n} of subsets a folder directory/name holding hard links to its first n -> {"all" | name: folder}."""
    lengths = np.random.default_rng(seed).uniform(0.5, 3.0, files)
    clips = write_clips(directory / "all", lengths, seed)
    folders = {"all": directory / "all"}
    for name, count in subsets.items():
        folders[name] = directory / name
        folders[name].mkdir()
        for clip in clips[:count]:
            os.link(clip, folders[name] / clip.name)
    return folders


def ravdess_files(root: Path, count: int | None = None) -> list[Path]:
    """RAVDESS audio files under root (sorted); `count` of them spread evenly over the list."""
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".flac", ".wav"))
    if count is not None and len(files) > count:
        files = [files[int(i)] for i in np.linspace(0, len(files) - 1, count)]
    return files


def optional_dir(value: str | None, default: Path) -> Path | None:
    """A --flag naming a folder: its value if given (it must exist), else `default` when it exists, else None.
    The value 'none' switches the default off."""
    if value is not None:
        if value.lower() == "none":
            return None
        path = Path(value)
        if not path.is_dir():
            sys.exit(f"{path}: not a folder")
        return path
    return default if default.is_dir() else None


# a "small" random encoder: ~8x the tiny one's hidden size, 4 layers, a 128-channel CNN (a real base model:
# 768, 12 layers, 512 channels); the same families and layout as serkit.upstream.tiny
SMALL_SPEECH = dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
                    conv_dim=(128,) * 7, num_conv_pos_embeddings=32, num_conv_pos_embedding_groups=4, vocab_size=12)
ENCODER_SIZES = ("tiny", "small")


def save_speech_model(directory: Path, family: str, size: str, seed: int) -> Path:
    """A random speech encoder saved like a real checkpoint: serkit's tiny stand-in, or SMALL_SPEECH."""
    from serkit.upstream.tiny import FAMILIES, save_tiny_speech_model

    if size == "tiny":
        return save_tiny_speech_model(directory, family, seed=seed)
    import torch
    import transformers

    config_name, overrides = FAMILIES[family]
    config = getattr(transformers, config_name)(**{**SMALL_SPEECH, **overrides})
    torch.manual_seed(seed)
    transformers.AutoModel.from_config(config).save_pretrained(directory)
    transformers.Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=SAMPLE_RATE, do_normalize=True, return_attention_mask=True
    ).save_pretrained(directory)
    return directory


def encoder_description(family: str, size: str) -> str:
    spec = SMALL_SPEECH if size == "small" else {"hidden_size": 32, "num_hidden_layers": 2}
    return f"{size} random {family} (hidden {spec['hidden_size']}, {spec['num_hidden_layers']} layers)"


def shown(path: Path) -> str:
    """A path as tables show it: relative to the working directory when that is shorter (../shared/...)."""
    relative = os.path.relpath(path)
    return relative if len(relative) < len(str(path)) else str(path)


def tiny_bundle_config(upstream: dict, aggregator: str = "mean") -> dict:
    """An experiment config (as a dict) with one upstream and an aggregator, for serkit.config.load_config."""
    aggregators = [{"name": aggregator}]
    if aggregator == "ecapa":
        from serkit.demo import DEMO_ECAPA

        aggregators = [{"name": "ecapa", **DEMO_ECAPA}]
    return {"name": "benchmark", "model": {"upstreams": [upstream], "aggregators": aggregators}}
