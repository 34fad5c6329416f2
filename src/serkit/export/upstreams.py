"""Export twins of the upstreams: the same computation (and the same weight tensors), with every shape taken
from the input's shape, never from its values.

    fbank   TorchFbank (upstream/fbank_torch.py) in place of kaldi-native-fbank; cmn as a masked mean.
    hf      wav2vec2 / HuBERT / WavLM / data2vec-audio. The input is padded by one receptive field of zeros
            (so every utterance, even one shorter than 25 ms, has its 400 samples) and normalised over its
            real samples, as HFSpeechUpstream does.
            - layer-norm CNN + attention mask (the large models: `upstream.batched`): one padded batch with
              the attention mask, padding invariant like the PyTorch model;
            - the others (group-norm CNN: the base models; data2vec-audio; models trained without masks) run
              in PyTorch one utterance at a time, unpadded, because padding leaks into their real frames. A
              graph cannot loop over utterances of different lengths, so their export reads the whole padded
              width: exact for a batch of one (or of equal lengths), S >= 400 samples. The exported file
              records `padding_invariant = false`; feed it one utterance per call.
    whisper WhisperExport (export/whisper.py): the extractor's log-mel in torch operators, 30 s chunks, the
            "pad" and "crop" input modes and a frozen bottom ("bottom:N") as WhisperUpstream runs them.
    text: ConfigError (a tokenizer cannot be part of the graph).

forward(wavs [B, S] zero-padded, wav_lens [B]) -> (hidden: list of [B, T, D], frame_lens [B]), as Upstream.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..upstream.audio import sample_mask, zero_mean_unit_var
from ..upstream.base import Upstream
from ..upstream.fbank import FbankUpstream, fbank_frame_lens
from ..upstream.fbank_torch import TorchFbank
from ..upstream.hf import HFSpeechUpstream
from ..upstream.whisper import WhisperUpstream
from .whisper import WhisperExport


class FbankExport(nn.Module):
    padding_invariant = True

    def __init__(self, upstream: FbankUpstream):
        super().__init__()
        self.fbank = TorchFbank(upstream.hidden_size)
        self.cmn = upstream.cmn

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor):
        feats = self.fbank(wavs)  # [B, T, 80]
        frame_lens = fbank_frame_lens(wav_lens)
        if self.cmn:
            real = sample_mask(frame_lens, feats.shape[1]).unsqueeze(-1).to(feats.dtype)
            mean = (feats * real).sum(dim=1, keepdim=True) / frame_lens.clamp(min=1)[:, None, None].to(feats.dtype)
            feats = feats - mean
        return [feats], frame_lens


class HFExport(nn.Module):
    """The encoder call itself is the upstream's own `_encode` (one place decides which hidden states are
    the layers); only the padding and masking around it differ from HFSpeechUpstream.forward."""

    def __init__(self, upstream: HFSpeechUpstream):
        super().__init__()
        self.upstream = upstream
        self.do_normalize = upstream.do_normalize
        self.min_samples = upstream.min_samples
        self.padding_invariant = upstream.batched

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor):
        if self.padding_invariant:
            # one receptive field of zeros: every clamped length fits, whatever the batch
            wavs = nn.functional.pad(wavs, (0, self.min_samples))
        input_lens = wav_lens.clamp(min=self.min_samples)
        width = wavs.shape[1]
        if self.do_normalize:
            wavs = zero_mean_unit_var(wavs, wav_lens)
        attention_mask = sample_mask(input_lens, width).long() if self.padding_invariant else None
        hidden = self.upstream._encode(wavs, attention_mask)
        frame_lens = self.upstream.model._get_feat_extract_output_lengths(input_lens).long()
        return hidden, frame_lens


def export_upstream(upstream: Upstream, key: str) -> nn.Module:
    """The export twin of `upstream`; ConfigError (naming the config key) for upstreams that cannot export."""
    if isinstance(upstream, FbankUpstream):
        return FbankExport(upstream)
    if isinstance(upstream, HFSpeechUpstream):
        return HFExport(upstream)
    if isinstance(upstream, WhisperUpstream):
        return WhisperExport(upstream, key)
    if getattr(upstream, "modality", "audio") == "text":
        raise ConfigError(
            f"{key} is a text upstream: ONNX export is not supported for models with a text branch (the "
            "tokenizer cannot be part of the graph); use the Python API or `serkit predict` instead"
        )
    raise ConfigError(
        f"{key} is a {type(upstream).__name__}: ONNX export supports the 'fbank', 'hf' (wav2vec2, HuBERT, WavLM, "
        "data2vec-audio) and 'whisper' upstreams only"
    )
