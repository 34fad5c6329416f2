"""openSMILE eGeMAPSv02 functionals + linear SVM: the classical SER baseline, on a corpus's own folds.

Per utterance: the 88 eGeMAPSv02 functionals (Eyben et al. 2016) from the `opensmile` package, computed on
the same 16 kHz mono samples serkit trains on (data.audio.load_audio). Per fold (corpus.split, exactly the
folds `serkit cv` uses): features standardised with the training actors' mean and std, a linear SVM
(scikit-learn LinearSVC, class_weight="balanced", so every class counts alike as in UA) trained for each C
of a grid on the training actors, the C with the best validation UA kept (ties: the smaller C), and that
model scored on the test actors. Tables: the same cv.md / cv.csv / cv.json + plots as `serkit cv`.

Features are cached in an .npz file (default `<out>/egemaps.npz`; `features=` / `--features` to share one
between runs, e.g. the 4-class subset after the 8 classes), keyed by audio path, segment, file size and mtime,
so a file that changes is recomputed.

speaker_norm: each speaker's functionals standardised by that speaker's own mean and std over their clips
first (data/speaker_norm.py; the classical speaker normalisation of SER, a transductive protocol).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.audio import TARGET_SAMPLE_RATE, load_audio
from ..data.config import DataConfig
from ..data.speaker_norm import speaker_standardise
from ..data.utterance import Utterance
from ..errors import ConfigError
from ..evaluation.metrics import Metrics, compute_metrics
from ..evaluation.tables import CVSummary
from ..util.atomic import atomic_file
from .folds import C_GRID, BaselineFolds, choose_on_validation

FEATURE_FILE = "egemaps.npz"


def _smile():
    try:
        import opensmile
    except ImportError:
        raise ConfigError("the openSMILE baseline needs the package opensmile: pip install 'serkit[baseline]'") from None
    return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                           feature_level=opensmile.FeatureLevel.Functionals)


def _stamp(utt: Utterance) -> str:
    """What identifies an utterance's audio for the feature cache: path, segment, size and mtime."""
    stat = os.stat(utt.path)
    return f"{utt.path}|{utt.start}|{utt.end}|{stat.st_size}|{stat.st_mtime_ns}"


def egemaps_features(utterances: Sequence[Utterance], cache: str | Path | None = None) -> np.ndarray:
    """-> [N, 88] float64 eGeMAPSv02 functionals, row i for utterances[i]; cached in `cache` (.npz)."""
    stored: dict[str, np.ndarray] = {}
    if cache is not None and Path(cache).is_file():
        with np.load(cache, allow_pickle=False) as data:
            stored = dict(zip(data["stamps"].tolist(), data["features"]))
    smile = None
    rows, changed = [], False
    for utt in utterances:
        stamp = _stamp(utt)
        if stamp not in stored:
            smile = smile or _smile()
            wav = load_audio(utt.path, utt.start, utt.end, TARGET_SAMPLE_RATE)
            stored[stamp] = smile.process_signal(wav, TARGET_SAMPLE_RATE).to_numpy(dtype=np.float64)[0]
            changed = True
        rows.append(stored[stamp])
    if cache is not None and changed:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(cache) as f:  # a file object: np.savez adds no ".npz" to it
            np.savez(f, stamps=np.array(list(stored)), features=np.stack(list(stored.values())))
    return np.stack(rows)


@dataclass
class FoldFit:
    fold: int
    c: float
    valid: Metrics
    test: Metrics
    valid_ua_by_c: dict[float, float]


def fit_fold(features: dict[str, np.ndarray], targets: dict[str, np.ndarray], labels: list[str],
             c_grid: Sequence[float] = C_GRID, seed: int = 0) -> tuple[float, Metrics, Metrics, dict[float, float]]:
    """features/targets: {"train"|"valid"|"test": [N, F] / [N]} -> (chosen C, valid metrics, test metrics,
    validation UA for every C)."""
    from sklearn.svm import LinearSVC

    svm = LinearSVC(class_weight="balanced", max_iter=20000, random_state=seed)
    _, c, valid, model, grid = choose_on_validation(svm, {"egemaps": (features["train"], features["valid"])}, targets,
                                                    labels, c_grid)
    return c, valid, compute_metrics(model.predict(features["test"]), targets["test"], labels), grid["egemaps"]


def run_opensmile_svm(data_cfg: DataConfig, out_dir: str | Path, folds: Sequence[int] | None = None,
                      c_grid: Sequence[float] = C_GRID, features: str | Path | None = None,
                      speaker_norm: bool = False) -> tuple[CVSummary, list[FoldFit]]:
    """Every (selected) fold of the corpus; writes cv.md/csv/json, plots and baseline.json to `out_dir`.
    speaker_norm: standardise each speaker's functionals by their own statistics first."""
    data = BaselineFolds(data_cfg, folds)
    speakers = [u.speaker for u in data.utterances]
    if speaker_norm:  # refuse a one-clip speaker before extracting anything
        speaker_standardise(np.zeros((len(speakers), 1)), speakers, "the corpus")
    all_features = egemaps_features(data.utterances, features or Path(out_dir) / FEATURE_FILE)
    if speaker_norm:
        all_features = speaker_standardise(all_features, speakers, "the corpus")
    fits = [FoldFit(fold, *fit_fold(fold_features, targets, data.classes, c_grid))
            for fold, fold_features, targets in data.split(all_features)]
    summary = data.write_report(out_dir, f"openSMILE eGeMAPSv02 + linear SVM ({data_cfg.corpus})",
                                [(f.fold, f.test) for f in fits], "baseline.json", {
        "features": "opensmile eGeMAPSv02 functionals (88)", "speaker_norm": speaker_norm,
        "classifier": "StandardScaler + LinearSVC (class_weight=balanced), C chosen by validation UA",
        "c_grid": list(c_grid),
        "per_fold": [{"fold": f.fold, "c": f.c, "valid_ua": f.valid.ua, "valid_ua_by_c": {str(k): v for k, v in
                      f.valid_ua_by_c.items()}, "test": f.test.to_dict()} for f in fits],
    })
    return summary, fits
