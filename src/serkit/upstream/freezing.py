"""Freeze policies for an upstream (the config's `freeze` key).

  "all" (alias "frozen"): nothing of the upstream trains: every parameter has requires_grad=False and the
      module stays in eval mode (no dropout, no SpecAugment) even when the model around it calls train().
  "cnn": fine-tune everything except the CNN feature encoder (HF `freeze_feature_encoder()`; Whisper: its
      two input convolutions; text: the embedding layer). The paper's setting.
  "none": fine-tune everything.

fbank has no parameters, so every policy leaves it as it is.
"""

from __future__ import annotations

from ..errors import ConfigError
from .base import Upstream

POLICIES = ("all", "frozen", "cnn", "none")


def check_freeze_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise ConfigError(f"upstream.freeze={policy!r}: expected one of {', '.join(POLICIES)}")
    return "all" if policy == "frozen" else policy


def apply_freeze(upstream: Upstream, policy: str) -> Upstream:
    """Apply `policy` to `upstream` in place (and return it)."""
    policy = check_freeze_policy(policy)
    if policy == "all":
        upstream.freeze_feature_encoder()  # also tells HF's CNN to stop asking for input gradients
        upstream.requires_grad_(False)
        upstream.frozen = True
        upstream.eval()
    elif policy == "cnn":
        upstream.freeze_feature_encoder()
    return upstream
