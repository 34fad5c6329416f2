"""Start a `train.refit` run from a finished run of the same command without it, so the first fits are not
trained again.

    python scripts/seed_refit.py RUNS/base_finetune_8 RUNS/base_finetune_refit_8 1 2 3
    serkit cv <the same configs and overrides> train.refit=true --out RUNS/base_finetune_refit_8 [--folds ...]

A refit fold first fits on its training speakers exactly as the run without `train.refit` does (same seed, same
config: the same chosen epochs and validation predictions, tests/training/test_seed_refit.py), then trains again on
training + validation speakers (training/refit.py). For each FOLD this writes into DEST/fold_<k> what a refit
fold leaves when it is killed after its first fit: its config (the source fold's, with `train.refit: true`), the
first fit's record (`train_only.json`: the source's result.json, epochs and cost) and its predictions.csv, plus
the source's split.json, fits.jsonl and logs where it has them (an archived run, docs/runs, keeps no split.json:
the refit then checks the first fit's validation and test predictions against its split, and writes split.json).
`serkit cv ... train.refit=true` then runs only the refits; its cost.json counts the first fit's CPU seconds too
(those of the source's cost.json, which counts a resumed fit only since its last resume: the script says so).
How the refit rows of docs/results.md were made, to save CPU.

The source folds must be finished (result.json) and must not be refit runs themselves. A DEST fold that exists is
left as it is (run again, this does nothing for it). `serkit cv` still checks each seeded fold against its
command (training/resume_check.py): run it with the source's configs and overrides plus `train.refit=true`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import yaml

from serkit.checkpoint import CONFIG_HASH
from serkit.config import config_hash, load_config
from serkit.errors import SerkitError
from serkit.training.fold import TRAIN_ONLY
from serkit.util.atomic import temp_folder, write_json

COPIED = ("split.json", "fits.jsonl")  # copied when the source has them (with logs/)


def seed_fold(source: Path, dest: Path) -> str:
    """Write the refit fold `dest` from the finished fold `source`; returns a line saying what was done."""
    if dest.exists():
        return f"{dest}: exists, left as it is"
    try:
        recorded = yaml.safe_load((source / "config.yaml").read_text(encoding="utf-8"))
        result = json.loads((source / "result.json").read_text(encoding="utf-8"))
        cost = json.loads((source / "cost.json").read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise SystemExit(f"{source}: not a finished serkit cv fold ({Path(error.filename).name} missing)") from None
    except (ValueError, yaml.YAMLError) as error:
        raise SystemExit(f"{source}: unreadable record ({error})") from None
    if not isinstance(recorded, dict) or not isinstance(recorded.get("train"), dict):
        raise SystemExit(f"{source}/config.yaml: not a serkit config")
    if recorded["train"].get("refit") or result.get("reported") == "refit":
        raise SystemExit(f"{source}: already a refit fold; seed from the run without train.refit")
    if not result.get("chosen_epochs"):
        raise SystemExit(f"{source}/result.json: no chosen_epochs (a fold from before serkit recorded them: rerun it)")
    if not (source / "predictions.csv").is_file():
        raise SystemExit(f"{source}: no predictions.csv")
    recorded["train"]["refit"] = True
    try:
        model_hash = config_hash(load_config(recorded).model)
    except SerkitError as error:
        raise SystemExit(f"{source}/config.yaml: {error}") from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    # written aside and moved into place whole: a half-seeded fold would be refit from half a record
    tmp = temp_folder(dest.parent, ".seed-")
    try:
        (tmp / "config.yaml").write_text(yaml.safe_dump(recorded, sort_keys=False), encoding="utf-8")
        shutil.copy2(source / "predictions.csv", tmp / "predictions.csv")
        for name in COPIED:
            if (source / name).is_file():
                shutil.copy2(source / name, tmp / name)
        if (source / "logs").is_dir():
            shutil.copytree(source / "logs", tmp / "logs")
        write_json(tmp / TRAIN_ONLY, {
            "result": {**result, "refit": None}, "epochs_run": cost["epochs"], CONFIG_HASH: model_hash,
            "cpu_seconds": cost["cpu_seconds"], "wall_seconds": cost["wall_seconds"],
            "seeded_from": str(source)})  # not read by serkit: says where the first fit came from
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    note = ""
    if (source / "fits.jsonl").is_file() and len((source / "fits.jsonl").read_text().splitlines()) > 1:
        note = " (its fit was resumed: those CPU seconds count only since the last resume)"
    return (f"{dest}: first fit from {source} (chosen epochs {result['chosen_epochs']}, {cost['cpu_seconds']} "
            f"CPU s{note})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the finished run without train.refit")
    parser.add_argument("dest", type=Path, help="the refit run's --out")
    parser.add_argument("folds", type=int, nargs="+", help="fold numbers to seed")
    args = parser.parse_args(argv)
    if args.source.resolve() == args.dest.resolve():
        raise SystemExit("source and dest are the same folder")
    missing = [k for k in args.folds if not (args.source / f"fold_{k}").is_dir()]
    if missing:
        raise SystemExit(f"{args.source}: no fold_{', fold_'.join(map(str, missing))}")
    for k in args.folds:
        print(seed_fold(args.source / f"fold_{k}", args.dest / f"fold_{k}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
