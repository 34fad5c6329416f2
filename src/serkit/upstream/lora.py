"""LoRA on an upstream's attention projections, through the `peft` library (upstream.lora_rank > 0).

peft injects a low-rank update W + (alpha / rank) B A into each targeted linear layer and leaves only A and B
trainable: the encoder's own weights stay as pretrained (so 16 training actors cannot pull them far). Which
blocks get adapters follows the freeze policy:
  "cnn" / "none"  every encoder block (the upstream's own weights are frozen all the same);
  "bottom:N"      the blocks above N only: the frozen bottom keeps its feature cache, an epoch runs the top;
  "all"           refused: nothing of the upstream would train.
A model bundle holds the merged weights (W + (alpha / rank) B A, `merge_lora`) and a config without LoRA, so it
loads, predicts and exports like any fine-tuned model, without peft.
"""

from __future__ import annotations

import re

from torch import nn

from ..errors import ConfigError
from .base import Upstream, UpstreamConfig


def check_lora(cfg: UpstreamConfig) -> None:
    """ConfigError naming the key for LoRA settings out of range (before a long model load)."""
    if cfg.lora_rank < 0:
        raise ConfigError(f"upstream.lora_rank is {cfg.lora_rank}; expected 0 (off) or a positive rank, e.g. 8")
    if not cfg.lora_rank:
        return
    if cfg.freeze in ("all", "frozen"):
        raise ConfigError("upstream.lora_rank > 0 with upstream.freeze='all': nothing of the upstream would train; "
                          "use freeze 'cnn' (LoRA in every block) or 'bottom:N' (LoRA above block N)")
    if not cfg.lora_alpha > 0:
        raise ConfigError(f"upstream.lora_alpha is {cfg.lora_alpha}; expected a positive scale (e.g. 2 x rank)")
    if not 0 <= cfg.lora_dropout < 1:
        raise ConfigError(f"upstream.lora_dropout is {cfg.lora_dropout}; expected a probability in [0, 1)")
    if not target_names(cfg):
        raise ConfigError("upstream.lora_targets is empty; expected linear layer names, e.g. 'q_proj,v_proj'")


def target_names(cfg: UpstreamConfig) -> list[str]:
    return [name.strip() for name in cfg.lora_targets.split(",") if name.strip()]


def add_lora(upstream: Upstream, cfg: UpstreamConfig) -> Upstream:
    """Inject LoRA adapters into `upstream` (in place) as cfg says; only the adapters train afterwards."""
    check_lora(cfg)
    if not cfg.lora_rank:
        return upstream
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise ConfigError("upstream.lora_rank needs the peft library: pip install 'serkit[lora]'") from None
    root, num_blocks = upstream.lora_root()
    blocks = "|".join(str(i) for i in range(upstream.frozen_blocks, num_blocks))
    names = "|".join(re.escape(name) for name in target_names(cfg))
    # module names inside root: Whisper "layers.3.self_attn.q_proj", wav2vec2 "encoder.layers.3.attention.q_proj"
    pattern = rf"(.*\.)?layers\.({blocks})\.(.*\.)?({names})"
    found = [name for name, module in root.named_modules() if re.fullmatch(pattern, name)]
    if not found or not all(isinstance(root.get_submodule(name), nn.Linear) for name in found):
        linears = sorted({name.rsplit(".", 1)[-1] for name, m in root.named_modules() if isinstance(m, nn.Linear)})
        raise ConfigError(f"upstream.lora_targets={cfg.lora_targets!r}: no linear layers of that name in the encoder "
                          f"blocks {upstream.frozen_blocks}..{num_blocks - 1}; its linear layers are {linears}")
    config = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                        target_modules=pattern, bias="none")
    inject_adapter_in_model(config, root)  # marks the adapters alone as trainable in root
    upstream.train(upstream.training)  # re-applies the frozen bottom's eval mode to the new modules
    return upstream


def has_lora(module: nn.Module) -> bool:
    return any(_is_lora_layer(m) for m in module.modules())


def merge_lora(module: nn.Module) -> int:
    """Fold every LoRA adapter in `module` into its base layer's weight and put the base layer back in its
    place (in place) -> the number of layers merged. The result holds plain nn.Linear layers only."""
    merged = 0
    for name, layer in list(module.named_modules()):
        if _is_lora_layer(layer):
            layer.merge()
            parent_name, _, child = name.rpartition(".")
            setattr(module.get_submodule(parent_name) if parent_name else module, child, layer.get_base_layer())
            merged += 1
    return merged


def _is_lora_layer(module: nn.Module) -> bool:
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:  # without peft there are no adapters
        return False
    return isinstance(module, LoraLayer)
