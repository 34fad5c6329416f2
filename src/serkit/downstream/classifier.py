"""The classifier head: (standardisation) + (dropout) + one linear layer from the embedding to the emotion logits,
or (hidden > 0) a small MLP: linear -> GELU -> dropout -> linear."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError


@dataclass
class ClassifierConfig:
    """dropout: probability of zeroing an embedding value before the linear layer in training (0: none).
    norm: standardise every embedding dimension first (BatchNorm without affine parameters: batch statistics
    while training, running ones after). Self-supervised encoders' frames have a few dimensions hundreds of
    times larger than the rest; a linear probe standardises its features for that reason, and a head trained
    by SGD needs the same, or it fits those few dimensions first.
    hidden: width of one hidden layer (GELU, then the same dropout) between embedding and logits; 0 (default):
    none, a linear head."""

    dropout: float = 0.0
    norm: bool = False
    hidden: int = 0


class Classifier(nn.Module):
    """embedding [B, E] -> logits [B, num_classes]."""

    def __init__(self, input_dim: int, num_classes: int, dropout: float = 0.0, norm: bool = False, hidden: int = 0):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"key 'model.classifier.dropout' is {dropout}; expected a probability in [0, 1)")
        if num_classes < 2:
            raise ConfigError(f"num_classes is {num_classes}; a classifier needs at least 2 classes")
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 0:
            raise ConfigError(f"key 'model.classifier.hidden' is {hidden!r}; expected 0 (a linear head) or a width")
        self.norm = Standardise(input_dim) if norm else nn.Identity()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        # only with hidden > 0, so a linear head's state_dict (and every bundle saved before) keeps its names
        self.hidden = nn.Sequential(nn.Linear(input_dim, hidden), nn.GELU(), self.dropout) if hidden else None
        self.linear = nn.Linear(hidden or input_dim, num_classes)

    @classmethod
    def from_config(cls, cfg: ClassifierConfig, input_dim: int, num_classes: int) -> "Classifier":
        return cls(input_dim, num_classes, cfg.dropout, cfg.norm, cfg.hidden)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.norm(embedding))
        return self.linear(x if self.hidden is None else self.hidden(x))


class Standardise(nn.BatchNorm1d):
    """[B, E] -> [B, E], each dimension standardised (BatchNorm1d, no affine). A training batch of one
    utterance (the last of an epoch can be) has no spread to measure: it uses the running statistics."""

    def __init__(self, dim: int):
        super().__init__(dim, affine=False)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        if self.training and embedding.shape[0] < 2:
            return nn.functional.batch_norm(embedding, self.running_mean, self.running_var, training=False,
                                            eps=self.eps)
        return super().forward(embedding)
