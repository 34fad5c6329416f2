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

Loading is `WhisperEncoder.from_pretrained(source,
dtype=float32, key_mapping={r"^(model\\.)?encoder\\.": ""})`, the same call for encoder-only folders
(keys `encoder.*`) and full hub checkpoints (keys `model.encoder.*`, decoder keys ignored). A checkpoint
whose encoder weights are not all found raises ConfigError instead of silently using random weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F
from transformers import AutoConfig, WhisperFeatureExtractor

from ..errors import ConfigError
from ..util.masks import length_mask
from .audio import check_batch, repad
from .base import UPSTREAMS, Upstream, UpstreamConfig, UpstreamOutput
from .presets import load_or_config_error, resolve_source
from .whisper_export import WhisperExport

SAMPLE_RATE = 16000
INPUT_MODES = ("pad", "crop")
ENCODER_KEY_MAPPING = {r"^(model\.)?encoder\.": ""}


@dataclass
class WhisperConfig(UpstreamConfig):
    """source: preset name (e.g. "whisper-base"), hub id, or local directory. whisper_input: "pad" (every clip in
    the 30 s window Whisper was trained on, exact, the default) or "crop" (the real frames only; see above)."""

    name: str = "whisper"
    source: str | None = None
    whisper_input: str = "pad"


