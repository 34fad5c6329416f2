"""Plain evaluation loop (no Lightning): predictions of a model over a loader, and their metrics."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..evaluation.metrics import Metrics, compute_metrics
from ..evaluation.prediction_table import SplitPredictions
from ..model import SERModel


@torch.no_grad()
def predict_loader(model: SERModel, loader: DataLoader) -> tuple[list[str], np.ndarray, np.ndarray]:
    """-> (ids, probabilities [N, C] float32, label indices [N]) in loader order."""
    was_training = model.training
    model.eval()
    device = next(model.parameters(), torch.empty(0)).device
    ids, probs, targets = [], [], []
    try:
        for batch in loader:
            batch = batch.to(device)
            logits = model(batch.wavs, batch.wav_lens, batch.texts)
            probs.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
            targets.append(batch.labels.cpu().numpy())
            ids.extend(batch.ids)
    finally:
        model.train(was_training)
    if not ids:
        return [], np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    return ids, np.concatenate(probs), np.concatenate(targets)


def evaluate_model(model: SERModel, loader: DataLoader, labels: list[str]) -> Metrics:
    _, probs, targets = predict_loader(model, loader)
    return compute_metrics(probs.argmax(-1), targets, labels)


def evaluate_splits(model: SERModel, loaders: dict[str, DataLoader], labels: list[str]
                    ) -> tuple[dict[str, Metrics], dict[str, SplitPredictions]]:
    """Per split name: its metrics, and its per-utterance predictions (for predictions.csv)."""
    metrics, predictions = {}, {}
    for name, loader in loaders.items():
        ids, probs, targets = predict_loader(model, loader)
        predictions[name] = SplitPredictions(ids, probs, targets)
        metrics[name] = compute_metrics(probs.argmax(-1), targets, labels)
    return metrics, predictions
