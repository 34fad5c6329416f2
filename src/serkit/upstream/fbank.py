"""80-dim Kaldi log-mel filterbank as an upstream (config key "fbank"): no trainable weights, 100 Hz.

One batched torch implementation serves training, inference and the ONNX graph (`exportable` returns the
upstream itself: every shape follows the input's shape). It computes Kaldi's compute-fbank-feats with dither 0
(deterministic): samples scaled to the int16 range, 25 ms povey window, 10 ms hop (snip_edges), DC removal,
pre-emphasis 0.97, 512-point power spectrum, 80 triangular mel bins from 20 Hz to Nyquist, natural log floored
at FLT_EPSILON. kaldi-native-fbank is the test oracle (tests/upstream/test_fbank.py).

Why it follows Kaldi's float32 arithmetic step by step instead of folding the linear steps into one matrix:
after DC removal and pre-emphasis the lowest mel bins hold ~1e-8 of a frame's energy, so Kaldi's own float32
rounding of the mean and of x[i] - 0.97 x[i-1] moves them by up to ~1e-2 in log from the exact filterbank. Doing
those steps as the same float32 element-wise operations reproduces that rounding; what is left is kissfft's
float32 FFT against our float64 DFT (a matrix product: any ONNX opset and runtime runs it; float64 also keeps it
out of bf16/fp16 autocast, as are the mel energies).

Frames: frame_lens = floor((S - 400) / 160) + 1; an utterance shorter than one window (S < 400 samples) is
zero-padded to 400 samples and gives one frame. Row b's frames t < frame_lens[b] read only its real samples
(a frame never reaches past its own 400), so they do not depend on the batch's padding.
cmn=True subtracts each utterance's mean over its real frames (cepstral mean normalisation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ..util.masks import length_mask
from .audio import check_batch
from .base import UPSTREAMS, Upstream, UpstreamConfig, UpstreamOutput

SAMPLE_RATE = 16000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
PADDED_WINDOW = 512  # Kaldi rounds the window up to a power of two for the FFT
NUM_MEL_BINS = 80
PREEMPHASIS = 0.97
LOW_FREQ = 20.0
INT16_SCALE = 32768.0  # Kaldi (and every Kaldi-compatible recipe) reads samples as int16 values
LOG_FLOOR = float(np.finfo(np.float32).eps)


@dataclass
class FbankConfig(UpstreamConfig):
    name: str = "fbank"
    cmn: bool = False


def mel_matrix(num_bins: int = NUM_MEL_BINS) -> np.ndarray:
    """Kaldi's MelBanks as a float32 matrix [PADDED_WINDOW // 2 + 1, num_bins], computed in float32 as Kaldi
    does (its triangles' edges round there). The Nyquist row is zero: Kaldi's banks span FFT bins 0..255."""
    f32 = np.float32

    def mel(freq):  # Kaldi's MelScale: 1127 ln(1 + f / 700), in float
        return f32(1127.0) * np.log(f32(1.0) + freq / f32(700.0))

    mel_low, mel_high = mel(f32(LOW_FREQ)), mel(f32(SAMPLE_RATE / 2))
    delta = (mel_high - mel_low) / f32(num_bins + 1)
    bins = np.arange(num_bins, dtype=f32)[None, :]
    left, center, right = mel_low + bins * delta, mel_low + (bins + 1) * delta, mel_low + (bins + 2) * delta
    fft_mels = mel(f32(SAMPLE_RATE / PADDED_WINDOW) * np.arange(PADDED_WINDOW // 2, dtype=f32))[:, None]  # [256, 1]
    weights = np.where(fft_mels <= center, (fft_mels - left) / (center - left), (right - fft_mels) / (right - center))
    banks = np.where((fft_mels > left) & (fft_mels < right), weights, f32(0.0))
    return np.concatenate([banks, np.zeros((1, num_bins), f32)]).astype(f32)  # [257, num_bins]


def kaldi_reference(samples: np.ndarray, num_bins: int = NUM_MEL_BINS) -> np.ndarray:
    """The oracle FbankUpstream is measured against (tests, benchmarks/fbank_speed.py): kaldi-native-fbank with
    the same settings, samples [S] in [-1, 1] at 16 kHz -> log-mel [T, num_bins] float32. Needs the `test` extra."""
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.window_type = "povey"
    opts.mel_opts.num_bins = num_bins
    opts.mel_opts.low_freq = LOW_FREQ
    opts.mel_opts.high_freq = 0.0
    opts.use_energy = False
    computer = knf.OnlineFbank(opts)
    computer.accept_waveform(SAMPLE_RATE, (np.asarray(samples, dtype=np.float32) * INT16_SCALE).tolist())
    computer.input_finished()
    return np.stack([computer.get_frame(i) for i in range(computer.num_frames_ready)]).astype(np.float32)


def fbank_frame_lens(wav_lens: torch.Tensor) -> torch.Tensor:
    """[B] samples -> [B] Kaldi frames (snip_edges; at least 1)."""
    return torch.div(wav_lens.clamp(min=WINDOW) - WINDOW, HOP, rounding_mode="floor") + 1


@UPSTREAMS.register("fbank")
class FbankUpstream(Upstream):
    """wavs [B, S] float in [-1, 1] at 16 kHz -> hidden: [feats [B, T, 80]] (one layer),
    frame_lens [B]; T = floor((max(S, 400) - 400) / 160) + 1; 100 Hz. No parameters: the constant matrices
    are non-persistent buffers (never in a state dict)."""

    Config = FbankConfig
    feature_version: ClassVar[int] = 2  # 2: the torch filterbank (1: kaldi-native-fbank per utterance)
    padding_invariant: ClassVar[bool] = True  # a batch of any lengths may share one ONNX call

    def __init__(self, cmn: bool = False, num_mel_bins: int = NUM_MEL_BINS):
        super().__init__()
        self.cmn = cmn
        self.num_layers = 1
        self.hidden_size = num_mel_bins
        self.frame_rate = SAMPLE_RATE / HOP
        n = np.arange(WINDOW)
        povey = (0.5 - 0.5 * np.cos(2 * math.pi * n / (WINDOW - 1))) ** 0.85  # double, stored as float (Kaldi)
        angle = 2 * math.pi * np.outer(n, np.arange(PADDED_WINDOW // 2 + 1)) / PADDED_WINDOW  # [400, 257]
        self.register_buffer("window", torch.from_numpy(povey).float(), persistent=False)  # [400]
        self.register_buffer("dft", torch.from_numpy(np.concatenate([np.cos(angle), -np.sin(angle)], 1)),
                             persistent=False)  # [400, 514] float64: real and imaginary parts
        self.register_buffer("mel", torch.from_numpy(mel_matrix(num_mel_bins)).double(), persistent=False)
        self.register_buffer("taps", torch.arange(WINDOW), persistent=False)  # frame t, tap i: sample 160 t + i
        self._constants = {name: getattr(self, name).clone() for name in ("window", "dft", "mel")}  # see _apply

    def _apply(self, fn, recurse=True):
        # .to(bfloat16) (Lightning's "bf16-true") must move the constants, never round them: the features would
        # then differ from the same bundle's at inference
        super()._apply(fn, recurse)
        device = self.taps.device  # an integer buffer: moved, never cast
        for name, constant in self._constants.items():
            setattr(self, name, constant.to(device))
        return self

    @classmethod
    def from_config(cls, cfg: FbankConfig, pretrained: bool = True) -> "FbankUpstream":
        return cls(cmn=cfg.cmn)

    def exportable(self, key: str) -> nn.Module:
        return self  # forward takes every shape from the input's shape

    def log_mel(self, wavs: torch.Tensor) -> torch.Tensor:
        """wavs [B, S] zero-padded -> log-mel [B, T, num_mel_bins], T = floor((max(S, 400) - 400) / 160) + 1."""
        samples = wavs.float() * INT16_SCALE
        width = samples.shape[1]  # frames from the shape alone; the TorchScript exporter traces it as a tensor
        width = torch.clamp(width, min=WINDOW) if torch.jit.is_tracing() else torch.sym_max(width, WINDOW)
        num_frames = (width - WINDOW) // HOP + 1
        # one window of zeros: a row shorter than a window is zero-padded to one, as its frame needs
        samples = nn.functional.pad(samples, (0, WINDOW))
        starts = torch.arange(num_frames, device=wavs.device) * HOP
        frames = samples[:, starts[:, None] + self.taps]  # [B, T, 400]
        # Kaldi's float32 steps, in its order (see the module docstring): DC removal, pre-emphasis
        # (x[i] -= 0.97 x[i-1], x[0] -= 0.97 x[0]), povey window
        frames = frames - frames.mean(dim=-1, keepdim=True)
        frames = torch.cat([frames[..., :1] - PREEMPHASIS * frames[..., :1],
                            frames[..., 1:] - PREEMPHASIS * frames[..., :-1]], dim=-1) * self.window
        spectrum = (frames.double() @ self.dft.double()).float()  # [B, T, 514]; Kaldi keeps its FFT output in float
        bins = self.mel.shape[0]
        power = spectrum[..., :bins].square() + spectrum[..., bins:].square()  # [B, T, 257]
        energies = (power.double() @ self.mel.double()).float()  # [B, T, num_mel_bins]
        return torch.log(torch.clamp(energies, min=LOG_FLOOR))

    def forward(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor, texts: list[str] | None = None
    ) -> UpstreamOutput:
        if not (torch.jit.is_tracing() or torch.compiler.is_compiling()):  # its checks read values
            wav_lens = check_batch(wavs, wav_lens)
        # a row shorter than one window reads past its end: that must be zeros, whatever the caller padded with
        feats = self.log_mel(torch.where(length_mask(wav_lens, wavs.shape[1]), wavs, torch.zeros((), dtype=wavs.dtype)))
        frame_lens = fbank_frame_lens(wav_lens)
        if self.cmn:
            real = length_mask(frame_lens, feats.shape[1]).unsqueeze(-1)  # [B, T, 1]
            mean = (feats * real).sum(dim=1, keepdim=True) / frame_lens.clamp(min=1)[:, None, None]
            feats = feats - mean
        return UpstreamOutput([feats], frame_lens)
