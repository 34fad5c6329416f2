"""Whisper's encoder as an upstream (config key "whisper"; "hf" with a Whisper source lands here too).

Input: log-mel features from transformers' WhisperFeatureExtractor (the checkpoint's own
preprocessor_config.json, or its defaults when absent). Whisper only ever saw 30 s windows
(3000 mel frames -> 1500 encoder frames, 50 Hz), so inputs are shaped to that:

- whisper_input="pad" (default): each clip is zero-padded to 30 s exactly as Whisper was trained (the
  extractor pads the samples, then computes the log-mel of the whole window), the encoder runs on the
  full window, and only the real frames are kept. Same numbers as a direct transformers call.
- whisper_input="crop": the encoder runs on the real mel frames only, with the positional embedding
  sliced to match and padded frames masked out of attention. Cheaper for short clips; outputs differ
  from "pad" because attention no longer sees the padded tail of the window.

Clips longer than one window are cut into consecutive 30 s chunks, each encoded on its own as above,
and the chunks' frames are concatenated (no context crosses a chunk boundary).

An output frame counts as real when the centre of its receptive field is a real sample: mel frame i is
centred on sample 160 i, encoder frame j on mel frame 2 j, so frame_lens = ceil(samples / 320) (at
least 1), also when summed over chunks, since a window holds a whole number (1500) of 320-sample steps.

Loading follows ../shared/models/whisper-*-encoder/README.md: `WhisperEncoder.from_pretrained(source,
dtype=float32, key_mapping={r"^(model\\.)?encoder\\.": ""})`, the same call for encoder-only folders
(keys `encoder.*`) and full hub checkpoints (keys `model.encoder.*`, decoder keys ignored). A checkpoint
whose encoder weights are not all found raises ConfigError instead of silently using random weights.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F
from transformers import AutoConfig, WhisperFeatureExtractor

from ..errors import ConfigError
from .audio import check_batch, repad, sample_mask
from .base import UPSTREAMS, Upstream, UpstreamConfig, UpstreamOutput
from .presets import load_or_config_error, resolve_source

SAMPLE_RATE = 16000
INPUT_MODES = ("pad", "crop")
ENCODER_KEY_MAPPING = {r"^(model\.)?encoder\.": ""}


@UPSTREAMS.register("whisper")
class WhisperUpstream(Upstream):
    """wavs [B, S] 16 kHz -> hidden: (encoder_layers + 1) x [B, T, D] (conv + positions first, the last
    after the final layer norm, as HF returns them), frame_lens [B] = ceil(S / 320); 50 Hz."""

    def __init__(self, encoder, feature_extractor: WhisperFeatureExtractor, input_mode: str = "pad"):
        super().__init__()
        if input_mode not in INPUT_MODES:
            raise ConfigError(f"upstream.whisper_input={input_mode!r}: expected one of {', '.join(INPUT_MODES)}")
        config = encoder.config
        # Whisper's positions are fixed sinusoids; HF freezes them in __init__ but from_pretrained
        # hands them back trainable, so we freeze them again (under every freeze policy)
        encoder.embed_positions.requires_grad_(False)
        self.encoder = encoder
        self.feature_extractor = feature_extractor
        self.input_mode = input_mode
        conv_stride = encoder.conv1.stride[0] * encoder.conv2.stride[0]
        if feature_extractor.nb_max_frames != config.max_source_positions * conv_stride:
            raise ConfigError(
                f"Whisper preprocessor window ({feature_extractor.nb_max_frames} mel frames) does not match the "
                f"encoder's {config.max_source_positions} positions x stride {conv_stride}"
            )
        if feature_extractor.sampling_rate != SAMPLE_RATE:
            raise ConfigError(f"Whisper preprocessor sampling_rate={feature_extractor.sampling_rate}, expected 16000")
        self.window_samples = feature_extractor.n_samples  # 480000 for 30 s
        self.mel_hop = feature_extractor.hop_length  # 160 samples
        self.samples_per_frame = self.mel_hop * conv_stride  # 320 samples
        self.num_layers = config.encoder_layers + 1
        self.hidden_size = config.d_model
        self.frame_rate = SAMPLE_RATE / self.samples_per_frame

    @classmethod
    def from_config(cls, cfg: UpstreamConfig, pretrained: bool = True) -> "WhisperUpstream":
        source = resolve_source(cfg.source)
        config = load_or_config_error(AutoConfig.from_pretrained, source)
        if config.model_type != "whisper":
            raise ConfigError(f"upstream.source {cfg.source!r} is a {config.model_type!r} model, not whisper")
        config.encoder_layerdrop = 0.0  # why: see hf.py (layer-drop vs layer selection)
        # imported here: the Whisper modeling module takes seconds to import, most runs never need it
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        if pretrained:
            encoder, info = load_or_config_error(
                WhisperEncoder.from_pretrained, source, config=config, dtype=torch.float32,
                key_mapping=ENCODER_KEY_MAPPING, output_loading_info=True,
            )
            if info["missing_keys"]:
                raise ConfigError(
                    f"upstream.source {cfg.source!r}: Whisper encoder weights missing from the checkpoint: "
                    f"{sorted(info['missing_keys'])[:5]} ..."
                )
        else:
            encoder = WhisperEncoder(config).float()
        try:
            extractor = WhisperFeatureExtractor.from_pretrained(source)
        except OSError:  # no preprocessor_config.json: Whisper's own defaults for this mel size
            extractor = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
        return cls(encoder, extractor, cfg.whisper_input)

    def frame_lens_for(self, wav_lens: torch.Tensor) -> torch.Tensor:
        """[B] samples -> [B] real encoder frames: ceil(S / 320), at least 1."""
        step = self.samples_per_frame
        return torch.div(wav_lens.clamp(min=1) + step - 1, step, rounding_mode="floor")

    def log_mel(self, chunks: list[torch.Tensor], device: torch.device) -> torch.Tensor:
        """list of [S_i] (S_i <= 30 s) -> log-mel [N, n_mels, 3000], each padded to the window first."""
        arrays = [chunk.detach().float().cpu().numpy() for chunk in chunks]
        features = self.feature_extractor(
            arrays, sampling_rate=SAMPLE_RATE, return_tensors="pt",
            device="cpu" if device.type == "cpu" else str(device),
        ).input_features
        return features.to(device)

    def forward(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor, texts: list[str] | None = None
    ) -> UpstreamOutput:
        wav_lens = check_batch(wavs, wav_lens)
        # cut every clip into 30 s chunks; chunk k of clip b covers samples [k W, min((k+1) W, S_b))
        chunks, owners = [], []
        for b, length in enumerate(wav_lens.clamp(min=1).tolist()):
            for start in range(0, length, self.window_samples):
                chunks.append(wavs[b, start : min(start + self.window_samples, length)])
                owners.append(b)
        chunk_lens = torch.tensor([c.shape[0] for c in chunks], device=wavs.device)
        mel = self.log_mel(chunks, wavs.device)  # [N, n_mels, 3000]
        chunk_frames = self.frame_lens_for(chunk_lens)
        if self.input_mode == "pad":
            hidden = self._encode_window(mel)
        else:
            mel_lens = torch.div(chunk_lens + self.mel_hop - 1, self.mel_hop, rounding_mode="floor")
            hidden = self._encode_cropped(mel, mel_lens, chunk_frames)
        per_utterance: list[list[list[torch.Tensor]]] = [[] for _ in range(wavs.shape[0])]
        for n, (b, frames) in enumerate(zip(owners, chunk_frames.tolist())):
            per_utterance[b].append([layer[n, :frames] for layer in hidden])
        joined = [[torch.cat(parts, dim=0) for parts in zip(*chunk_list)] for chunk_list in per_utterance]
        return UpstreamOutput(repad(joined), self.frame_lens_for(wav_lens))

    def _encode_window(self, mel: torch.Tensor) -> list[torch.Tensor]:
        """mel [N, n_mels, 3000] -> (num_layers) x [N, 1500, D]: the stock HF encoder call."""
        return list(self.encoder(mel, output_hidden_states=True).hidden_states)

    def _encode_cropped(
        self, mel: torch.Tensor, mel_lens: torch.Tensor, frame_lens: torch.Tensor
    ) -> list[torch.Tensor]:
        """The HF WhisperEncoder forward, on the first max(mel_lens) frames only.

        mel [N, n_mels, 3000], mel_lens [N], frame_lens [N] -> (num_layers) x [N, T, D], T = max frame_lens.
        Padded mel / conv frames are zeroed before each conv (as the conv's own zero padding would be for a
        clip alone) and masked out of attention, so a clip gives the same frames alone or in a batch.
        """
        enc = self.encoder
        width = int(mel_lens.max())
        mel_mask = sample_mask(mel_lens, width)[:, None, :].to(mel.dtype)  # [N, 1, M]
        x = F.gelu(enc.conv1(mel[:, :, :width] * mel_mask)) * mel_mask
        x = F.gelu(enc.conv2(x)).permute(0, 2, 1)  # [N, T, D]
        frames = x.shape[1]
        x = x + enc.embed_positions.weight[:frames]
        x = F.dropout(x, p=enc.dropout, training=self.training)
        keep = sample_mask(frame_lens, frames)  # [N, T]
        additive = torch.zeros(keep.shape, dtype=x.dtype, device=x.device)
        additive = additive.masked_fill(~keep, torch.finfo(x.dtype).min)[:, None, None, :]  # [N, 1, 1, T]
        hidden = [x]
        for layer in enc.layers:
            x = layer(x, additive)
            hidden.append(x)
        hidden[-1] = enc.layer_norm(x)
        return hidden

    def feature_encoder_parameters(self) -> list[torch.nn.Parameter]:
        # the two input convolutions; the sinusoidal positional embedding is always frozen (__init__)
        return [*self.encoder.conv1.parameters(), *self.encoder.conv2.parameters()]

    def save_config_files(self, directory) -> None:
        self.encoder.config.save_pretrained(directory)
        self.feature_extractor.save_pretrained(directory)

