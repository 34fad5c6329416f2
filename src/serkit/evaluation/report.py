"""A cross-validation run's report: tables (Markdown, CSV, JSON) and figures (PNG) in its folder."""

from __future__ import annotations

from pathlib import Path

from .plots import plot_confusion, plot_fold_scores
from .tables import CVSummary


def write_cv_report(run_dir: str | Path, title: str, summary: CVSummary) -> dict[str, Path]:
    """-> {"md", "csv", "json", "confusion", "folds"}: paths of cv.* tables, confusion.png, folds.png."""
    run_dir = Path(run_dir)
    paths = summary.write(run_dir, stem="cv")
    paths["confusion"] = plot_confusion(summary.summed_confusion(), summary.labels, run_dir / "confusion.png",
                                        title=f"{title}: test, summed over folds")
    paths["folds"] = plot_fold_scores(summary, run_dir / "folds.png", title=title)
    return paths
