"""Cross-validation: the same fold recipe once per fold, then WA / UA mean ± std and the report.

Resumable: `run_fold` skips finished folds and resumes an interrupted one from its last checkpoint, so
running the same command again after a crash finishes the job.
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import lightning as L

from ..config import ExperimentConfig, save_config
from ..data.check import CACHE_NAME as CHECK_CACHE
from ..data.corpora import Prepared
from ..data.prepare import prepare_corpus
from ..errors import ConfigError
from ..evaluation.report import write_cv_report
from ..evaluation.tables import CVSummary, FoldScores
from ..util.atomic import write_json
from ..util.onednn import cap_primitive_cache
from ..util.threads import compute_facts, torch_threads
from .fold import FoldResult, run_fold
from .progress import FoldClock
from .resume_check import check_fold_record


@dataclass
class CVResult:
    name: str
    labels: list[str]
    folds: list[FoldResult]
    report_dir: Path


def run_cv(cfg: ExperimentConfig, run_dir: str | Path, quiet: bool = False, threads: int | None = None,
           jobs: int = 1) -> CVResult | None:
    """Every selected fold of `cfg` in `run_dir/fold_K`, then the report in `run_dir`. None on non-zero ranks.
    Progress lines (training/progress.py) go to stderr unless `quiet`.
    threads: torch's CPU threads while it runs (None: as they are); results depend on the count in their
    last bits (util/threads.py), so run.json records it, with `jobs` (runs side by side with this one).
    Sets ONEDNN_PRIMITIVE_CACHE_CAPACITY for this process and its children unless set (util/onednn.py): here,
    not in the command, since `serkit paper`'s worker processes call run_cv directly."""
    cap_primitive_cache()  # nearly every batch a new width (the longest clip's): util/onednn.py
    with torch_threads(threads):
        return _run_cv(cfg, Path(run_dir), quiet, jobs)


def _run_cv(cfg: ExperimentConfig, run_dir: Path, quiet: bool, jobs: int) -> CVResult | None:
    run_dir.mkdir(parents=True, exist_ok=True)
    # the audio check's results are cached in the run dir: a resumed run does not decode the corpus again
    corpus_data = prepare_corpus(cfg.data, check_cache=run_dir / CHECK_CACHE)
    prepared, labels = corpus_data.prepared, corpus_data.classes
    folds = corpus_data.select_folds(cfg.folds)
    splits = {fold: corpus_data.split(fold) for fold in folds}
    for fold, split in splits.items():  # before the run's records are written or anything trains
        for part, what in (("train", "training"), ("valid", "validation")):
            if not getattr(split, part):  # without validation no checkpoint is ranked, kept or averaged
                raise ConfigError(f"fold {fold} has no {what} utterances (serkit cv trains on one part of the "
                                  "corpus's speakers and chooses checkpoints on another): its corpus has too few "
                                  "speakers or groups for its folds (3 at least: test, validation, training)")
        check_fold_record(run_dir / f"fold_{fold}", cfg, split)
    rank_zero = _is_rank_zero()
    if rank_zero:
        save_config(cfg, run_dir / "config.yaml")
        write_json(run_dir / "run.json", _run_facts(cfg, labels, prepared, folds, jobs, run_dir / "run.json"))

    results = []
    clock = FoldClock(len(folds))
    for position, fold in enumerate(folds, start=1):
        split = splits[fold]
        finished = (run_dir / f"fold_{fold}" / "result.json").is_file()
        result = run_fold(cfg, split, labels, run_dir / f"fold_{fold}",
                          progress=None if quiet else f"{cfg.name} fold {fold} ({position}/{len(folds)})")
        if result is not None:
            results.append(result)
            if not quiet:
                clock.fold_done(fold, result.test.ua, result.test.wa, skipped=finished)
    if not rank_zero:
        return None
    write_cv_report(run_dir, cfg.name, summarize(results))
    write_json(run_dir / "cost.json", _total_cost(run_dir, folds))
    return CVResult(cfg.name, labels, results, run_dir)


def summarize(results: list[FoldResult]) -> CVSummary:
    """Test metrics per fold of the reported model, with the best single checkpoint's beside them (not for a
    refit model, which trained on other data than that checkpoint)."""
    return CVSummary([
        FoldScores(fold=r.fold, metrics=r.test,
                   best_single=r.best["test"] if r.reported == "averaged" else None)
        for r in results
    ])


def _total_cost(run_dir: Path, folds: list[int]) -> dict:
    """Each fold's cost.json (CPU and wall seconds, epochs, trainable parameters) and the sums."""
    per_fold = {}
    for fold in folds:
        path = run_dir / f"fold_{fold}" / "cost.json"
        if path.is_file():  # absent while a fold runs
            per_fold[str(fold)] = json.loads(path.read_text())
    return {"cpu_seconds": round(sum(c["cpu_seconds"] for c in per_fold.values()), 1),
            "wall_seconds": round(sum(c["wall_seconds"] for c in per_fold.values()), 1),
            "trainable_params": max((c["trainable_params"] for c in per_fold.values()), default=None),
            "folds": per_fold}


def _is_rank_zero() -> bool:
    return L.fabric.utilities.rank_zero.rank_zero_only.rank == 0


def _run_facts(cfg: ExperimentConfig, labels: list[str], prepared: Prepared, folds: list[int], jobs: int,
               previous: Path) -> dict:
    """Everything a run decided, for the record: seed, versions, labels, folds, what the corpus left out, and
    what it ran on (threads, jobs, CPU, torch: util/threads.py). A run resumed on other settings keeps the
    earlier settings in `compute_before`, since its finished folds were trained with them."""
    versions = {}
    for package in ("serkit", "torch", "transformers", "lightning", "numpy", "soundfile", "soxr"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "name": cfg.name,
        "seed": cfg.seed,
        "labels": labels,
        "folds": folds,
        "utterances": len(prepared.utterances),
        "skipped": dict(prepared.skipped),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": versions,
        "compute": (compute := compute_facts(jobs)),
        "compute_before": _earlier_compute(previous, compute),
        "command": sys.argv,
    }


def _earlier_compute(previous: Path, compute: dict) -> list[dict]:
    """The compute facts of earlier calls on this run folder that differ from `compute` (oldest first)."""
    try:
        facts = json.loads(previous.read_text())
    except (OSError, ValueError):  # first call, or a run.json not ours
        return []
    earlier = [c for c in [*facts.get("compute_before", []), facts.get("compute")] if isinstance(c, dict)]
    return [c for position, c in enumerate(earlier) if c != compute and c not in earlier[:position]]
