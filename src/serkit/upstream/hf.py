"""Hugging Face speech SSL encoders (wav2vec 2.0, HuBERT, WavLM, data2vec-audio) as one upstream.

Config key "hf"; `source` is a preset, a hub id or a local directory (see presets.py). A Whisper
checkpoint given to "hf" is handed to the Whisper upstream (whisper.py), so `name: hf` works for both.

Input preparation follows the checkpoint's own `preprocessor_config.json` (a Wav2Vec2FeatureExtractor):
  do_normalize           zero mean / unit variance per utterance, over the real samples only;
  return_attention_mask  whether the model was trained to take an attention mask.
Without that file (e.g. a bare `save_pretrained` of a model) we fall back to fairseq's training recipe:
do_normalize is on for data2vec-audio and for the layer-norm ("large", feat_extract_norm="layer") models,
off for the group-norm base models; an attention mask is used exactly by the layer-norm models.

Padding. Three things let padding leak into real frames, so affected models run each utterance alone,
unpadded (utterances of equal length share a sub-batch), exactly as they were trained:
  - a group-norm CNN (feat_extract_norm="group": wav2vec2-base, hubert-base, wavlm-base(-plus))
    normalises each channel over the whole time axis, so zero padding changes every frame;
  - a model trained without attention masks must not be given padded input;
  - data2vec-audio's positional embedding is a stack of convolutions (5 x kernel 19 in the released
    models) and HF zeroes the padding only before the first, so padding reaches ~45 real frames.
Only the rest (wav2vec2 / HuBERT / WavLM with a layer-norm CNN and an attention mask: the large models)
run the padded batch at once, with the mask. Either way an utterance gives the same frames alone or
inside a batch (tests/upstream/test_hf.py).

Layer-drop is switched off at load (config.layerdrop = 0): a dropped layer would hand the layer selector a
copy of the previous layer, so "weighted" mixes and fixed layer indices would change meaning at random
from step to step (and DDP would see parameters without gradient).

SpecAugment-style masking (config.mask_time_prob, on in most released configs) is left as the checkpoint
sets it, as HF's own fine-tuning does: it acts in train mode only, so never on a frozen upstream.

Utterances shorter than the CNN's receptive field (400 samples = 25 ms) are zero-padded up to it and
yield one frame, rather than none.

Shapes on a GPU (`pad_multiple_s`, batched models only). Every new input shape costs the GPU first-time work
(kernel choices, the caching allocator growing), and a length-bucketed batch of clips of any duration has a
new width nearly every step: on an H200, the same 30 batches of a wav2vec2-large fine-tuning ran at 26.2
utterances/s the first time and 62.4 the second (docs/benchmarks.md, "GPU check"). Rounding the padded width
up to a multiple of `pad_multiple_s` seconds leaves a few dozen widths; the added frames are masked like any
padding, so every real frame is unchanged. On a CPU there is no such cost to save, and the rounding is skipped
(a bundle trained with it predicts on a CPU at the clips' own widths). Models run one utterance at a time have
nothing to round and refuse the option.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
import math

import torch
from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, Wav2Vec2FeatureExtractor

from ..errors import ConfigError
from ..util.masks import length_mask
from .audio import check_batch, repad, zero_mean_unit_var
from .base import UPSTREAMS, Upstream, UpstreamConfig, UpstreamOutput
from .presets import load_or_config_error, resolve_source

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
SUPPORTED_MODEL_TYPES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")


def default_preprocessing(config) -> Wav2Vec2FeatureExtractor:
    """The feature-extractor settings to assume when a checkpoint ships no preprocessor_config.json."""
    layer_norm_cnn = getattr(config, "feat_extract_norm", "layer") == "layer"
    do_normalize = config.model_type == "data2vec-audio" or layer_norm_cnn
    return Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=SAMPLE_RATE,
        padding_value=0.0,
        do_normalize=do_normalize,
        return_attention_mask=layer_norm_cnn,
    )


def unbatched_reason(config, extractor: Wav2Vec2FeatureExtractor) -> str:
    """Why padding would leak into a model's real frames, so it runs one utterance at a time (see the module
    docstring); "" for a batched one (layer-norm CNN, trained with attention masks, no stacked position convs)."""
    if getattr(config, "feat_extract_norm", "layer") == "group":
        return "a group-norm CNN"
    if config.model_type == "data2vec-audio":
        return "data2vec-audio's stacked position convolutions"
    if not extractor.return_attention_mask:
        return "trained without an attention mask (return_attention_mask false)"
    return ""


def receptive_field(config) -> int:
    """Fewest input samples that give one output frame of the conv stack (400 for wav2vec2's)."""
    samples = 1
    for kernel, stride in reversed(list(zip(config.conv_kernel, config.conv_stride))):
        samples = (samples - 1) * stride + kernel
    return samples


@dataclass
class HFConfig(UpstreamConfig):
    """source: preset name (e.g. "wav2vec2-large-robust"), hub id, or local directory (see presets.py).
    pad_multiple_s: > 0 rounds a batch's padded width up to a multiple of this many seconds on a GPU (batched
    models only; fewer distinct shapes: see the module docstring); 0 (default): the longest clip's width. The
    padded audio then exceeds data.max_batch_seconds by up to batch size x pad_multiple_s (memory: +5-12% at
    0.5 s in the GPU check)."""

    name: str = "hf"
    source: str | None = None
    pad_multiple_s: float = 0.0

    def __post_init__(self):
        if not (math.isfinite(self.pad_multiple_s) and (self.pad_multiple_s == 0
                                                         or round(self.pad_multiple_s * SAMPLE_RATE) >= 1)):
            raise ConfigError(f"key 'pad_multiple_s' of upstream 'hf' is {self.pad_multiple_s!r}; expected 0 (off) "
                              f"or a finite number of seconds of at least one sample (1/{SAMPLE_RATE} s)")


@UPSTREAMS.register("hf")
class HFSpeechUpstream(Upstream):
    """wavs [B, S] 16 kHz -> hidden: (num_hidden_layers + 1) x [B, T, D] (CNN/embedding output first,
    as HF returns it), frame_lens [B] from the model's `_get_feat_extract_output_lengths`; 50 Hz."""

    Config = HFConfig

    def __init__(self, model, feature_extractor: Wav2Vec2FeatureExtractor, source: str = "",
                 pad_multiple_s: float = 0.0):
        super().__init__()
        config = model.config
        self.model = model
        self.feature_extractor = feature_extractor
        self.source = source
        self.do_normalize = bool(feature_extractor.do_normalize)
        self.batched = not unbatched_reason(config, feature_extractor)
        self.num_layers = config.num_hidden_layers + 1
        self.hidden_size = config.hidden_size
        self.frame_rate = SAMPLE_RATE / math.prod(config.conv_stride)
        self.min_samples = receptive_field(config)
        self.pad_multiple = int(round(pad_multiple_s * SAMPLE_RATE))  # samples; 0: off
        if self.pad_multiple and not self.batched:
            raise ConfigError(
                f"upstream.pad_multiple_s={pad_multiple_s:g}: {source or 'this model'} runs each utterance alone, "
                f"unpadded ({unbatched_reason(config, feature_extractor)}: see serkit/upstream/hf.py), so there is "
                f"no padded width to round; set it to 0"
            )

    @classmethod
    def from_config(cls, cfg: HFConfig, pretrained: bool = True) -> Upstream:
        source = resolve_source(cfg.source)
        config = load_or_config_error(AutoConfig.from_pretrained, source)
        if config.model_type == "whisper":
            from .whisper import WhisperConfig, WhisperUpstream

            if cfg.pad_multiple_s:
                raise ConfigError(f"upstream.source {cfg.source!r} is a Whisper encoder: pad_multiple_s is an option "
                                  f"of the wav2vec2 family's batched models only; set it to 0")
            options = {k: v for k, v in vars(cfg).items() if k != "pad_multiple_s"}
            return WhisperUpstream.from_config(WhisperConfig(**{**options, "name": "whisper"}), pretrained)
        if config.model_type not in SUPPORTED_MODEL_TYPES:
            raise ConfigError(
                f"upstream.source {cfg.source!r} is a {config.model_type!r} model; the 'hf' upstream supports "
                f"{', '.join(SUPPORTED_MODEL_TYPES)} and whisper"
            )
        if getattr(config, "add_adapter", False):
            raise ConfigError(f"upstream.source {cfg.source!r} has an adapter (add_adapter=true): not supported")
        config.layerdrop = 0.0
        if pretrained:
            model = load_or_config_error(AutoModel.from_pretrained, source, config=config, dtype=torch.float32)
        else:
            model = AutoModel.from_config(config, dtype=torch.float32)
        return cls(model, cls._load_feature_extractor(source, config), source=source,
                   pad_multiple_s=cfg.pad_multiple_s)

    @staticmethod
    def _load_feature_extractor(source: str, config) -> Wav2Vec2FeatureExtractor:
        try:
            extractor = AutoFeatureExtractor.from_pretrained(source)
        except OSError:
            extractor = default_preprocessing(config)
            logger.warning(
                "%s has no preprocessor_config.json; assuming do_normalize=%s, return_attention_mask=%s",
                source, extractor.do_normalize, extractor.return_attention_mask,
            )
        if extractor.sampling_rate != SAMPLE_RATE:
            raise ConfigError(
                f"{source}: preprocessor_config.json has sampling_rate={extractor.sampling_rate}, "
                f"expected {SAMPLE_RATE}"
            )
        return extractor

    def forward(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor, texts: list[str] | None = None
    ) -> UpstreamOutput:
        wav_lens = check_batch(wavs, wav_lens)
        input_lens = wav_lens.clamp(min=self.min_samples)  # [B] samples the model reads
        width = self.padded_width(int(input_lens.max()), wavs.device)
        if wavs.shape[1] < width:
            wavs = torch.nn.functional.pad(wavs, (0, width - wavs.shape[1]))
        wavs = wavs[:, :width].float() * length_mask(wav_lens, width)  # padding is exactly zero
        if self.do_normalize:
            wavs = zero_mean_unit_var(wavs, wav_lens)
        frame_lens = self.model._get_feat_extract_output_lengths(input_lens).long()
        if self.batched:
            hidden = self._encode(wavs, length_mask(input_lens, width).long())
        else:
            hidden = self._encode_unpadded(wavs, input_lens)
        return UpstreamOutput(hidden, frame_lens)

    def padded_width(self, longest: int, device: torch.device) -> int:
        """The width (samples) a batch runs at whose longest clip, clamped to the receptive field, has `longest`
        samples: rounded up to a multiple of pad_multiple_s on an accelerator (masked like any padding: the
        real frames do not change); not on a CPU, where there are no first-time shape costs to save."""
        if not self.pad_multiple or torch.device(device).type == "cpu":
            return longest
        return -(-longest // self.pad_multiple) * self.pad_multiple

    def _encode(self, wavs: torch.Tensor, attention_mask: torch.Tensor | None) -> list[torch.Tensor]:
        """wavs [B, S] -> (num_layers) x [B, T, D]."""
        out = self.model(wavs, attention_mask=attention_mask, output_hidden_states=True)
        hidden = list(out.hidden_states)
        # Pre-LN ("stable layer norm": the large models) encoders apply their final LayerNorm after the last
        # layer, and HF's hidden_states[-1] is taken before it: the last layer is the model's real output,
        # and the final norm must be in the graph (else it never trains and DDP finds an unused parameter).
        hidden[-1] = out.last_hidden_state
        return hidden

    def _encode_unpadded(self, wavs: torch.Tensor, input_lens: torch.Tensor) -> list[torch.Tensor]:
        """Each length group alone, unpadded and without a mask; re-padded to [B, T, D] per layer."""
        per_utterance: list[list[torch.Tensor] | None] = [None] * wavs.shape[0]
        for length in input_lens.unique().tolist():
            rows = (input_lens == length).nonzero().flatten()
            hidden = self._encode(wavs[rows, :length], None)
            for i, row in enumerate(rows.tolist()):
                per_utterance[row] = [layer[i] for layer in hidden]
        return repad(per_utterance)

    def feature_encoder_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.model.feature_extractor.parameters())

    def lora_root(self) -> tuple[torch.nn.Module, int]:
        return self.model, self.model.config.num_hidden_layers

    def modules_after_blocks(self) -> list[torch.nn.Module]:
        # pre-LN ("stable layer norm") encoders apply encoder.layer_norm after the top block (see _encode); post-LN
        # ones apply it to the blocks' input, below them
        return [self.model.encoder.layer_norm] if getattr(self.model.config, "do_stable_layer_norm", False) else []

    def freeze_feature_encoder(self) -> None:
        # The bare encoders (HubertModel, ...) lack the task heads' freeze_feature_encoder(); the CNN's own
        # _freeze_parameters() exists on all four families and also tells HF the CNN needs no gradient.
        self.model.feature_extractor._freeze_parameters()

    def save_config_files(self, directory) -> None:
        self.model.config.save_pretrained(directory)
        self.feature_extractor.save_pretrained(directory)

    def exportable(self, key: str) -> HFExport:
        return HFExport(self)


class HFExport(torch.nn.Module):
    """HFSpeechUpstream's export twin (Upstream.exportable): wavs [B, S] zero-padded, wav_lens [B] ->
    (hidden: num_layers x [B, T, D], frame_lens [B]). The input is padded by one receptive field of zeros (so
    every utterance, even one shorter than 25 ms, has its 400 samples) and normalised over its real samples.
    A `batched` upstream (layer-norm CNN + attention mask) runs the padded batch with the mask, padding invariant
    like the PyTorch model. The others run in PyTorch one utterance at a time, unpadded (see the module
    docstring); a graph cannot loop over utterances of different lengths, so their twin reads the whole padded
    width: exact for a batch of one (or of equal lengths), S >= 400 samples, and `padding_invariant` is False.
    The encoder call itself is the upstream's own `_encode` (one place decides which hidden states are the layers).
    """

    def __init__(self, upstream: HFSpeechUpstream):
        super().__init__()
        self.upstream = upstream
        self.padding_invariant = upstream.batched

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor):
        upstream = self.upstream
        if self.padding_invariant:  # one receptive field of zeros: every clamped length fits, whatever the batch
            wavs = torch.nn.functional.pad(wavs, (0, upstream.min_samples))
        input_lens = wav_lens.clamp(min=upstream.min_samples)
        if upstream.do_normalize:
            wavs = zero_mean_unit_var(wavs, wav_lens)
        attention_mask = length_mask(input_lens, wavs.shape[1]).long() if self.padding_invariant else None
        frame_lens = upstream.model._get_feat_extract_output_lengths(input_lens).long()
        return upstream._encode(wavs, attention_mask), frame_lens
