"""The classifier head: (dropout) + one linear layer from the embedding to the emotion logits."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError


@dataclass
class ClassifierConfig:
    """dropout: probability of zeroing an embedding value before the linear layer in training (0: none)."""

    dropout: float = 0.0


class Classifier(nn.Module):
    """embedding [B, E] -> logits [B, num_classes]."""

    def __init__(self, input_dim: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"key 'model.classifier.dropout' is {dropout}; expected a probability in [0, 1)")
        if num_classes < 2:
            raise ConfigError(f"num_classes is {num_classes}; a classifier needs at least 2 classes")
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.linear = nn.Linear(input_dim, num_classes)

    @classmethod
    def from_config(cls, cfg: ClassifierConfig, input_dim: int, num_classes: int) -> "Classifier":
        return cls(input_dim, num_classes, cfg.dropout)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(embedding))
