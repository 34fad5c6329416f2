"""The upstream contract: task-independent encoders that return every layer plus frame lengths.

    forward(wavs [B, S] float32 16 kHz, wav_lens [B] samples, texts: list[str] | None)
        -> UpstreamOutput(hidden: list of [B, T, D] (one per layer, input embedding first where the
           model has one), frame_lens [B])

Frames at or past `frame_lens[b]` are padding: their values are undefined and must never be read.
Audio upstreams ignore `texts`; the text upstream reads only `texts` (it has no frame rate: frame_rate=0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import Registry


@dataclass
class UpstreamConfig:
    """The keys every upstream has, as written in an experiment config. An upstream with parameters of its own
    (hf, whisper, text: `source`; fbank: `cmn`) subclasses this next to its code and names it as its `Config`.

    name: registry key ("hf", "whisper", "fbank", "text", a plug-in's).
    layers: "last", "weighted" (learned softmax over all layers, SUPERB style) or a layer index ("6", "-2").
    freeze: "all" (frozen), "cnn" (fine-tune all but the CNN feature encoder: the paper's choice), "none",
        or "bottom:N" (Whisper: freeze the input embedding and the first N encoder blocks, fine-tune the rest;
        the frozen part's output can be cached, so an epoch runs only the top blocks).
    layer_norm: "weighted" only: layer-normalise each layer (no affine) before weighting; SUPERB's
        Featurizer does not by default, nor do we.
    lora_rank: > 0 adds LoRA adapters of this rank (peft) to the attention projections `lora_targets` of every
        trained encoder block (all with freeze "cnn"/"none", those above N with "bottom:N"), and trains them
        instead of the encoder's own weights (upstream/lora.py); 0 (default): off. lora_alpha: the update's
        scale numerator (update = alpha / rank x B A); lora_dropout: dropout on the adapters' input.
    """

    name: str = "hf"
    layers: str = "weighted"
    freeze: str = "cnn"
    layer_norm: bool = False
    lora_rank: int = 0
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: str = "q_proj,v_proj"


class UpstreamOutput(NamedTuple):
    hidden: list[torch.Tensor]  # num_layers x [B, T, D]; read-only (a FeatureCache's are views of one block)
    frame_lens: torch.Tensor  # [B] int64


class Upstream(nn.Module):
    """Base class. Subclasses set `num_layers`, `hidden_size`, `frame_rate` and implement forward.

    `frozen` (set by the freeze policy "all") keeps the module in eval mode whatever `train()` asks:
    a frozen encoder must not run dropout (or SpecAugment) while the heads above it train.

    Partial fine-tuning (freeze "bottom:N", `frozen_blocks` = N > 0) splits forward in two:
        encode_prefix(wavs, wav_lens) -> UpstreamOutput with hidden[0..N] (N + 1 layers, frozen, cacheable)
        encode_top(prefix)            -> UpstreamOutput with all num_layers layers (the top blocks trained)
    so forward == encode_top(encode_prefix(...)), and a feature cache can stand in for encode_prefix.
    """

    Config: ClassVar[type] = UpstreamConfig  # the dataclass of its parameters, which from_config reads
    modality: ClassVar[str] = "audio"  # "audio" or "text"
    num_layers: int
    hidden_size: int
    frame_rate: float  # frames per second of output (0 for text)
    frozen: bool = False
    frozen_blocks: int = 0  # freeze "bottom:N": the first N encoder blocks are frozen (0: not split)
    # bump when a code change alters the frames this upstream outputs: feature caches key on it (upstream/cache.py)
    feature_version: ClassVar[int] = 1

    @classmethod
    def from_config(cls, cfg: UpstreamConfig, pretrained: bool = True) -> "Upstream":
        """cfg: an instance of cls.Config. pretrained=False: build the architecture from the config files in
        cfg.source only, with
        untrained weights (a model bundle loads its own weights afterwards)."""
        raise NotImplementedError

    def forward(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor, texts: list[str] | None = None
    ) -> UpstreamOutput:
        raise NotImplementedError

    def feature_encoder_parameters(self) -> list[nn.Parameter]:
        """Parameters of the CNN feature encoder (frozen by freeze="cnn"); none by default."""
        return []

    def freeze_feature_encoder(self) -> None:
        """Stop training the CNN feature encoder (freeze="cnn"). HF models override this with their own."""
        for parameter in self.feature_encoder_parameters():
            parameter.requires_grad_(False)

    def freeze_bottom(self, blocks: int) -> None:
        """Freeze the input embedding and the first `blocks` encoder blocks (freeze "bottom:N")."""
        raise ConfigError(f"upstream {type(self).__name__}: freeze 'bottom:N' (partial fine-tuning) is supported "
                          "by the whisper upstream only; use 'all', 'cnn' or 'none'")

    def lora_root(self) -> tuple[nn.Module, int]:
        """(the module holding the encoder blocks, the number of blocks), for LoRA (upstream/lora.py)."""
        raise ConfigError(f"upstream {type(self).__name__}: LoRA (upstream.lora_rank) is supported by the hf and "
                          "whisper upstreams only")

    def modules_after_blocks(self) -> list[nn.Module]:
        """Modules outside the encoder blocks (`lora_root`) that run after the top block, e.g. a final layer norm:
        layer-wise learning-rate decay (training/layer_decay.py) gives them the top block's rate. None by default."""
        return []

    def cached_modules(self) -> list[nn.Module]:
        """The modules whose weights decide what a feature cache stores: all of the upstream when it is frozen,
        its frozen bottom when it has one (upstream/cache.py hashes them into the cache key)."""
        return [self]

    def encode_prefix(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> UpstreamOutput:
        """The frozen bottom's layers hidden[0..frozen_blocks] (see the class docstring)."""
        raise NotImplementedError

    def encode_top(self, prefix: UpstreamOutput) -> UpstreamOutput:
        """prefix.hidden[frozen_blocks] through the trained top blocks -> all layers (see the class docstring).
        prefix.hidden may hold None for layers below frozen_blocks that nobody reads (a feature cache)."""
        raise NotImplementedError

    def train(self, mode: bool = True) -> "Upstream":
        return super().train(mode and not self.frozen)

    def save_config_files(self, directory) -> None:
        """Write the encoder's own config files (HF config.json, preprocessor / tokenizer files) into
        `directory`, for a model bundle: `from_config(cfg, pretrained=False)` with source=directory
        rebuilds the same architecture offline, ready for the bundle's weights. Nothing by default."""

    def exportable(self, key: str) -> nn.Module:
        """The export twin that ONNX export (export/graph.py) traces in place of this upstream: the same
        computation on the same weight tensors, with every shape taken from the input's shape, never its values.
            forward(wavs [B, S] zero-padded, wav_lens [B]) -> (hidden: list of [B, T, D], frame_lens [B])
        with attributes `padding_invariant` (False: exact for one utterance per call only) and optionally
        `trace_samples` (the fewest samples a trace batch needs). key: this upstream's config key, for errors."""
        raise ConfigError(f"{key}: ONNX export is not supported for the {type(self).__name__} upstream (it has no "
                          "export twin); use the Python API or `serkit predict` instead")


UPSTREAMS: Registry[type[Upstream]] = Registry("upstream", "serkit.upstream", "serkit.upstreams")
