"""A pure-torch twin of the Kaldi log-mel filterbank in fbank.py, for graphs that must be traced (ONNX export).

kaldi-native-fbank runs in C++ on numpy arrays, which no exporter can see into. This module computes the same
features with tensor ops only, for a whole padded batch at once, with the settings of `fbank_options()`:
25 ms povey window, 10 ms hop (snip_edges), DC removal, pre-emphasis 0.97, no dither, 512-point power
spectrum, 80 triangular mel bins from 20 Hz to Nyquist (Kaldi's MelBanks), natural log with Kaldi's floor
(float32 machine epsilon). Samples are scaled to the int16 range first, as in fbank.py.

Why it is one matrix product: per frame, pre-emphasis, the window and the DFT are all linear in the
samples, so they fold into two fixed matrices [400, 257] (real and imaginary part), computed once in
float64 (DC removal, linear as well, is a separate mean subtraction: see forward). A frame's power spectrum is then (x A)^2 + (x B)^2 and the mel energies a product with the
mel matrix [257, 80]. No FFT op is needed, so every ONNX opset and runtime can run it.

Agreement with kaldi-native-fbank (tests/upstream/test_fbank_torch.py): ~1e-5 for 99 % of the values, up to
~2e-3 in the lowest mel bins of some frames, where pre-emphasis leaves ~1e-8 of the frame's energy and Kaldi's
float32 FFT loses digits (a float64 run of this module lands just as far from Kaldi there).

Padding: row b's frames t < fbank_frame_lens(wav_lens)[b] see only real samples (a frame never reaches past
its own 400 samples), so they equal the unpadded row's; later frames are padding.
Rows shorter than one window are treated as zero-padded to 400 samples, exactly as fbank.py does.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .fbank import HOP, NUM_MEL_BINS, SAMPLE_RATE, WINDOW

PADDED_WINDOW = 512  # Kaldi rounds the 400-sample window up to a power of two for the FFT
PREEMPHASIS = 0.97
LOW_FREQ = 20.0
INT16_SCALE = 32768.0
LOG_FLOOR = float(np.finfo(np.float32).eps)  # Kaldi floors mel energies at FLT_EPSILON before the log


def kaldi_mel(freq: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(freq, dtype=np.float64) / 700.0)


def mel_matrix(num_bins: int = NUM_MEL_BINS, low_freq: float = LOW_FREQ, high_freq: float | None = None) -> np.ndarray:
    """Kaldi's MelBanks as a matrix [PADDED_WINDOW // 2 + 1, num_bins] (the Nyquist row is zero: Kaldi's
    banks span FFT bins 0..255 only). Triangles are linear in mel between equally spaced mel edges."""
    high_freq = SAMPLE_RATE / 2 if high_freq is None else high_freq
    num_fft_bins = PADDED_WINDOW // 2
    mel_low, mel_high = kaldi_mel(low_freq), kaldi_mel(high_freq)
    delta = (mel_high - mel_low) / (num_bins + 1)
    bin_mels = kaldi_mel(np.arange(num_fft_bins) * SAMPLE_RATE / PADDED_WINDOW)  # [256]
    left = mel_low + delta * np.arange(num_bins)[None, :]  # [1, num_bins]
    center, right = left + delta, left + 2 * delta
    rising = (bin_mels[:, None] - left) / (center - left)
    falling = (right - bin_mels[:, None]) / (right - center)
    weights = np.where(bin_mels[:, None] <= center, rising, falling)
    inside = (bin_mels[:, None] > left) & (bin_mels[:, None] < right)
    banks = np.where(inside, weights, 0.0)
    return np.concatenate([banks, np.zeros((1, num_bins))], axis=0)  # [257, num_bins]


def frame_transform(window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """(A, B), each [window, PADDED_WINDOW // 2 + 1]: real and imaginary DFT of a (DC-free) frame after
    pre-emphasis and the povey window, as one linear map (frame [window] @ A = Re X)."""
    n = np.arange(window)
    # Kaldi: x[i] -= 0.97 x[i-1] for i > 0, and x[0] -= 0.97 x[0]
    preemphasis = np.eye(window) - PREEMPHASIS * np.eye(window, k=-1)
    preemphasis[0, 0] = 1.0 - PREEMPHASIS
    povey = (0.5 - 0.5 * np.cos(2 * math.pi * n / (window - 1))) ** 0.85
    linear = np.diag(povey) @ preemphasis  # frame -> windowed frame (column convention)
    k = np.arange(PADDED_WINDOW // 2 + 1)
    angle = 2 * math.pi * np.outer(n, k) / PADDED_WINDOW  # [window, 257]; samples past `window` are zero
    return linear.T @ np.cos(angle), -(linear.T @ np.sin(angle))


class TorchFbank(nn.Module):
    """wavs [B, S] float in [-1, 1] at 16 kHz (zero-padded) -> log-mel [B, T, num_mel_bins], T = S // 160 + 1.

    Of row b's T frames the first fbank_frame_lens(wav_lens)[b] are Kaldi's (see the module docstring); the
    rest are padding. No parameters; the matrices are non-persistent buffers (never in a state dict)."""

    def __init__(self, num_mel_bins: int = NUM_MEL_BINS):
        super().__init__()
        real, imag = frame_transform()
        self.register_buffer("spectrum", torch.from_numpy(np.concatenate([real, imag], 1)).float(), persistent=False)
        self.register_buffer("mel", torch.from_numpy(mel_matrix(num_mel_bins)).float(), persistent=False)
        # frame t, tap i reads sample 160 t + i (snip_edges)
        self.register_buffer("taps", torch.arange(WINDOW), persistent=False)

    def forward(self, wavs: torch.Tensor) -> torch.Tensor:
        wavs = wavs.to(self.spectrum.dtype) * INT16_SCALE
        # One window of zeros at the end: a row shorter than a window still gets its frame (fbank.py pads it
        # the same way), and the frame count follows the padded width alone (no max(), no data-dependent shape).
        wavs = nn.functional.pad(wavs, (0, WINDOW))
        num_frames = (wavs.shape[1] - WINDOW) // HOP + 1
        starts = torch.arange(num_frames, device=wavs.device) * HOP
        frames = wavs[:, starts[:, None] + self.taps[None, :]]  # [B, T, 400]
        # DC removal is linear too, but done apart: a constant frame must become exact zeros (the log floor),
        # which rounding inside a folded matrix product would miss
        frames = frames - frames.mean(dim=-1, keepdim=True)
        spectrum = frames @ self.spectrum  # [B, T, 2 * 257]
        bins = self.mel.shape[0]
        power = spectrum[..., :bins].square() + spectrum[..., bins:].square()  # [B, T, 257]
        return torch.log(torch.clamp(power @ self.mel, min=LOG_FLOOR))
