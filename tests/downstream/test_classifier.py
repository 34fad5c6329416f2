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
