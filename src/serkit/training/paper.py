"""The paper's 11 experiments: each config cross-validated in turn, then Table 1 beside the published figures."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from ..config import ExperimentConfig, load_config
from ..errors import ConfigError
from ..evaluation.paper import PAPER_TABLE1, write_table1
from ..evaluation.tables import CVSummary
from ..util.processes import run_in_processes
from ..util.threads import check_threads, default_threads
from .cv import run_cv, summarize

PAPER_CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "paper"


def paper_config(number: int, config_dir: Path = PAPER_CONFIG_DIR) -> Path:
    if number not in PAPER_TABLE1:
        raise ConfigError(f"experiment {number} is not in the paper's Table 1 (1..{len(PAPER_TABLE1)})")
    path = Path(config_dir) / f"{PAPER_TABLE1[number].config}.yaml"
    if not path.is_file():
        raise ConfigError(f"{path}: config of experiment {number} not found")
    return path


def run_paper(
    root: str | Path,
    out_dir: str | Path,
    experiments: list[int] | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    adapt: Callable[[ExperimentConfig], ExperimentConfig] | None = None,
    progress: Callable[[str], None] | None = print,
    jobs: int = 1,
    worker_init: Callable[[], None] | None = None,
    threads: int | None = None,
) -> tuple[dict[int, CVSummary], dict[str, Path]] | None:
    """Cross-validate each experiment into out_dir/<config name>; write out_dir/table1.{md,csv,json}.

    adapt: a last change to each resolved config (the demo uses it to swap in tiny upstreams); with jobs > 1
    it must be picklable. jobs: experiments run at once, each in its own process — for CPU-only machines,
    where small models use cores better side by side than inside one process. threads: torch's CPU threads
    per experiment; None: as they are with one job (torch's default: the cores), cores // jobs with more
    (util/threads.py), since each worker would otherwise take every core. Results depend on the thread count
    but not on `jobs` (tests/training/test_reproducible_jobs.py): one `threads` gives one table at any `jobs`.
    worker_init: run first in each worker process (e.g. to set log levels, which processes do not inherit).
    With jobs > 1 an experiment that fails stops the ones running beside it; running the same call again
    resumes every one of them (finished folds are skipped, interrupted ones resume from last.ckpt).
    Returns None on non-zero DDP ranks (rank 0 writes the reports)."""
    out_dir = Path(out_dir)
    numbers = experiments or sorted(PAPER_TABLE1)
    configs = {n: paper_config(n) for n in numbers}  # every path checked before hours of training
    for number, path in configs.items():  # and every override against every experiment's config (its components)
        try:
            _load(path, root, overrides)
        except ConfigError as error:
            raise ConfigError(f"experiment {number} ({path.name}): {error}") from None
    if threads is None and jobs > 1:
        threads = default_threads(jobs)
    check_threads(threads, "threads")
    tasks = [(n, path, str(root), list(overrides), adapt, out_dir, threads, jobs) for n, path in configs.items()]
    results: dict[int, CVSummary] = {}
    done = 0

    def record(number: int, name: str, summary: CVSummary | None, seconds: float) -> None:
        nonlocal done
        done += 1
        if summary is None:
            return
        results[number] = summary
        if progress is not None:
            wa, ua = summary.stat("wa"), summary.stat("ua")
            progress(f"[{done}/{len(tasks)}] experiment {number} {name}: WA {wa.format_pct()}  "
                     f"UA {ua.format_pct()}  ({seconds:.0f} s)")

    if jobs <= 1:
        for task in tasks:
            record(*_run_experiment(*task))
    else:
        # workers are terminated with this process, SIGTERM included (util/processes.py)
        for outcome in run_in_processes(_run_experiment, tasks, jobs, worker_init):
            record(*outcome)
    if not results:
        return None
    return dict(sorted(results.items())), write_table1(results, out_dir)


def _run_experiment(number, path, root, overrides, adapt, out_dir, threads, jobs):
    """-> (experiment number, config name, CV summary or None on non-zero ranks, seconds)."""
    began = time.perf_counter()
    cfg = _load(path, root, overrides)
    if adapt is not None:
        cfg = adapt(cfg)
    cv = run_cv(cfg, Path(out_dir) / cfg.name, threads=threads, jobs=jobs)
    return number, cfg.name, None if cv is None else summarize(cv.folds), time.perf_counter() - began


def _load(path: Path, root: str | Path, overrides) -> ExperimentConfig:
    """The experiment's config with data.root = root (a plain string, not YAML text) and the overrides."""
    return load_config(path, {"data": {"root": str(root)}}, overrides=list(overrides))
