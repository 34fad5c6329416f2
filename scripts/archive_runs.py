"""Copy the small records of finished run folders (no weights) into the repository, so tables and ensembles
outlive the machine that ran them.

    python scripts/archive_runs.py RUNS docs/runs base_finetune_8 probe_refit_wave2_stats_base_pad_8 ...

A run folder of `serkit cv`, `serkit baseline` or `serkit ensemble` is mostly weights (model bundles, checkpoints:
tens of MB a fold) around a few kB of records. What the tables and `serkit ensemble` read is the records:
cv.json / cost.json / probe.json / baseline.json / ensemble.json, and per fold result.json (which also marks
the fold finished, so `serkit cv` on a restored folder skips it), cost.json and predictions.csv (the
validation and test probabilities an ensemble combines). This keeps those and leaves out:
- any folder that holds weights (`*.safetensors`, `*.ckpt`, `*.pt`, `*.bin`): a bundle or checkpoints;
- the corpus audio check's cache (`audio_check.json`: the run re-derives it);
- any other suffix than .json / .csv / .md / .yaml / .txt, and any file over --max-kb (a log gone wild).

An archived folder is itself a run folder without weights: `serkit ensemble docs/runs/A docs/runs/B ...` and
`scripts/results_table.py docs/results_runs.yaml docs/runs` read it as they are; to add folds to a partial
run, copy it back (`cp -r docs/runs/X RUNS/`) and run the same `serkit cv` command with `--folds`. A fold
still running (neither result.json nor predictions.csv) is left out, so an archive holds finished folds only.
The copy replaces the archived folder as a whole, so a file removed from the run does not linger.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

KEPT_SUFFIXES = {".json", ".csv", ".md", ".yaml", ".txt"}
WEIGHT_SUFFIXES = {".safetensors", ".ckpt", ".pt", ".bin"}
LEFT_OUT_NAMES = {"audio_check.json"}  # serkit.data.check.CACHE_NAME: a cache, not a record


def records(run: Path, max_bytes: int) -> list[Path]:
    """The files of `run` to keep, relative to it: see the module docstring for the rule."""
    weight_dirs = {p.parent for p in run.rglob("*") if p.suffix in WEIGHT_SUFFIXES}
    unfinished = {p for p in run.glob("fold_*")  # a cv fold writes both when done; a baseline's, predictions
                  if p.is_dir() and not (p / "result.json").is_file() and not (p / "predictions.csv").is_file()}
    kept = []
    for path in sorted(run.rglob("*")):
        if not path.is_file() or path.suffix not in KEPT_SUFFIXES or path.name in LEFT_OUT_NAMES:
            continue
        if any(parent in weight_dirs or parent in unfinished for parent in path.parents):
            continue
        if path.stat().st_size > max_bytes:
            print(f"left out (over {max_bytes // 1024} kB): {path}", file=sys.stderr)
            continue
        kept.append(path.relative_to(run))
    return kept


def archive(run: Path, dest: Path, max_bytes: int) -> list[Path]:
    """Copy `run`'s records to `dest` (replaced as a whole); -> the relative paths copied."""
    if not (run / "cv.json").is_file() and not any(run.glob("fold_*/result.json")) \
            and not any(run.glob("fold_*/predictions.csv")):
        raise SystemExit(f"{run}: no cv.json and no finished fold (fold_<k>/result.json or predictions.csv): "
                         "not a serkit run folder, or nothing in it has finished")
    kept = records(run, max_bytes)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))  # same disk: the swap is a rename
    try:
        for rel in kept:
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(run / rel, staging / rel)
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return kept


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, help="folder holding the run folders (RUNS of docs/results_runs.yaml)")
    parser.add_argument("dest", type=Path, help="where the records go, one folder per run (e.g. docs/runs)")
    parser.add_argument("names", nargs="+", help="run folder names under RUNS")
    parser.add_argument("--max-kb", type=int, default=1024, help="leave out any file larger than this (kB)")
    args = parser.parse_args(argv)
    missing = [name for name in args.names if not (args.runs / name).is_dir()]
    if missing:
        raise SystemExit(f"not a folder under {args.runs}: {', '.join(missing)}")
    for name in args.names:
        kept = archive(args.runs / name, args.dest / name, args.max_kb * 1024)
        size = sum((args.dest / name / rel).stat().st_size for rel in kept)
        print(f"{name}: {len(kept)} files, {size / 1024:.0f} kB -> {args.dest / name}")


if __name__ == "__main__":
    main()
