"""Freeze policies for an upstream (the config's `freeze` key).

  "all" (alias "frozen"): nothing of the upstream trains: every parameter has requires_grad=False and the
      module stays in eval mode (no dropout, no SpecAugment) even when the model around it calls train().
  "cnn": fine-tune everything except the CNN feature encoder (HF `freeze_feature_encoder()`; Whisper: its
      two input convolutions; text: the embedding layer). The paper's setting.
  "none": fine-tune everything.
  "bottom:N": partial fine-tuning (Whisper): the input embedding and the first N encoder blocks are frozen
      (and kept in eval mode), the blocks above them and the final layer norm train. With
      train.feature_cache the frozen bottom's output is cached, so an epoch costs only the top blocks.

fbank has no parameters, so every policy leaves it as it is.
"""

from __future__ import annotations

from ..errors import ConfigError
from .base import Upstream

POLICIES = ("all", "frozen", "cnn", "none", "bottom:N")


def check_freeze_policy(policy: str) -> str:
    if str(policy).startswith("bottom:"):
        frozen_blocks(policy)
        return policy
    if policy not in POLICIES[:-1]:
        raise ConfigError(f"upstream.freeze={policy!r}: expected one of {', '.join(POLICIES)}")
    return "all" if policy == "frozen" else policy


def frozen_blocks(policy: str) -> int:
    """"bottom:N" -> N (a positive integer), else ConfigError naming the key."""
    text = str(policy).removeprefix("bottom:")
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"upstream.freeze={policy!r}: 'bottom:N' needs N, the number of frozen encoder blocks, "
                          "as a whole number >= 1 (e.g. bottom:4 trains the top 2 of Whisper base's 6 blocks)")
    return int(text)


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
    elif policy.startswith("bottom:"):
        upstream.freeze_bottom(frozen_blocks(policy))
    return upstream
