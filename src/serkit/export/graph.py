"""The graph that is exported: an SERModel rewritten so that every shape follows the input's shape alone.

    ExportGraph(model)(wavs [B, S] float32 16 kHz zero-padded, wav_lens [B] int64)
        -> (probabilities [B, C], embedding [B, E])   (embedding: the classifier's input, what `embed` returns)

The model's own forward decides some shapes from the data (`int(wav_lens.max())`, per-utterance loops, numpy
front ends), which a traced graph would freeze at the example input's values. Here each upstream is replaced
by an export twin that shares its weights (export/upstreams.py); layer selection, aggregation and the
classifier are the model's own modules, which already take every shape from the tensors and mask padding.

Supported (see export/upstreams.py): "fbank" (the pure-torch Kaldi filterbank), "hf" speech models, "whisper"
(pad and crop), late fusion, and early fusion of upstreams with one frame rate. Refused with ConfigError: text
upstreams (the tokenizer is not a graph), early fusion across frame rates.
"""

from __future__ import annotations

import torch
from torch import nn

from ..downstream.base import length_mask
from ..errors import ConfigError
from ..model import SERModel
from .upstreams import export_upstream


class ExportGraph(nn.Module):
    """wavs [B, S], wav_lens [B] -> (probabilities [B, C] (softmax over the model's logits), embedding [B, E])."""

    def __init__(self, model: SERModel):
        super().__init__()
        self.upstreams = nn.ModuleList(
            export_upstream(upstream, f"model.upstreams[{index}]") for index, upstream in enumerate(model.upstreams)
        )
        self.layer_selectors = model.layer_selectors
        self.fusion = model.fusion
        if model.early_fusion is not None:
            rates = set(model.early_fusion.frame_rates) | {model.early_fusion.target_rate}
            if len(rates) > 1:
                raise ConfigError(
                    f"model.fusion 'early' resamples frames between rates {sorted(rates)} Hz with data-dependent "
                    "shapes: export supports early fusion of upstreams with one frame rate only"
                )
        self.aggregate = model.aggregate
        self.classifier = model.classifier
        # what a caller must respect: False when an upstream runs utterances unpadded (see export/upstreams.py)
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
        if self.fusion == "late":
            embedding = self.aggregate(streams)
        else:
            frames, frame_lens = streams[0] if self.fusion == "none" else _concat_same_rate(streams)
            embedding = self.aggregate(frames, frame_lens)
        return torch.softmax(self.classifier(embedding), dim=-1), embedding


def _concat_same_rate(streams: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """EarlyFusion for streams at one frame rate, with shapes from the tensors: cropped to the shortest
    stream's T (not to max(frame_lens), a data-dependent size), frames past the fused frame_lens zeroed."""
    steps = min(frames.shape[1] for frames, _ in streams)
    frame_lens = torch.stack([lens for _, lens in streams]).min(dim=0).values
    frame_lens = torch.clamp(frame_lens, max=steps)
    frames = torch.cat([frames[:, :steps] for frames, _ in streams], dim=2)
    real = length_mask(frame_lens, steps).unsqueeze(-1)
    return torch.where(real, frames, torch.zeros((), dtype=frames.dtype)), frame_lens
