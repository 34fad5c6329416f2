"""The linear probe: a frozen encoder's layers, pooled, and a logistic regression (SUPERB / EmoBox style).

The first check a SER researcher runs on any encoder, scored on exactly the folds and test sets `serkit cv`
uses (corpus.split), so a trained system and the probe of its encoder compare fold by fold.

Per utterance: every hidden layer of the frozen encoder (input embedding first), each pooled over the
utterance's real frames -> [L, D] (pooling "mean", SUPERB's and EmoBox's probe) or [L, 2 D] ("stats": mean and
standard deviation, the statistics pooling of serkit's heads, so a head and a probe see the same summary).
Frames come through the same feature cache as `serkit cv` (same key: weights, config and the samples), so a
probe after a cv run (or the reverse) encodes nothing twice.

Per fold, chosen on the VALIDATION actors only (test labels are never read before the choice is made):
- the layer view: "last", "mean" (the average of all layers' pooled vectors) or one single layer "layer_<i>";
- C of an L2 logistic regression (scikit-learn, lbfgs, multinomial, class_weight="balanced" so every class
  counts alike, as in UA) on features standardised with the training actors' mean and std.
The pair with the best validation UA is kept (ties: the earlier view in the order above, then the smaller C);
the model trained on the training actors is scored on the test actors. With refit, the chosen view and C are
trained again on the training and validation actors together, and that model is the one tested (validation
predictions stay the training-only model's, so they remain out-of-sample for `serkit ensemble --select`).
With wave copies (`WaveCopies`, the fixed speed/gain/noise copies `train.augment.wave_variants` draws from,
data/wave_copies.py), each training utterance's K copies are added as training rows with its label (and, with
refit, each validation utterance's); the choice is still scored on the plain validation clips, and no test
clip is copied. The copies come through the same feature cache, so they are encoded once for the
probe and `serkit cv` alike.
With speaker normalisation (data/speaker_norm.py; a transductive protocol: every speaker's clips in the corpus
as read, test speakers' included, give that speaker's statistics, no labels read beyond the corpus's own label
filter), each speaker's pooled rows are standardised by their own mean and std, and each wave copy's rows by the
same speaker's copied rows (the clips some selected fold trains on: all of a speaker's clips when the folds
keep speakers apart, as RAVDESS's and IEMOCAP's do), before the view, the standardisation and the regression.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..data.audio import TARGET_SAMPLE_RATE, load_audio
from ..data.config import DataConfig
from ..data.speaker_norm import speaker_standardise
from ..data.utterance import Utterance
from ..data.wave_copies import WaveCopies
from ..downstream.mean_pool import MeanPooling
from ..downstream.stats_pool import StatisticsPooling
from ..errors import ConfigError
from ..evaluation.metrics import Metrics, compute_metrics
from ..evaluation.prediction_table import SplitPredictions, write_predictions
from ..evaluation.tables import CVSummary
from ..upstream import UpstreamConfig, build_upstream
from ..upstream.layers import LayerSelector
from ..util.progress import CountLines
from .folds import C_GRID, PARTS, BaselineFolds, choose_on_validation

ENCODE_BATCH = 8  # utterances per encoder call (sorted by length, so little padding)
POOLINGS = {"mean": MeanPooling, "stats": StatisticsPooling}


def pooled_layers(utterances: Sequence[Utterance], upstream_cfg: UpstreamConfig,
                  cache_dir: str | Path | None = None, cache_dtype: str = "float16", progress: bool = False,
                  pooling: str = "mean", transform: Callable[[np.ndarray, Utterance], np.ndarray] | None = None
                  ) -> np.ndarray:
    """-> [N, L, D] float32 (pooling "mean") or [N, L, 2 D] ("stats": mean then std): row i holds every layer
    of utterances[i], pooled over its real frames. cache_dir: the feature cache shared with `serkit cv` (None:
    encode without caching). progress: a line on stderr every 30 s (clips done, rate, ETA, cache reads).
    transform: what each clip's samples [S] become before encoding (None: as they are; a wave copy)."""
    from ..upstream.cache import FeatureCache

    if pooling not in POOLINGS:
        raise ConfigError(f"probe pooling {pooling!r}: expected one of {', '.join(POOLINGS)}")
    upstream_cfg = replace(upstream_cfg, layers="weighted", freeze="all")
    upstream = build_upstream(upstream_cfg)
    if upstream.modality != "audio":
        raise ConfigError(f"the probe needs an audio encoder; {upstream_cfg.name!r} is {upstream.modality}")
    selector = LayerSelector(upstream.num_layers, "weighted")  # reads every layer: cv's "weighted" cache entries
    cache = None if cache_dir is None else FeatureCache.for_upstream(upstream, upstream_cfg, selector, cache_dir,
                                                                     cache_dtype)
    order = sorted(range(len(utterances)), key=lambda i: utterances[i].duration or 0.0)
    pool = POOLINGS[pooling](upstream.hidden_size)
    pooled = np.zeros((len(utterances), upstream.num_layers, pool.output_dim), dtype=np.float32)
    lines = CountLines("encoding", len(order), enabled=progress)
    with torch.no_grad():
        for start in range(0, len(order), ENCODE_BATCH):
            rows = order[start:start + ENCODE_BATCH]
            wavs = [load_audio(utterances[i].path, utterances[i].start, utterances[i].end, TARGET_SAMPLE_RATE)
                    for i in rows]
            wavs = [torch.from_numpy(w if transform is None else transform(w, utterances[i])) for w, i in zip(wavs, rows)]
            wav_lens = torch.tensor([len(w) for w in wavs])
            batch = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)
            hidden, frame_lens = cache(upstream, batch, wav_lens) if cache else upstream(batch, wav_lens)
            for layer, frames in enumerate(hidden):  # frames [B, T, D]
                pooled[rows, layer] = pool(frames.float(), frame_lens).numpy()
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
              c_grid: Sequence[float] = C_GRID, seed: int = 0, refit: bool = False,
              copies: Sequence[dict[str, np.ndarray]] = ()) -> tuple[str, float, Metrics, Metrics, dict, dict]:
    """pooled/targets: {"train"|"valid"|"test": [N, L, D] / [N]} -> (view, C, valid metrics, test metrics,
    validation UA of every (view, C), {"valid"|"test": probabilities [N, C]} of the chosen model). The choice
    sees train and valid only; the test set is scored once, after (refit: by the chosen view and C trained on
    train and valid together). copies: per wave copy, {"train"|"valid": [N, L, D]} rows of the same utterances
    (their labels: targets'), added to the training rows (valid's only when refit)."""
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression

    views = {part: layer_views(pooled[part]) for part in PARTS}
    copy_views = [{part: layer_views(copy[part]) for part in ("train", "valid")} for copy in copies]
    fit_targets = {"train": np.tile(targets["train"], len(copies) + 1), "valid": targets["valid"]}
    train_rows = {v: np.concatenate([views["train"][v]] + [c["train"][v] for c in copy_views]) for v in views["train"]}
    regression = LogisticRegression(class_weight="balanced", max_iter=3000, random_state=seed)
    view, c, valid, model, grid = choose_on_validation(
        regression, {v: (train_rows[v], views["valid"][v]) for v in train_rows}, fit_targets, labels, c_grid)
    tested = model
    if refit:
        valid_rows = [views["valid"][view]] + [copy["valid"][view] for copy in copy_views]
        tested = clone(model).fit(np.concatenate([train_rows[view], *valid_rows]),
                                  np.concatenate([fit_targets["train"], np.tile(targets["valid"], len(copies) + 1)]))
    test = compute_metrics(tested.predict(views["test"][view]), targets["test"], labels)
    # class-index order: LogisticRegression orders its columns by the classes it saw in training
    probabilities = {}
    for part, fitted in (("valid", model), ("test", tested)):
        probabilities[part] = np.zeros((len(targets[part]), len(labels)))
        probabilities[part][:, fitted.classes_] = fitted.predict_proba(views[part][view])
    return view, c, valid, test, grid, probabilities


