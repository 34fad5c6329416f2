"""Layer-wise learning-rate decay (LLRD; Clark et al. 2020, ELECTRA; used by BEiT, data2vec and most speech
fine-tuning recipes): the top encoder block learns at lr_upstream, each block below it `decay` times slower,
the input embedding (CNN, positions) slowest, so the general-purpose lower layers move least.

    block i of n (0-based):              lr_upstream * decay ** (n - 1 - i)
    modules after the top block:         lr_upstream                     (a final layer norm)
    every other parameter:               lr_upstream * decay ** n        (CNN / conv stem, position embedding)

Blocks are found as for LoRA (`Upstream.lora_root`: the module holding them and their count; names
`[encoder.]layers.<i>....` inside it), so LoRA adapters inside block i decay with it; what runs after the top block is
the upstream's to say (`Upstream.modules_after_blocks`: Whisper's final layer norm, a pre-LN wav2vec2's / HuBERT's /
WavLM's encoder.layer_norm), since the order parameters are registered in is not the order they run in.
"""

from __future__ import annotations

import re
from collections import defaultdict

from torch import nn

from ..errors import ConfigError
from ..upstream.base import Upstream

# a block's parameters, named inside `lora_root`: Whisper "layers.3.fc1.weight", HF "encoder.layers.3...."; anchored,
# since other modules have numbered "layers" too (data2vec-audio's encoder.pos_conv_embed.layers.0)
BLOCK = re.compile(r"(?:encoder\.)?layers\.(\d+)\.")


def layer_scales(upstream: Upstream, decay: float, where: str = "upstream") -> dict[str, float]:
    """{parameter name in upstream: its learning-rate factor} for every parameter of `upstream`; `where` names
    it in errors (e.g. model.upstreams[1])."""
    try:
        root, num_blocks = upstream.lora_root()
    except ConfigError:
        raise ConfigError(f"train.lr_layer_decay: {where} ({type(upstream).__name__}) has no encoder blocks to decay "
                          "over (the hf and whisper upstreams have); set it to 1 or freeze that upstream") from None
    scale_of = {}  # parameter id -> factor
    for module in upstream.modules_after_blocks():
        scale_of.update({id(p): 1.0 for p in module.parameters()})
    for name, parameter in root.named_parameters():
        match = BLOCK.match(name)
        if match:
            scale_of[id(parameter)] = decay ** (num_blocks - 1 - int(match.group(1)))
    return {name: scale_of.get(id(parameter), decay ** num_blocks) for name, parameter in upstream.named_parameters()}


def upstream_param_groups(upstreams: nn.ModuleList, lr: float, decay: float) -> list[dict]:
    """Optimizer groups {"params", "lr"} of the upstreams' trained parameters: one group per learning rate (all
    at `lr` when decay is 1). Upstreams with nothing to train are skipped (a frozen text encoder needs no blocks)."""
    by_lr: dict[float, list[nn.Parameter]] = defaultdict(list)
    for index, upstream in enumerate(upstreams):
        trained = {name: p for name, p in upstream.named_parameters() if p.requires_grad}
        if not trained:
            continue
        scales = layer_scales(upstream, decay, f"model.upstreams[{index}]") if decay != 1.0 else {}
        for name, parameter in trained.items():
            by_lr[lr * scales.get(name, 1.0)].append(parameter)
    return [{"params": params, "lr": rate} for rate, params in sorted(by_lr.items(), reverse=True)]
