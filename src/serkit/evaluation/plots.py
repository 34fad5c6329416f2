"""PNG figures for reports: a confusion matrix and per-fold WA/UA bars.

Figures are drawn on matplotlib's object API with an explicit Agg canvas and never through `pyplot`, so no
window opens, no global backend is switched (a notebook that imports serkit keeps its own), and nothing is
left in pyplot's figure registry to leak memory over a long cross-validation run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..errors import DataError
from ..util.atomic import atomic_file
from .tables import CVSummary


def plot_confusion(confusion: np.ndarray, labels: Sequence[str], path: str | Path, title: str = "",
                   figsize: tuple[float, float] | None = None, dpi: int = 120) -> Path:
    """Draw a confusion matrix [C, C] (rows = true, columns = predicted) as a PNG at `path`.

    Each cell shows the count and the row-normalised percentage (the class's recall on the diagonal);
    colour follows the percentage, so classes of different sizes compare fairly. Returns the path.
    """
    confusion = np.asarray(confusion)
    num_classes = len(labels)
    if confusion.shape != (num_classes, num_classes):
        raise DataError(f"confusion matrix has shape {confusion.shape}, expected {(num_classes, num_classes)} "
                        f"for labels {list(labels)}")
    support = confusion.sum(axis=1, keepdims=True)
    # rows of classes absent from the targets stay 0 (blank) instead of dividing by zero
    rates = np.divide(confusion, support, out=np.zeros(confusion.shape, dtype=np.float64), where=support > 0)

    fig, ax = _figure(figsize or (1.1 * num_classes + 2.4, 1.0 * num_classes + 1.8), dpi)
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    for true in range(num_classes):
        for predicted in range(num_classes):
            share = f"{100 * rates[true, predicted]:.1f}%" if support[true, 0] > 0 else "—"
            ax.text(predicted, true, f"{int(confusion[true, predicted])}\n{share}", ha="center", va="center",
                    fontsize=8, color="white" if rates[true, predicted] > 0.5 else "black")
    ax.set_xticks(range(num_classes), labels=list(labels))
    ax.set_yticks(range(num_classes), labels=list(labels))
    ax.set(xlabel="predicted", ylabel="true")
    return _save(fig, title, path)


def plot_fold_scores(summary: CVSummary, path: str | Path, title: str = "",
                     figsize: tuple[float, float] | None = None, dpi: int = 120) -> Path:
    """Bars of WA and UA (%) per fold with dashed lines at their means; when the folds carry best-single-
    checkpoint metrics, those are marked with black ticks on each bar, so the averaging gain is visible."""
    folds = [f.fold for f in summary.folds]
    positions = np.arange(len(folds))
    width = 0.38
    fig, ax = _figure(figsize or (max(4.0, 1.1 * len(folds) + 2.0), 3.6), dpi)
    for offset, score, color in ((-width / 2, "wa", "tab:blue"), (width / 2, "ua", "tab:orange")):
        values = np.array([100 * getattr(f.metrics, score) for f in summary.folds])
        mean = summary.stat(score).mean * 100
        bars = ax.bar(positions + offset, values, width, color=color, label=f"{score.upper()} (mean {mean:.2f})")
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
        ax.axhline(mean, color=color, linestyle="--", linewidth=1)
        if summary.has_best_single:
            best = [100 * getattr(f.best_single, score) for f in summary.folds]
            ax.scatter(positions + offset, best, marker="_", s=300, color="black", zorder=3,
                       label="best single checkpoint" if score == "wa" else None)
    ax.set_xticks(positions, labels=folds)
    ax.set(xlabel="fold", ylabel="%", ylim=(0, 105))
    # below the axes: inside, it would hide the bars, which fill the plot when scores are high
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, fontsize=7, frameon=False)
    return _save(fig, title, path)


def _figure(figsize: tuple[float, float], dpi: int):
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig: Figure, title: str, path: str | Path) -> Path:
    if title:
        fig.axes[0].set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as f:
        fig.savefig(f, format="png")  # the size stays figsize * dpi: no bbox_inches="tight" cropping
    return path
