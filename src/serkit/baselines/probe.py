"""The linear probe: a frozen encoder's layers, mean-pooled, and a logistic regression (SUPERB / EmoBox style).

The first check a SER researcher runs on any encoder, scored on exactly the folds and test sets `serkit cv`
uses (corpus.split), so a trained system and the probe of its encoder compare fold by fold.

Per utterance: every hidden layer of the frozen encoder (input embedding first), each mean-pooled over the
utterance's real frames -> [L, D]. Frames come through the same feature cache as `serkit cv` (same key:
weights, config and the samples), so a probe after a cv run (or the reverse) encodes nothing twice.

Per fold, chosen on the VALIDATION actors only (test labels are never read before the choice is made):
- the layer view: "last", "mean" (the average of all layers' pooled vectors) or one single layer "layer_<i>";
- C of an L2 logistic regression (scikit-learn, lbfgs, multinomial, class_weight="balanced" so every class
  counts alike, as in UA) on features standardised with the training actors' mean and std.
The pair with the best validation UA is kept (ties: the earlier view in the order above, then the smaller C);
the model trained on the training actors is scored on the test actors.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..data.audio import TARGET_SAMPLE_RATE, load_audio
from ..data.config import DataConfig
from ..data.utterance import Utterance
from ..errors import ConfigError
from ..evaluation.metrics import Metrics, compute_metrics
from ..evaluation.prediction_table import SplitPredictions, write_predictions
from ..evaluation.report import write_cv_report
from ..evaluation.tables import CVSummary, FoldScores
from ..upstream import UpstreamConfig, build_upstream
from ..upstream.layers import LayerSelector
from ..util.atomic import write_json
from ..util.progress import CountLines
from .folds import BaselineFolds

C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
ENCODE_BATCH = 8  # utterances per encoder call (sorted by length, so little padding)


def pooled_layers(utterances: Sequence[Utterance], upstream_cfg: UpstreamConfig,
                  cache_dir: str | Path | None = None, cache_dtype: str = "float16", progress: bool = False
                  ) -> np.ndarray:
    """-> [N, L, D] float32: row i holds every layer of utterances[i], mean-pooled over its real frames.
    cache_dir: the feature cache shared with `serkit cv` (None: encode without caching). progress: a line on
    stderr every 30 s (clips done, rate, ETA, how many the cache held)."""
    from ..upstream.cache import FeatureCache

    upstream_cfg = replace(upstream_cfg, layers="weighted", freeze="all")
    upstream = build_upstream(upstream_cfg)
    if upstream.modality != "audio":
        raise ConfigError(f"the probe needs an audio encoder; {upstream_cfg.name!r} is {upstream.modality}")
    selector = LayerSelector(upstream.num_layers, "weighted")  # reads every layer: cv's "weighted" cache entries
    cache = None if cache_dir is None else FeatureCache.for_upstream(upstream, upstream_cfg, selector, cache_dir,
                                                                     cache_dtype)
    order = sorted(range(len(utterances)), key=lambda i: utterances[i].duration or 0.0)
    pooled = np.zeros((len(utterances), upstream.num_layers, upstream.hidden_size), dtype=np.float32)
    lines = CountLines("encoding", len(order), enabled=progress)
    with torch.no_grad():
        for start in range(0, len(order), ENCODE_BATCH):
            rows = order[start:start + ENCODE_BATCH]
            wavs = [torch.from_numpy(load_audio(utterances[i].path, utterances[i].start, utterances[i].end,
                                                TARGET_SAMPLE_RATE)) for i in rows]
            wav_lens = torch.tensor([len(w) for w in wavs])
            batch = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)
            hidden, frame_lens = cache(upstream, batch, wav_lens) if cache else upstream(batch, wav_lens)
            mask = (torch.arange(hidden[0].shape[1])[None, :] < frame_lens[:, None])[..., None]  # [B, T, 1]
            counts = frame_lens.clamp(min=1).float()[:, None]  # [B, 1]
            for layer, frames in enumerate(hidden):  # frames [B, T, D]
                # where(), not a multiply: padding values are undefined (could be inf/NaN) and must not be read
                total = torch.where(mask, frames.float(), torch.zeros(())).sum(dim=1)
                pooled[rows, layer] = (total / counts).numpy()
            lines.update(start + len(rows), f", {cache.hits} read from the feature cache" if cache else "")
    return pooled


def layer_views(pooled: np.ndarray) -> dict[str, np.ndarray]:
    """[N, L, D] -> {"last": [N, D], "mean": [N, D], "layer_0": [N, D], ...}, in the tie-break order."""
    views = {"last": pooled[:, -1], "mean": pooled.mean(axis=1)}
    views.update({f"layer_{i}": pooled[:, i] for i in range(pooled.shape[1])})
    return views


@dataclass
class ProbeFit:
    fold: int
    view: str
    c: float
    valid: Metrics
    test: Metrics
    valid_ua: dict[str, dict[float, float]]  # view -> C -> validation UA


def fit_probe(pooled: dict[str, np.ndarray], targets: dict[str, np.ndarray], labels: list[str],
              c_grid: Sequence[float] = C_GRID, seed: int = 0
              ) -> tuple[str, float, Metrics, Metrics, dict, dict[str, np.ndarray]]:
    """pooled/targets: {"train"|"valid"|"test": [N, L, D] / [N]} -> (view, C, valid metrics, test metrics,
    validation UA of every (view, C), {"valid"|"test": probabilities [N, C]} of the chosen model). The choice
    sees train and valid only; the test set is scored once, after."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if not len(targets["valid"]):
        raise ConfigError("the probe chooses its layer and C on the validation set, but this fold has none "
                          "(use the corpus's default valid option)")
    train_views, valid_views = layer_views(pooled["train"]), layer_views(pooled["valid"])
    best, grid = None, {}
    for view in train_views:
        grid[view] = {}
        for c in c_grid:
            model = make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=3000,
                                                                       random_state=seed))
            model.fit(train_views[view], targets["train"])
            valid = compute_metrics(model.predict(valid_views[view]), targets["valid"], labels)
            grid[view][c] = valid.ua
            if best is None or valid.ua > best[2].ua:
                best = (view, c, valid, model)
    view, c, valid, model = best
    test = compute_metrics(model.predict(layer_views(pooled["test"])[view]), targets["test"], labels)
    # class-index order: LogisticRegression orders its columns by the classes it saw in training
    probabilities = {}
    for part in ("valid", "test"):
        probs = np.zeros((len(targets[part]), len(labels)))
        probs[:, model.classes_] = model.predict_proba(layer_views(pooled[part])[view])
        probabilities[part] = probs
    return view, c, valid, test, grid, probabilities


