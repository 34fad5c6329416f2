"""`serkit report RUN_DIR`: rebuild a cross-validation run's tables (cv.md/.csv/.json) and figures
(confusion.png, folds.png) from its fold_*/result.json files, e.g. after a run on another machine, or with
only some folds finished."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import DataError
from .registry import command


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a `serkit cv` run folder (holds fold_K/result.json)")
    p.add_argument("--title", help="report title (default: the run's config name)")


@command("report", "rebuild a cross-validation run's tables and plots from its fold results", _arguments)
def run(args: argparse.Namespace) -> int:
    paths = rebuild_cv_report(args.run_dir, args.title)
    print(paths["md"].read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(path) for path in paths.values()))
    return 0


def rebuild_cv_report(run_dir: Path, title: str | None = None) -> dict[str, Path]:
    """fold_*/result.json (FoldResult) -> write_cv_report(run_dir, ...); -> the written paths."""
    from ..evaluation.report import write_cv_report
    from ..training.cv import summarize
    from ..training.fold import FoldResult

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError("run folder not found", run_dir)
    result_files = sorted(run_dir.glob("fold_*/result.json"),
                          key=lambda path: (len(path.parent.name), path.parent.name))  # fold_2 before fold_10
    if not result_files:
        raise DataError("no fold_*/result.json here: not a `serkit cv` run folder, or no fold has finished", run_dir)
    results = []
    for path in result_files:
        try:
            results.append(FoldResult.from_dict(json.loads(path.read_text(encoding="utf-8"))))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise DataError(f"not a fold result ({type(e).__name__}: {e})", path) from None
    return write_cv_report(run_dir, title or _run_name(run_dir), summarize(results))


def _run_name(run_dir: Path) -> str:
    """The config name recorded by `serkit cv` (run.json, else config.yaml), else the folder's name."""
    import yaml

    for facts in (run_dir / "run.json", run_dir / "config.yaml"):  # YAML reads the JSON file too
        try:
            name = (yaml.safe_load(facts.read_text(encoding="utf-8")) or {}).get("name")
        except (OSError, yaml.YAMLError, AttributeError):  # absent, unreadable or not a mapping: the next one
            continue
        if isinstance(name, str) and name:
            return name
    return run_dir.resolve().name
