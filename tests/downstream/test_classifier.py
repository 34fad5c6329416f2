"""Classifier head: dropout (training only) then one linear layer."""

from __future__ import annotations

import pytest
import torch

from serkit.downstream import Classifier, ClassifierConfig
from serkit.errors import ConfigError


def test_logits_shape_and_linear_map():
    torch.manual_seed(0)
    head = Classifier.from_config(ClassifierConfig(), input_dim=12, num_classes=4)
    embedding = torch.randn(5, 12)
    logits = head(embedding)
    assert logits.shape == (5, 4)
    torch.testing.assert_close(logits, embedding @ head.linear.weight.T + head.linear.bias)


def test_dropout_only_in_training():
    torch.manual_seed(0)
    head = Classifier.from_config(ClassifierConfig(dropout=0.5), input_dim=64, num_classes=3)
    embedding = torch.randn(8, 64)
    head.eval()
    torch.testing.assert_close(head(embedding), head(embedding))
    eval_logits = head(embedding)
    head.train()
    first, second = head(embedding), head(embedding)
    assert not torch.allclose(first, second)  # a fresh dropout mask each call
    assert not torch.allclose(first, eval_logits)


@pytest.mark.parametrize("dropout", [-0.1, 1.0, 1.5])
def test_bad_dropout_names_the_key(dropout):
    with pytest.raises(ConfigError, match=r"model\.classifier\.dropout"):
        Classifier(8, 4, dropout=dropout)


def test_norm_standardises_each_dimension_and_keeps_running_statistics():
    torch.manual_seed(0)
    head = Classifier.from_config(ClassifierConfig(norm=True), input_dim=6, num_classes=3)
    scale = torch.tensor([1.0, 10.0, 100.0, 1000.0, 0.1, 5.0])
    embedding = torch.randn(64, 6) * scale + 50
    head.train()
    normed = head.norm(embedding)
    torch.testing.assert_close(normed.mean(0), torch.zeros(6), atol=1e-3, rtol=0)
    torch.testing.assert_close(normed.std(0, unbiased=False), torch.ones(6), atol=1e-3, rtol=0)
    for _ in range(200):  # running statistics converge to the data's
        head(torch.randn(64, 6) * scale + 50)
    assert ((head.norm.running_mean - 50).abs() < 0.1 * scale).all()
    torch.testing.assert_close(head.norm.running_var, scale**2, atol=0, rtol=0.25)
    head.eval()  # evaluation: the running statistics, whatever the batch
    torch.testing.assert_close(head.norm(embedding[:3]), head.norm(embedding)[:3])
    assert set(head.state_dict()) >= {"norm.running_mean", "norm.running_var"}


def test_norm_takes_a_training_batch_of_one():
    head = Classifier.from_config(ClassifierConfig(norm=True), input_dim=4, num_classes=2)
    head.train()
    assert torch.isfinite(head(torch.randn(1, 4))).all()


def test_hidden_layer_makes_a_small_mlp_and_a_linear_head_keeps_its_names():
    torch.manual_seed(0)
    mlp = Classifier.from_config(ClassifierConfig(hidden=16, dropout=0.3), input_dim=12, num_classes=4).eval()
    embedding = torch.randn(5, 12)
    first, activation = mlp.hidden[0], torch.nn.functional.gelu
    expected = activation(embedding @ first.weight.T + first.bias) @ mlp.linear.weight.T + mlp.linear.bias
    torch.testing.assert_close(mlp(embedding), expected)
    assert mlp.linear.in_features == 16
    assert set(Classifier.from_config(ClassifierConfig(), 12, 4).state_dict()) == {"linear.weight", "linear.bias"}
    for bad in (-1, 2.5, True):
        with pytest.raises(ConfigError, match=r"model\.classifier\.hidden"):
            Classifier(12, 4, hidden=bad)


def test_an_mlp_head_survives_its_bundle(tmp_path):
    from serkit.bundle import load_bundle, save_bundle
    from serkit.config import load_config
    from serkit.model import build_model

    cfg = load_config(overrides=["model.upstreams=[{name: fbank, layers: last, freeze: all}]",
                                 "model.aggregators=[{name: stats}]", "model.classifier.hidden=8"])
    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes=3).eval()
    save_bundle(tmp_path / "bundle", model, cfg, ["a", "b", "c"])
    loaded, loaded_cfg, _ = load_bundle(tmp_path / "bundle")
    assert loaded_cfg.model.classifier.hidden == 8
    wavs = torch.randn(2, 16000)
    lens = torch.tensor([16000, 9000])
    torch.testing.assert_close(loaded(wavs, lens), model(wavs, lens))
