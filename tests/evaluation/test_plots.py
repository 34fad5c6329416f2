import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest

from serkit.errors import DataError
from serkit.evaluation.metrics import metrics_from_confusion
from serkit.evaluation.plots import plot_confusion, plot_fold_scores
from serkit.evaluation.tables import CVSummary, FoldScores

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LABELS = ["ang", "hap", "neu", "sad"]
MATRIX = np.array([[50, 5, 3, 2], [4, 40, 10, 1], [6, 8, 70, 6], [0, 1, 9, 30]])


def _read_png(path):
    data = path.read_bytes()
    assert len(data) > 1000 and data[:8] == PNG_SIGNATURE
    return matplotlib.image.imread(path)


def test_confusion_png_has_the_requested_size(tmp_path):
    path = plot_confusion(MATRIX, LABELS, tmp_path / "plots" / "confusion.png", title="fold 1",
                          figsize=(4.0, 3.0), dpi=50)
    image = _read_png(path)
    assert image.shape == (150, 200, 4)  # height = 3 in * 50 dpi, width = 4 in * 50 dpi, RGBA
    assert image[..., :3].std() > 0.05  # something was drawn, not a blank canvas
    assert not list(path.parent.glob("*.tmp"))


def test_confusion_png_tolerates_an_absent_class(tmp_path):
    matrix = MATRIX.copy()
    matrix[3] = 0  # no "sad" utterance in this fold: its row has no percentages
    image = _read_png(plot_confusion(matrix, LABELS, tmp_path / "c.png", dpi=40))
    assert image.ndim == 3 and image.shape[2] == 4


def test_confusion_shape_must_match_labels(tmp_path):
    with pytest.raises(DataError, match="shape"):
        plot_confusion(MATRIX, LABELS[:3], tmp_path / "c.png")


@pytest.mark.parametrize("with_best", [False, True])
def test_fold_bars_png(tmp_path, with_best):
    rng = np.random.default_rng(0)
    folds = []
    for fold in range(1, 6):
        matrix = MATRIX + rng.integers(0, 5, size=MATRIX.shape)
        best = metrics_from_confusion(MATRIX, LABELS) if with_best else None
        folds.append(FoldScores(fold, metrics_from_confusion(matrix, LABELS), best))
    image = _read_png(plot_fold_scores(CVSummary(folds), tmp_path / "folds.png", figsize=(6, 3), dpi=40))
    assert image.shape == (120, 240, 4)


def test_plotting_never_touches_pyplot(tmp_path):
    # A fresh interpreter with an interactive backend requested and no display: pyplot would try to open
    # a window (or fail); our plots must not import it at all.
    code = (
        "import sys, numpy as np\n"
        "from serkit.evaluation.plots import plot_confusion\n"
        f"plot_confusion(np.eye(2, dtype=int), ['a', 'b'], {str(tmp_path / 'x.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    env = {"MPLBACKEND": "TkAgg", "DISPLAY": "", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "x.png").read_bytes()[:8] == PNG_SIGNATURE
