"""Whisper's export twin: the log-mel front end in torch operators, 30 s chunks and both input modes with every
shape taken from the input's shape (whisper.py is the model; this is the same computation as a graph, what
`WhisperUpstream.exportable` gives ONNX export).

    WhisperExport(upstream)(wavs [B, S] zero-padded, wav_lens [B]) -> (hidden: num_layers x [B, T, D], frame_lens [B])
    T = ceil(S / 320); frames past frame_lens = ceil(max(wav_lens, 1) / 320) are zero, as WhisperUpstream's.

The log-mel (WhisperLogMel) is WhisperFeatureExtractor's, which WhisperUpstream calls: each 30 s chunk padded
with zeros to the window, reflect-padded by n_fft / 2 at both ends (torch.stft's center=True), a periodic Hann
window, |STFT|^2 (the last frame dropped), the extractor's own mel filters, log10 of at least 1e-10, floored at
(the chunk's maximum - 8), then (x + 4) / 4. The STFT is one strided convolution whose kernels are the
windowed cosines and sines of the DFT (ONNX Runtime has no fast STFT for n_fft = 400, and a convolution is a
matrix product it runs well). It matches the extractor's FFT within float32 rounding (tests/export/
test_whisper_export.py compares them on real speech).

Chunks: a row of S samples is cut into K = ceil(S / W) windows (W = 30 s) laid out as K rows of one batch, so
that the chunks of a clip longer than 30 s are encoded on their own, as WhisperUpstream does; the encoder's
frames of the K rows are laid end to end again (every chunk but a clip's last is full: 1500 frames).

- pad: the stock encoder call on each full 3000-frame window; the real frames are kept.
- crop: the log-mel is computed for the frames the batch's widest chunk needs (the window's maximum for the
  floor comes from them: the frames left out read only zeros, whose log-mel is the floor of -10 itself), and
  the encoder runs on those, padded frames masked as in WhisperUpstream.encode_cropped_mel.

Traced with a batch longer than one window: a trace with one chunk per row would specialise K to 1.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from ..util.masks import length_mask

LOG_FLOOR = 1e-10  # WhisperFeatureExtractor: log10 of at least this
DYNAMIC_RANGE = 8.0  # log10 units kept below each chunk's maximum


class WhisperLogMel(nn.Module):
    """chunks [N, W] (each a 30 s window, zero past its real samples), frames M (<= W / hop) ->
    log-mel [N, n_mels, M]: the window's first M frames of WhisperFeatureExtractor's features.
    key: the config key of the upstream, for errors."""

    def __init__(self, extractor, key: str = "upstream"):
        super().__init__()
        where = f"{key}: its preprocessor_config.json has"
        if getattr(extractor, "dither", 0.0):
            raise ConfigError(f"{where} dither={extractor.dither}, random noise added to every input, which a graph "
                              "does not reproduce; ONNX export needs dither 0.0")
        if getattr(extractor, "padding_value", 0.0) != 0.0:
            raise ConfigError(f"{where} padding_value={extractor.padding_value}; ONNX export pads windows with zeros, "
                              "as Whisper was trained: expected 0.0")
        self.n_fft, self.hop = int(extractor.n_fft), int(extractor.hop_length)
        self.window_frames = int(extractor.nb_max_frames)  # 3000: the STFT's last frame is dropped
        n = torch.arange(self.n_fft, dtype=torch.float64)
        bins = torch.arange(self.n_fft // 2 + 1, dtype=torch.float64)
        angle = 2 * math.pi * bins[:, None] * n[None, :] / self.n_fft  # [freqs, n_fft]
        window = torch.hann_window(self.n_fft, periodic=True, dtype=torch.float64)  # torch.stft's in the extractor
        kernels = torch.cat([torch.cos(angle), torch.sin(angle)]) * window  # [2 freqs, n_fft]
        self.register_buffer("dft", kernels.float()[:, None, :], persistent=False)  # conv weight [2 freqs, 1, n_fft]
        filters = torch.as_tensor(extractor.mel_filters, dtype=torch.float32)  # [freqs, n_mels]
        self.register_buffer("mel_filters", filters.T.contiguous(), persistent=False)  # [n_mels, freqs]

    def forward(self, chunks: torch.Tensor, frames) -> torch.Tensor:
        half = self.n_fft // 2
        padded = F.pad(chunks[:, None, :], (half, half), mode="reflect")  # [N, 1, W + n_fft]
        width = (frames - 1) * self.hop + self.n_fft
        spectrum = F.conv1d(padded[:, :, :width], self.dft, stride=self.hop)  # [N, 2 freqs, M]
        real, imaginary = spectrum.chunk(2, dim=1)
        mel = torch.matmul(self.mel_filters, real * real + imaginary * imaginary)  # [N, n_mels, M]
        log_mel = torch.clamp(mel, min=LOG_FLOOR).log10()
        peak = log_mel.amax(dim=(1, 2), keepdim=True)
        return (torch.maximum(log_mel, peak - DYNAMIC_RANGE) + 4.0) / 4.0


class WhisperExport(nn.Module):
    padding_invariant = True  # each chunk is encoded on its own; crop masks padded frames out of attention

    def __init__(self, upstream, key: str = "upstream"):  # upstream: a WhisperUpstream
        super().__init__()
        self.upstream = upstream
        self.log_mel = WhisperLogMel(upstream.feature_extractor, key)
        self.window_samples = upstream.window_samples
        # a trace must see more than one window per row (see the module docstring)
        self.trace_samples = self.window_samples + self.window_samples // 2

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor):
        rows, samples = wavs.shape
        chunks, chunk_lens, chunks_per_row = self._cut(wavs, wav_lens)
        blocks = self.upstream.frozen_blocks or None
        hidden = self._encode(chunks, chunk_lens, samples, blocks)  # layers x [B K, T_c, D]
        frame_lens = self.upstream.frame_lens_for(wav_lens)
        step = self.upstream.samples_per_frame
        steps = torch.sym_min((samples + step - 1) // step, chunks_per_row * hidden[0].shape[1])
        real = length_mask(frame_lens, steps).unsqueeze(-1)  # [B, T, 1]
        zero = torch.zeros((), dtype=hidden[0].dtype)
        # each row's chunks end to end; T = ceil(S / 320) frames, zero past the row's real frames (as repad)
        hidden = [torch.where(real, layer.reshape(rows, -1, layer.shape[-1])[:, :steps], zero) for layer in hidden]
        if blocks:  # a frozen bottom: the top blocks see the clip's real frames, as WhisperUpstream.encode_top
            hidden = self.upstream._run_blocks(hidden, frame_lens, self.upstream.encoder.layers[blocks:], True)
        return hidden, frame_lens

    def _cut(self, wavs: torch.Tensor, wav_lens: torch.Tensor):
        """wavs [B, S] -> (chunks [B K, W], chunk_lens [B K], K = ceil(S / W)): row b's chunk k is chunks[b K + k],
        its real samples as WhisperUpstream cuts them (a clip has at least one; 0 for a chunk past its end)."""
        window = self.window_samples
        samples = wavs.shape[1]
        chunks_per_row = (samples + window - 1) // window
        chunks = F.pad(wavs, (0, chunks_per_row * window - samples)).reshape(-1, window)
        starts = torch.arange(chunks_per_row, device=wavs.device) * window
        chunk_lens = (wav_lens.clamp(min=1)[:, None] - starts[None, :]).clamp(min=0, max=window).reshape(-1)
        return chunks, chunk_lens, chunks_per_row

    def _encode(self, chunks: torch.Tensor, chunk_lens: torch.Tensor, samples, blocks: int | None) -> list:
        """chunks [N, W] -> the upstream's layers (the first blocks + 1 when `blocks`), each [N, T_c, D]:
        T_c = 1500 in pad mode; in crop mode the frames of the widest chunk (at most S samples)."""
        upstream, hop = self.upstream, self.upstream.mel_hop
        if upstream.input_mode == "pad":
            return upstream._encode_window(self.log_mel(chunks, self.log_mel.window_frames), blocks)
        # the frames that read a real sample of the widest chunk: centre within n_fft / 2 of one
        reach = samples + self.log_mel.n_fft // 2
        frames = torch.sym_min((reach + hop - 1) // hop, self.log_mel.window_frames)
        mel_lens = torch.div(chunk_lens + hop - 1, hop, rounding_mode="floor")
        return upstream.encode_cropped_mel(self.log_mel(chunks, frames), mel_lens,
                                           upstream.frame_lens_for(chunk_lens), blocks)
