"""The paper's 11 experiments: each config cross-validated in turn, then Table 1 beside the published figures."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from ..config import ExperimentConfig, load_config
from ..errors import ConfigError
from ..evaluation.paper import PAPER_TABLE1, write_table1
from ..evaluation.tables import CVSummary
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
) -> tuple[dict[int, CVSummary], dict[str, Path]] | None:
    """Cross-validate each experiment into out_dir/<config name>; write out_dir/table1.{md,csv,json}.

    adapt: a last change to each resolved config (the demo uses it to swap in tiny upstreams)."""
    out_dir = Path(out_dir)
    numbers = experiments or sorted(PAPER_TABLE1)
    configs = {n: paper_config(n) for n in numbers}  # every path checked before hours of training
    results: dict[int, CVSummary] = {}
    for index, (number, path) in enumerate(configs.items(), 1):
        began = time.perf_counter()
        cfg = load_config(path, overrides=[f"data.root={root}", *overrides])
        if adapt is not None:
            cfg = adapt(cfg)
        cv = run_cv(cfg, out_dir / cfg.name)
        if cv is None:  # a non-zero DDP rank: rank 0 writes the reports
            continue
        results[number] = summarize(cv.folds)
        if progress is not None:
            wa, ua = results[number].stat("wa"), results[number].stat("ua")
            progress(f"[{index}/{len(configs)}] experiment {number} {cfg.name}: WA {wa.format_pct()}  "
                     f"UA {ua.format_pct()}  ({time.perf_counter() - began:.0f} s)")
    if not results:
        return None
    return results, write_table1(results, out_dir)
