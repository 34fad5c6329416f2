"""Layer-wise learning-rate decay (LLRD; Clark et al. 2020, ELECTRA; used by BEiT, data2vec and most speech
fine-tuning recipes): the top encoder block learns at lr_upstream, each block below it `decay` times slower,
the input embedding (CNN, positions) slowest, so the general-purpose lower layers move least.

    block i of n (0-based):              lr_upstream * decay ** (n - 1 - i)
    parameters before the blocks:        lr_upstream * decay ** n        (CNN / conv stem, position embedding)
    parameters after the blocks:         lr_upstream                     (a final layer norm)

Blocks are found as for LoRA (`Upstream.lora_root`: the module holding them and their count; names
`...layers.<i>....`), so LoRA adapters inside block i decay with it. "Before" and "after" follow the order in
which the upstream registers its parameters.
"""

from __future__ import annotations

import re
from collections import defaultdict

from torch import nn

from ..errors import ConfigError
from ..upstream.base import Upstream

BLOCK = re.compile(r"(?:.*\.)?layers\.(\d+)\.")


def layer_scales(upstream: Upstream, decay: float) -> dict[str, float]:
    """{parameter name in upstream: its learning-rate factor} for every parameter of `upstream`."""
    try:
        root, num_blocks = upstream.lora_root()
    except ConfigError:
        raise ConfigError(f"train.lr_layer_decay: upstream {type(upstream).__name__} has no encoder blocks to decay "
                          "over (the hf and whisper upstreams have); set it to 1 or freeze that upstream") from None
    block_of = {}
    for name, parameter in root.named_parameters():
        match = BLOCK.match(name)
        if match:
            block_of[id(parameter)] = int(match.group(1))
    scales, after_blocks = {}, False
    for name, parameter in upstream.named_parameters():
        block = block_of.get(id(parameter))
        if block is not None:
            after_blocks = True
            scales[name] = decay ** (num_blocks - 1 - block)
        else:
            scales[name] = 1.0 if after_blocks else decay ** num_blocks
    return scales


def upstream_param_groups(upstreams: nn.ModuleList, lr: float, decay: float) -> list[dict]:
    """Optimizer groups {"params", "lr"} of the upstreams' trained parameters: one group per learning rate (all
    at `lr` when decay is 1). Upstreams with nothing to train are skipped (a frozen text encoder needs no blocks)."""
    by_lr: dict[float, list[nn.Parameter]] = defaultdict(list)
    for upstream in upstreams:
        trained = {name: p for name, p in upstream.named_parameters() if p.requires_grad}
        if not trained:
            continue
        scales = layer_scales(upstream, decay) if decay != 1.0 else {}
        for name, parameter in trained.items():
            by_lr[lr * scales.get(name, 1.0)].append(parameter)
    return [{"params": params, "lr": rate} for rate, params in sorted(by_lr.items(), reverse=True)]
