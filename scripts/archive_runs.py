"""Copy the records of finished run folders (no weights) into the repository, so tables and ensembles outlive
the machine that ran them.

    python scripts/archive_runs.py RUNS docs/runs base_finetune_8 probe_refit_wave2_stats_base_pad_8 ...

A run folder of `serkit cv`, `serkit baseline` or `serkit ensemble` is mostly weights (model bundles, checkpoints:
tens of MB a fold) around a few kB of records. What the tables and `serkit ensemble` read is the records:
cv.json / cost.json / probe.json / baseline.json / ensemble.json / run.json / config.yaml, and per fold
result.json (which also marks a cv fold finished, so `serkit cv` on a restored folder skips it), cost.json,
config.yaml and predictions.csv (the validation and test probabilities an ensemble combines). Kept: every
.json / .jsonl / .csv / .md / .yaml / .txt file, except
- weights (`*.safetensors`, `*.ckpt`, `*.pt`, `*.bin`) and the folders that hold them: a fold's `model/`
  bundle and `checkpoints/`, or any other folder below a fold holding weights (a bundle's config goes with it);
- `tensorboard/` logs, hidden folders (a writer's temporary ones), the corpus audio check's cache
  (`audio_check.json`: a run derives it again) and each fold's `split.json` (its utterance lists, which the
  corpus and the folds option give again; a restored run's folds are then checked against the command by
  config alone, training/resume_check.py);
- a fold that has not finished: in a `serkit cv` run (it has run.json) one without result.json, which includes
  a fold killed during its refit (its predictions.csv would be the first fit's); in a baseline or ensemble run,
  one without predictions.csv;
- any file other than the records above over --max-kb (a log gone wild). Records are kept whatever their size.

An archived folder is itself a run folder without weights: `serkit ensemble docs/runs/A docs/runs/B ...` and
`scripts/results_table.py docs/results_runs.yaml docs/runs` read it as they are. To add folds to a partial run,
copy it back (`cp -r docs/runs/X RUNS/`), run the missing folds with the same `serkit cv` command and
`--folds`, then the command once more without `--folds`: the finished folds are skipped and cv.json and
cost.json are written over all of them (a run with `--folds` reports only the folds it was given). Archiving
again replaces the archived folder as a whole (the old one is moved aside, the new one moved in, then the old
removed), so a file removed from the run does not linger.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from serkit.util.atomic import temp_folder

KEPT_SUFFIXES = {".json", ".jsonl", ".csv", ".md", ".yaml", ".txt"}
WEIGHT_SUFFIXES = {".safetensors", ".ckpt", ".pt", ".bin"}
LEFT_OUT_DIRS = {"model", "checkpoints", "tensorboard"}
# serkit.data.check.CACHE_NAME, a cache; a fold's utterance lists (40 kB a fold), which its corpus and folds give
LEFT_OUT_NAMES = {"audio_check.json", "split.json"}
RECORDS = {"cv.json", "cost.json", "probe.json", "baseline.json", "ensemble.json", "run.json", "config.yaml",
           "result.json", "predictions.csv"}


def _finished(fold: Path, cv_run: bool) -> bool:
    return (fold / "result.json").is_file() if cv_run else (fold / "predictions.csv").is_file()


def records(run: Path, max_bytes: int) -> list[Path]:
    """The files of `run` to keep, relative to it: see the module docstring for the rule."""
    cv_run = (run / "run.json").is_file()
    folds = {p for p in run.glob("fold_*") if p.is_dir()}
    unfinished = {p for p in folds if not _finished(p, cv_run)}
    weights = {p.parent for p in run.rglob("*") if p.suffix in WEIGHT_SUFFIXES}
    left_out = {p for p in run.rglob("*") if p.is_dir() and (p.name in LEFT_OUT_DIRS or p.name.startswith("."))}
    left_out |= unfinished | (weights - folds - {run})  # a weight file in a fold's own folder leaves only itself out
    kept = []
    for path in sorted(run.rglob("*")):
        if not path.is_file() or path.suffix not in KEPT_SUFFIXES or path.name in LEFT_OUT_NAMES:
            continue
        if any(parent in left_out for parent in path.parents):
            continue
        if path.name not in RECORDS and path.stat().st_size > max_bytes:
            print(f"left out (over {max_bytes // 1024} kB): {path}", file=sys.stderr)
            continue
        kept.append(path.relative_to(run))
    return kept


def _check(run: Path, dest: Path, kept: list[Path]) -> None:
    """Refuse before anything is written: a run with nothing finished, or a destination that overlaps it."""
    names = {str(rel) for rel in kept}
    if "cv.json" not in names and not any(rel.name in ("result.json", "predictions.csv") for rel in kept):
        raise SystemExit(f"{run}: no cv.json and no finished fold (fold_<k>/result.json, or predictions.csv for a "
                         "baseline or ensemble run): not a serkit run folder, or nothing in it has finished")
    a, b = run.resolve(), dest.resolve()
    if a == b or a in b.parents or b in a.parents:
        raise SystemExit(f"the archive {dest} would overlap the run folder {run}: give another destination")


def archive(run: Path, dest: Path, kept: list[Path]) -> None:
    """Copy `kept` (relative to `run`) to `dest`, replacing an earlier archive there as a whole."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    for leftover in dest.parent.glob(f".{dest.name}.*"):  # a killed earlier call's staging or old folder
        shutil.rmtree(leftover, ignore_errors=True)
    staging = temp_folder(dest.parent, f".{dest.name}.new.")  # same disk: the swap is two renames
    try:
        for rel in kept:
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(run / rel, staging / rel)
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            os.replace(dest, old)
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, help="folder holding the run folders (RUNS of docs/results_runs.yaml)")
    parser.add_argument("dest", type=Path, help="where the records go, one folder per run (e.g. docs/runs)")
    parser.add_argument("names", nargs="+", help="run folder names under RUNS")
    parser.add_argument("--max-kb", type=int, default=1024,
                        help="leave out any file other than the records larger than this (kB)")
    args = parser.parse_args(argv)
    missing = [name for name in args.names if not (args.runs / name).is_dir()]
    if missing:
        raise SystemExit(f"not a folder under {args.runs}: {', '.join(missing)}")
    plans = []
    for name in args.names:  # every run checked before any is written
        kept = records(args.runs / name, args.max_kb * 1024)
        _check(args.runs / name, args.dest / name, kept)
        plans.append((name, kept))
    for name, kept in plans:
        archive(args.runs / name, args.dest / name, kept)
        size = sum((args.dest / name / rel).stat().st_size for rel in kept)
        print(f"{name}: {len(kept)} files, {size / 1024:.0f} kB -> {args.dest / name}")


if __name__ == "__main__":
    main()