def run_probe(data_cfg: DataConfig, out_dir: str | Path, upstream_cfg: UpstreamConfig,
              folds: Sequence[int] | None = None, c_grid: Sequence[float] = C_GRID,
              cache_dir: str | Path | None = None, progress: bool = False, pooling: str = "mean",
              refit: bool = False, wave: WaveCopies | None = None, speaker_norm: bool = False
              ) -> tuple[CVSummary, list[ProbeFit]]:
    """Every (selected) fold of the corpus; writes cv.md/csv/json, plots, probe.json and, per fold,
    fold_<k>/predictions.csv (the chosen model's validation and test probabilities) to `out_dir`.
    wave: fixed copies of the clips added as training rows (None: none). speaker_norm: standardise each speaker's
    rows by their own statistics first (every clip of the corpus, unlabelled, gives its speaker's)."""
    started = time.process_time()
    wave = wave or WaveCopies()
    data = BaselineFolds(data_cfg, folds)
    if speaker_norm:  # before any encoding: a speaker with one clip is refused at once, not after an hour
        speakers = [u.speaker for u in data.utterances]
        speaker_standardise(np.zeros((len(speakers), 1)), speakers, "the corpus")
        if wave.variants:
            copied = _copied_indices(data, refit)
            speaker_standardise(np.zeros((len(copied), 1)), [speakers[i] for i in copied], "the copied clips")
    pooled = pooled_layers(data.utterances, upstream_cfg, cache_dir, progress=progress, pooling=pooling)
    if speaker_norm:
        pooled = speaker_standardise(pooled, [u.speaker for u in data.utterances], "the corpus")
    copy_splits = [data.split(rows) for rows in _copied_rows(data, wave, refit, upstream_cfg, cache_dir, progress,
                                                             pooling, speaker_norm)]
    fits = []
    for fold, features, targets in data.split(pooled):
        copies = [next(split)[1] for split in copy_splits]  # the same fold's rows of each copy
        view, c, valid, test, grid, probabilities = fit_probe(features, targets, data.classes, c_grid, refit=refit,
                                                              copies=copies)
        fits.append(ProbeFit(fold, view, c, valid, test, grid))
        ids = data.part_ids(fold)
        write_predictions(Path(out_dir) / f"fold_{fold}" / "predictions.csv", data.classes, {
            part: SplitPredictions(ids[part], probabilities[part], targets[part]) for part in ("valid", "test")})
    summary = data.write_report(out_dir, f"linear probe, {upstream_cfg.source} ({data_cfg.corpus})",
                                [(f.fold, f.test) for f in fits], "probe.json", {
        "upstream": upstream_cfg.__dict__, "pooling": pooling, "refit_on_train_and_valid": refit,
        "wave_copies": wave.__dict__, "speaker_norm": speaker_norm,
        "features": f"every layer pooled over real frames ({'mean and std' if pooling == 'stats' else 'mean'})",
        "classifier": "StandardScaler + LogisticRegression (class_weight=balanced); layer view and C chosen by "
                      "validation UA", "c_grid": list(c_grid), "num_layers": int(pooled.shape[1]),
        # the logistic regression's weights and biases; CPU seconds of this process (encoding included on a cold cache)
        "trainable_params": (int(pooled.shape[2]) + 1) * len(data.classes),
        "cpu_seconds": round(time.process_time() - started, 1),
        "per_fold": [{"fold": f.fold, "view": f.view, "c": f.c, "valid_ua": f.valid.ua,
                      "valid_ua_grid": {v: {str(c): ua for c, ua in by_c.items()} for v, by_c in f.valid_ua.items()},
                      "test": f.test.to_dict()} for f in fits],
    })
    return summary, fits


