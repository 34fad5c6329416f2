"""Memory of `serkit predict` over many files: peak RSS at N files vs. a quarter of them, oneDNN's primitive
cache capped (serkit's default in predict and serve, util/onednn.py) vs. oneDNN's own default (1024 entries).

Usage: python benchmarks/predict_files_memory.py [--files 600] [--few-files 150] [--encoder small|tiny] [--out FILE]

Each run is a fresh `python -m serkit predict BUNDLE FOLDER --threads 1 --out ROWS` subprocess; its peak RSS is
the kernel's VmHWM of exactly that process. Files are 0.5-3 s of a speech-like signal, each of its own length
(as an archive's are). The model: a random wav2vec2 bundle (mean pooling + linear); the default "small"
encoder (hidden 256, 4 layers, group-norm feature extractor: one utterance per call, so one new input shape
per file) is where a growing cache shows. The baseline side sets ONEDNN_PRIMITIVE_CACHE_CAPACITY=1024, which
serkit leaves alone (a user's own setting wins). Goal (issue 13, memory flat in the number of files):
peak(N files) <= 1.2 x peak(N/4 files).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import _common
from ray_predict import make_bundle, run_measured

GOAL = 1.2
SIDES = {"serkit predict (oneDNN cache capped at 64, the default)": {},
         "baseline: oneDNN's default cache (ONEDNN_PRIMITIVE_CACHE_CAPACITY=1024)":
             {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "1024"}}


def main() -> int:
    p = _common.parser(__doc__, repeats=1, warmup=None, repeats_help="runs per side and size (median)")
    p.add_argument("--files", type=int, default=600, help="files in the larger archive")
    p.add_argument("--few-files", type=int, default=150, help="files in the smaller archive (its first ones)")
    p.add_argument("--encoder", choices=_common.ENCODER_SIZES, default="small", help="size of the random wav2vec2")
    args = p.parse_args()
    if not 0 < args.few_files < args.files:
        sys.exit("--few-files must be between 0 and --files")
    _common.setup(args)

    with tempfile.TemporaryDirectory(prefix="serkit_bench_files_memory_") as tmp:
        tmp = Path(tmp)
        bundle = make_bundle(tmp, args.encoder, args.seed)
        folders = _common.short_archive(tmp, args.files, args.seed, {"few": args.few_files})
        peaks: dict[tuple[str, int], list[float]] = {}
        seconds: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.repeats):  # sides and sizes take turns
            for count, folder in ((args.few_files, folders["few"]), (args.files, folders["all"])):
                for side, extra in SIDES.items():
                    env = {k: v for k, v in _common.thread_env(args.threads).items()
                           if k not in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "DNNL_PRIMITIVE_CACHE_CAPACITY")} | extra
                    run = run_measured([sys.executable, "-m", "serkit", "predict", str(bundle), str(folder),
                                        "--threads", str(args.threads), "--out", str(tmp / "rows.jsonl")], env)
                    peaks.setdefault((side, count), []).append(run.peak_mb)
                    seconds.setdefault((side, count), []).append(run.seconds)

    few_n, many = args.few_files, args.files
    table = _common.Table(
        f"Peak memory of `serkit predict` over many files: {_common.encoder_description('wav2vec2', args.encoder)}"
        f" bundle, 0.5-3 s files, {args.threads} thread(s)",
        ["side", f"peak RSS MiB, {few_n} files", f"peak RSS MiB, {many} files", f"ratio {many} / {few_n}",
         "goal", "met", f"wall s, {many} files"])
    for side in SIDES:
        small, large = _common.median(peaks[side, few_n]), _common.median(peaks[side, many])
        table.add(side, f"{small:.0f}", f"{large:.0f}", f"{large / small:.2f}x", f"<= {GOAL}x",
                  _common.verdict(large / small <= GOAL), _common.fmt(_common.median(seconds[side, many])))
    ours, baseline = (_common.median(peaks[side, many]) for side in SIDES)
    table.notes += [f"at {many} files serkit's peak is {ours / baseline:.2f}x the baseline's",
                    f"median of {args.repeats} run(s) per cell; each run a fresh subprocess, peak RSS = its VmHWM"]
    _common.emit([table], args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
