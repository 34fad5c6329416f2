"""80-dim Kaldi log-mel filterbank as an upstream (config key "fbank"): no trainable weights, 100 Hz.

Computed by kaldi-native-fbank (the maintained C++ port of Kaldi's compute-fbank-feats), one utterance
at a time on the CPU over its real samples only, so padding cannot leak in. Why not a batched torch
version: the features are cheap next to any model that reads them, and the reference implementation
stays the one that runs (tests compare it with transformers' independent numpy Kaldi fbank).

Settings are Kaldi's defaults except dither=0 (deterministic): 25 ms povey window, 10 ms hop, pre-emphasis
0.97, DC removal, power spectrum, 80 mel bins from 20 Hz to Nyquist, natural-log energies. Samples are
scaled to the int16 range first, as Kaldi (and every Kaldi-compatible recipe) reads them.

Frames follow snip_edges semantics: frame_lens = floor((S - 400) / 160) + 1; an utterance shorter than
one window (S < 400 samples) is zero-padded to 400 samples and gives one frame.

cfg.cmn=True subtracts each utterance's mean over its real frames (cepstral mean normalisation).
"""

from __future__ import annotations

import kaldi_native_fbank as knf
import numpy as np
import torch

from .audio import check_batch, repad
from .base import UPSTREAMS, Upstream, UpstreamConfig, UpstreamOutput

SAMPLE_RATE = 16000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
NUM_MEL_BINS = 80


def fbank_options(num_mel_bins: int = NUM_MEL_BINS) -> knf.FbankOptions:
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = SAMPLE_RATE
    opts.frame_opts.frame_length_ms = 1000 * WINDOW / SAMPLE_RATE
    opts.frame_opts.frame_shift_ms = 1000 * HOP / SAMPLE_RATE
    opts.frame_opts.dither = 0.0
    opts.frame_opts.snip_edges = True
    opts.frame_opts.window_type = "povey"
    opts.frame_opts.preemph_coeff = 0.97
    opts.frame_opts.remove_dc_offset = True
    opts.mel_opts.num_bins = num_mel_bins
    opts.mel_opts.low_freq = 20.0
    opts.mel_opts.high_freq = 0.0  # 0 = Nyquist
    opts.use_energy = False
    opts.use_log_fbank = True
    opts.use_power = True
    return opts


def kaldi_fbank(samples: np.ndarray, opts: knf.FbankOptions | None = None) -> np.ndarray:
    """samples [S] float in [-1, 1] at 16 kHz -> log-mel [T, 80], T = floor((max(S, 400) - 400) / 160) + 1."""
    if samples.shape[0] < WINDOW:
        samples = np.pad(samples, (0, WINDOW - samples.shape[0]))
    computer = knf.OnlineFbank(opts or fbank_options())
    computer.accept_waveform(SAMPLE_RATE, (samples.astype(np.float32) * 32768.0).tolist())
    computer.input_finished()
    return np.stack([computer.get_frame(i) for i in range(computer.num_frames_ready)]).astype(np.float32)


def fbank_frame_lens(wav_lens: torch.Tensor) -> torch.Tensor:
    """[B] samples -> [B] Kaldi frames (snip_edges; at least 1)."""
    return torch.div(wav_lens.clamp(min=WINDOW) - WINDOW, HOP, rounding_mode="floor") + 1


@UPSTREAMS.register("fbank")
class FbankUpstream(Upstream):
    """wavs [B, S] -> hidden: [feats [B, T, 80]] (one layer), frame_lens [B]; 100 Hz."""

    def __init__(self, cmn: bool = False, num_mel_bins: int = NUM_MEL_BINS):
        super().__init__()
        self.cmn = cmn
        self.num_layers = 1
        self.hidden_size = num_mel_bins
        self.frame_rate = SAMPLE_RATE / HOP
        self._opts = fbank_options(num_mel_bins)

    @classmethod
    def from_config(cls, cfg: UpstreamConfig, pretrained: bool = True) -> "FbankUpstream":
        return cls(cmn=cfg.cmn)

    def forward(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor, texts: list[str] | None = None
    ) -> UpstreamOutput:
        wav_lens = check_batch(wavs, wav_lens)
        rows = wavs.detach().float().cpu().numpy()
        per_utterance = []
        for row, length in zip(rows, wav_lens.tolist()):
            feats = torch.from_numpy(kaldi_fbank(row[:length], self._opts)).to(wavs.device)
            if self.cmn:
                feats = feats - feats.mean(dim=0, keepdim=True)
            per_utterance.append([feats])
        return UpstreamOutput(repad(per_utterance), fbank_frame_lens(wav_lens))