def _copied_rows(data: BaselineFolds, wave: WaveCopies, refit: bool, upstream_cfg: UpstreamConfig,
                 cache_dir, progress: bool, pooling: str, speaker_norm: bool = False) -> list[np.ndarray]:
    """Per copy k = 1..wave.variants: [N, L, D] rows like `pooled_layers`'s, filled for the utterances some
    selected fold trains on (its training part; with refit, its validation part too); the rest stay 0 and are
    never read. speaker_norm: each speaker's filled rows of copy k standardised by their own statistics."""
    rows = _copied_indices(data, refit)
    copied = []
    for k in range(1, wave.variants + 1):
        some = pooled_layers([data.utterances[i] for i in rows], upstream_cfg, cache_dir, progress=progress,
                             pooling=pooling, transform=lambda wav, utt, k=k: wave.make(wav, utt.id, k))
        if speaker_norm:
            some = speaker_standardise(some, [data.utterances[i].speaker for i in rows], f"wave copy {k}")
        full = np.zeros((len(data.utterances), *some.shape[1:]), dtype=some.dtype)
        full[rows] = some
        copied.append(full)
    return copied


def _copied_indices(data: BaselineFolds, refit: bool) -> list[int]:
    """Indices into data.utterances of the clips some selected fold trains on (with refit, validates on too)."""
    parts = ("train", "valid") if refit else ("train",)
    trained = {utt_id for fold in data.folds for part, ids in data.part_ids(fold).items() if part in parts
               for utt_id in ids}
    return [i for i, utt in enumerate(data.utterances) if utt.id in trained]