def run_probe(data_cfg: DataConfig, out_dir: str | Path, upstream_cfg: UpstreamConfig,
              folds: Sequence[int] | None = None, c_grid: Sequence[float] = C_GRID,
              cache_dir: str | Path | None = None, progress: bool = False) -> tuple[CVSummary, list[ProbeFit]]:
    """Every (selected) fold of the corpus; writes cv.md/csv/json, plots, probe.json and, per fold,
    fold_<k>/predictions.csv (the chosen model's validation and test probabilities) to `out_dir`."""
    started = time.process_time()
    if not c_grid or any(not c > 0 for c in c_grid):
        raise ConfigError(f"--c: expected positive numbers, got {list(c_grid)}")
    data = BaselineFolds(data_cfg, folds)
    folds, classes = data.folds, data.classes
    pooled = pooled_layers(data.utterances, upstream_cfg, cache_dir, progress=progress)
    fits = []
    out_dir = Path(out_dir)
    for fold, features, targets in data.split(pooled):
        view, c, valid, test, grid, probabilities = fit_probe(features, targets, classes, c_grid)
        fits.append(ProbeFit(fold, view, c, valid, test, grid))
        ids = data.part_ids(fold)
        write_predictions(out_dir / f"fold_{fold}" / "predictions.csv", classes, {
            part: SplitPredictions(ids[part], probabilities[part], targets[part]) for part in ("valid", "test")})
    summary = CVSummary([FoldScores(fold=f.fold, metrics=f.test) for f in fits])
    write_cv_report(out_dir, f"linear probe, {upstream_cfg.source} ({data_cfg.corpus})", summary)
    write_json(out_dir / "probe.json", {
        "corpus": data_cfg.corpus, "root": str(data_cfg.root), "labels": classes, "options": data_cfg.options,
        "folds": folds,
        "upstream": upstream_cfg.__dict__, "features": "every layer mean-pooled over real frames",
        "classifier": "StandardScaler + LogisticRegression (class_weight=balanced); layer view and C chosen by "
                      "validation UA", "c_grid": list(c_grid), "num_layers": int(pooled.shape[1]),
        # the logistic regression's weights and biases; CPU seconds of this process (encoding included on a cold cache)
        "trainable_params": (int(pooled.shape[2]) + 1) * len(classes), "cpu_seconds": round(time.process_time() - started, 1),
        "per_fold": [{"fold": f.fold, "view": f.view, "c": f.c, "valid_ua": f.valid.ua,
                      "valid_ua_grid": {v: {str(c): ua for c, ua in by_c.items()} for v, by_c in f.valid_ua.items()},
                      "test": f.test.to_dict()} for f in fits],
    })
    return summary, fits