@UPSTREAMS.register("whisper")
class WhisperUpstream(Upstream):
    """wavs [B, S] 16 kHz -> hidden: (encoder_layers + 1) x [B, T, D] (conv + positions first, the last
    after the final layer norm, as HF returns them), frame_lens [B] = ceil(S / 320); 50 Hz."""

    Config = WhisperConfig

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
    def from_config(cls, cfg: WhisperConfig, pretrained: bool = True) -> "WhisperUpstream":
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
        # outside any autocast (bf16-mixed training): the extractor's torch STFT and mel matmul must run in
        # float32, as Whisper was trained (under a CPU autocast it even fails on a bfloat16 tensor)
        with torch.autocast(device.type, enabled=False):
            features = self.feature_extractor(
                arrays, sampling_rate=SAMPLE_RATE, return_tensors="pt",
                device="cpu" if device.type == "cpu" else str(device),
            ).input_features
        return features.float().to(device)

    def forward(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor, texts: list[str] | None = None
    ) -> UpstreamOutput:
        if self.frozen_blocks:
            return self.encode_top(self.encode_prefix(wavs, wav_lens))
        return self._encode(wavs, wav_lens, blocks=None)

    def _encode(self, wavs: torch.Tensor, wav_lens: torch.Tensor, blocks: int | None) -> UpstreamOutput:
        """The encoder on wavs [B, S]: all of it (blocks None), or its input embedding and first `blocks`
        blocks only (hidden[0..blocks], no final layer norm)."""
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
            hidden = self._encode_window(mel, blocks)
        else:
            mel_lens = torch.div(chunk_lens + self.mel_hop - 1, self.mel_hop, rounding_mode="floor")
            hidden = self._encode_cropped(mel, mel_lens, chunk_frames, blocks)
        per_utterance: list[list[list[torch.Tensor]]] = [[] for _ in range(wavs.shape[0])]
        for n, (b, frames) in enumerate(zip(owners, chunk_frames.tolist())):
            per_utterance[b].append([layer[n, :frames] for layer in hidden])
        joined = [[torch.cat(parts, dim=0) for parts in zip(*chunk_list)] for chunk_list in per_utterance]
        return UpstreamOutput(repad(joined), self.frame_lens_for(wav_lens))

    def _encode_window(self, mel: torch.Tensor, blocks: int | None = None) -> list[torch.Tensor]:
        """mel [N, n_mels, 3000] -> (num_layers) x [N, 1500, D]: the stock HF encoder call; with `blocks`,
        the same computation stopped after that many blocks -> (blocks + 1) x [N, 1500, D]."""
        if blocks is None:
            return list(self.encoder(mel, output_hidden_states=True).hidden_states)
        enc = self.encoder
        x = F.gelu(enc.conv2(F.gelu(enc.conv1(mel)))).permute(0, 2, 1)  # [N, 1500, D]
        x = x + enc.embed_positions.weight
        x = F.dropout(x, p=enc.dropout, training=self.training and not self.frozen_blocks)
        hidden = [x]
        for layer in enc.layers[:blocks]:
            x = layer(x, None)
            hidden.append(x)
        return hidden

    def _encode_cropped(
        self, mel: torch.Tensor, mel_lens: torch.Tensor, frame_lens: torch.Tensor, blocks: int | None = None
    ) -> list[torch.Tensor]:
        """The HF WhisperEncoder forward, on the first max(mel_lens) frames only.

        mel [N, n_mels, 3000], mel_lens [N], frame_lens [N] -> (num_layers) x [N, T, D], T = max frame_lens
        (with `blocks`: the first blocks + 1 layers, no final layer norm). Padded mel / conv frames are zeroed
        before each conv (as the conv's own zero padding would be for a clip alone) and masked out of
        attention, so a clip gives the same frames alone or in a batch.
        """
        return self.encode_cropped_mel(mel[:, :, : int(mel_lens.max())], mel_lens, frame_lens, blocks)

    def encode_cropped_mel(
        self, mel: torch.Tensor, mel_lens: torch.Tensor, frame_lens: torch.Tensor, blocks: int | None = None
    ) -> list[torch.Tensor]:
        """_encode_cropped on mel [N, n_mels, M] already cut to a width M (max mel_lens <= M <= 3000): every
        shape from the tensors', so that the ONNX export (whisper_export.py) runs this very code."""
        enc = self.encoder
        mel_mask = length_mask(mel_lens, mel.shape[2])[:, None, :].to(mel.dtype)  # [N, 1, M]
        x = F.gelu(enc.conv1(mel * mel_mask)) * mel_mask
        x = F.gelu(enc.conv2(x)).permute(0, 2, 1)  # [N, T, D]
        frames = x.shape[1]
        x = x + enc.embed_positions.weight[:frames]
        x = F.dropout(x, p=enc.dropout, training=self.training and not self.frozen_blocks)
        return self._run_blocks([x], frame_lens, enc.layers[:blocks], final_norm=blocks is None)

    def _run_blocks(self, hidden: list, frame_lens: torch.Tensor, layers, final_norm: bool) -> list:
        """hidden[-1] [N, T, D] through `layers`, padded frames masked out of attention; appends each layer's
        output (the last one layer-normed when final_norm, as HF returns it)."""
        x = hidden[-1]
        keep = length_mask(frame_lens, x.shape[1])  # [N, T]
        additive = torch.zeros(keep.shape, dtype=x.dtype, device=x.device)
        additive = additive.masked_fill(~keep, torch.finfo(x.dtype).min)[:, None, None, :]  # [N, 1, 1, T]
        for layer in layers:
            x = layer(x, additive)
            hidden.append(x)
        if final_norm:
            hidden[-1] = self.encoder.layer_norm(x)
        return hidden

    # partial fine-tuning (freeze "bottom:N"; see Upstream): the bottom runs as the input mode says ("pad":
    # in the full 30 s window, real frames kept); the top blocks see the real frames only, padding masked
    # out of attention as in "crop" mode, which also makes an epoch on cached bottom frames cheap (~T real
    # frames per clip, not 1500). Clips longer than 30 s reach the top blocks as one sequence of all chunks.
    def freeze_bottom(self, blocks: int) -> None:
        total = len(self.encoder.layers)
        if not 1 <= blocks < total:
            raise ConfigError(f"upstream.freeze='bottom:{blocks}': this Whisper encoder has {total} blocks, so N must "
                              f"lie in [1, {total - 1}] (at least one block trains)")
        for module in self._bottom_modules(blocks):
            module.requires_grad_(False)
        self.frozen_blocks = blocks
        self.train(self.training)

    def cached_modules(self) -> list[torch.nn.Module]:
        return self._bottom_modules(self.frozen_blocks) if self.frozen_blocks else [self]

    def lora_root(self) -> tuple[torch.nn.Module, int]:
        return self.encoder, len(self.encoder.layers)

    def modules_after_blocks(self) -> list[torch.nn.Module]:
        return [self.encoder.layer_norm]

    def _bottom_modules(self, blocks: int) -> list[torch.nn.Module]:
        enc = self.encoder
        return [enc.conv1, enc.conv2, enc.embed_positions, *enc.layers[:blocks]]

    def train(self, mode: bool = True) -> "WhisperUpstream":
        super().train(mode)
        for module in self._bottom_modules(self.frozen_blocks) if self.frozen_blocks else ():
            module.train(False)  # the frozen bottom never runs dropout, so its frames can be cached
        return self

    def encode_prefix(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> UpstreamOutput:
        """-> hidden[0..N] [B, T, D] (N = frozen_blocks), frame_lens [B]; no gradient (it is frozen)."""
        with torch.no_grad():
            return self._encode(wavs, wav_lens, blocks=self.frozen_blocks)

    def encode_top(self, prefix: UpstreamOutput) -> UpstreamOutput:
        """prefix.hidden[N] [B, T, D] through blocks N+1.. and the final layer norm -> num_layers layers."""
        blocks = self.frozen_blocks
        if len(prefix.hidden) != blocks + 1 or prefix.hidden[blocks] is None:
            raise ValueError(f"encode_top needs hidden[0..{blocks}] with layer {blocks} present")
        hidden = self._run_blocks(list(prefix.hidden), prefix.frame_lens, self.encoder.layers[blocks:], True)
        return UpstreamOutput(hidden, prefix.frame_lens)

    def feature_encoder_parameters(self) -> list[torch.nn.Parameter]:
        # the two input convolutions; the sinusoidal positional embedding is always frozen (__init__)
        return [*self.encoder.conv1.parameters(), *self.encoder.conv2.parameters()]

    def save_config_files(self, directory) -> None:
        self.encoder.config.save_pretrained(directory)
        self.feature_extractor.save_pretrained(directory)

    def exportable(self, key: str) -> WhisperExport:
        return WhisperExport(self, key)

