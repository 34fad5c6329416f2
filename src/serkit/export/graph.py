"""The graph that is exported: an SERModel rewritten so that every shape follows the input's shape alone.

    ExportGraph(model)(wavs [B, S] float32 16 kHz zero-padded, wav_lens [B] int64)
        -> (probabilities [B, C], embedding [B, E])   (embedding: the classifier's input, what `embed` returns)

The model's own forward decides some shapes from the data (`int(wav_lens.max())`, per-utterance loops, numpy
front ends), which a traced graph would freeze at the example input's values. Here each upstream is replaced
by the export twin it gives (`Upstream.exportable`), which shares its weights; layer selection, fusion with
aggregation (`SERModel.aggregate`) and the classifier are the model's own modules, which already take every
shape from the tensors and mask padding.

Supported: the upstreams that have an export twin ("fbank", "hf" speech models, "whisper" in pad and crop
modes), late fusion, and early fusion of upstreams with one frame rate. Refused with ConfigError: text
upstreams (the tokenizer is not a graph), early fusion across frame rates.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..fusion import EarlyFusion
from ..model import SERModel
from ..util.masks import length_mask


class ExportGraph(nn.Module):
    """wavs [B, S], wav_lens [B] -> (probabilities [B, C] (softmax over the model's logits), embedding [B, E])."""

    def __init__(self, model: SERModel):
        super().__init__()
        self.upstreams = nn.ModuleList(
            upstream.exportable(f"model.upstreams[{index}]") for index, upstream in enumerate(model.upstreams)
        )
        self.layer_selectors = model.layer_selectors
        fusion = model.aggregate
        if isinstance(fusion, EarlyFusion) and fusion.resamples:
            raise ConfigError(
                f"model.fusion 'early' resamples frames between rates {sorted({*fusion.frame_rates, fusion.target_rate})}"
                " Hz with data-dependent shapes: export supports early fusion of upstreams with one frame rate only"
            )
        self.aggregate = fusion
        self.classifier = model.classifier
        # what a caller must respect: False when an upstream runs utterances unpadded (see HFExport in upstream/hf.py)
        self.padding_invariant = all(upstream.padding_invariant for upstream in self.upstreams)
        # the fewest samples a trace batch needs so that no shape is specialised (Whisper: more than a window)
        self.trace_samples = max(getattr(upstream, "trace_samples", 0) for upstream in self.upstreams)

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        wav_lens = wav_lens.long()
        # padding must be exactly zero (a caller's padding value is not ours to trust)
        wavs = torch.where(length_mask(wav_lens, wavs.shape[1]), wavs.float(), torch.zeros((), dtype=torch.float32))
        streams = []
        for upstream, selector in zip(self.upstreams, self.layer_selectors):
            hidden, frame_lens = upstream(wavs, wav_lens)
            streams.append((selector(hidden), frame_lens))
        embedding = self.aggregate(streams)
        return torch.softmax(self.classifier(embedding), dim=-1), embedding
