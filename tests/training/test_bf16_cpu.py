"""Fine-tuning in bf16-mixed on a CPU (what docs/results.md's bf16 seeds ran): the same command gives the same
bits twice, the precision really changes the training (other weights than float32), and the reported figures are
those of the float32 evaluation that `serkit predict` repeats on the bundle.

A tiny Whisper (crop, all but the convolutions trained, the fine-tuned recipe's layer-normed weighted layers and
statistics pooling), one fold, 2 epochs, top 2 averaged, one thread.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from serkit.bundle import load_bundle
from serkit.cli import main
from serkit.data.config import DataConfig
from serkit.data.dataset import build_loader
from serkit.data.prepare import read_corpus
from serkit.evaluation.metrics import compute_metrics
from serkit.evaluation.prediction_table import read_predictions
from serkit.training.predictions import predict_loader
from serkit.upstream.tiny import save_tiny_whisper
from serkit.util.threads import torch_threads


@pytest.fixture(scope="module")
def runs(synth_iemocap_root, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("bf16")
    encoder = save_tiny_whisper(root / "whisper", window_seconds=2)
    config = root / "finetune.yaml"
    config.write_text(yaml.safe_dump({
        "name": "tiny_whisper_finetune", "seed": 0,
        "model": {"upstreams": [{"name": "whisper", "source": str(encoder), "layers": "weighted",
                                 "layer_norm": True, "freeze": "cnn", "whisper_input": "crop"}],
                  "aggregators": [{"name": "stats"}]},
        "train": {"max_epochs": 2, "top_k": 2, "lr_upstream": 1e-3, "lr_downstream": 3e-3, "progress_bar": False},
        "data": {"corpus": "iemocap", "max_batch_seconds": 40.0}}))

    def cv(name: str, precision: str):
        out = root / name
        with torch_threads(1):
            assert main(["cv", str(config), "--root", str(synth_iemocap_root), "--out", str(out), "--folds", "1",
                         "--quiet", f"train.precision={precision}"]) == 0
        return out / "fold_1"

    return {"bf16": cv("bf16", "bf16-mixed"), "bf16_again": cv("bf16_again", "bf16-mixed"),
            "fp32": cv("fp32", "32-true"), "root": root}


def weights(fold) -> dict[str, bytes]:
    return {name: t.numpy().tobytes() for name, t in load_file(fold / "model" / "model.safetensors").items()}


def test_bf16_mixed_gives_the_same_bits_twice(runs):
    a, b = runs["bf16"], runs["bf16_again"]
    assert json.loads((a / "result.json").read_text())["averaged"] is not None  # 2 checkpoints averaged
    for name in ("result.json", "split.json", "predictions.csv", "model/metrics.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert weights(a) == weights(b)


def test_bf16_mixed_trains_otherwise_than_float32_and_keeps_float32_weights(runs):
    bf16, fp32 = load_file(runs["bf16"] / "model" / "model.safetensors"), \
        load_file(runs["fp32"] / "model" / "model.safetensors")
    assert bf16.keys() == fp32.keys()
    assert {t.dtype for t in bf16.values()} == {torch.float32}  # master weights: the bundle is float32
    assert any(not torch.equal(bf16[k], fp32[k]) for k in bf16)  # the autocast really ran
    assert all(torch.isfinite(t).all() for t in bf16.values())
    recorded = yaml.safe_load((runs["bf16"] / "config.yaml").read_text())
    assert recorded["train"]["precision"] == "bf16-mixed"


def test_the_reported_figures_are_the_float32_bundles(runs, synth_iemocap_root):
    """cv evaluates without autocast, so its recorded test probabilities are those of the float32 bundle that
    `serkit predict` loads: the bundle, reloaded from disk, gives them again (the table's figures are a user's)."""
    fold = runs["bf16"]
    model, cfg, labels = load_bundle(fold / "model")
    data = read_corpus(DataConfig(corpus="iemocap", root=str(synth_iemocap_root), check=False))
    split = data.corpus.split(data.prepared.utterances, 1)
    loader = build_loader(split.test, labels, cfg.data.max_batch_seconds, shuffle=False)
    with torch_threads(1):
        ids, probabilities, targets = predict_loader(model, loader)
    _, recorded = read_predictions(fold / "predictions.csv")
    order = {utt: k for k, utt in enumerate(recorded["test"].ids)}
    assert sorted(ids) == sorted(order)
    csv_probabilities = recorded["test"].probabilities[[order[i] for i in ids]]
    np.testing.assert_allclose(probabilities, csv_probabilities, atol=2e-6)  # the csv keeps 6 digits
    result = json.loads((fold / "result.json").read_text())
    reported = result[result["reported"]]["test"]
    metrics = compute_metrics(probabilities.argmax(-1), targets, labels)
    assert metrics.n == reported["n"]
    assert np.isclose(metrics.ua, reported["ua"]) and np.isclose(metrics.wa, reported["wa"])
