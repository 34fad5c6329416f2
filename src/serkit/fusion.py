"""From the upstreams' frame streams to one embedding: one module per model.fusion, each
forward(streams: [(frames [B, T_i, D_i], frame_lens [B])]) -> embedding [B, E], with `output_dim` = E.

    "none"  SingleStream: the one stream -> its aggregator
    "early" EarlyFusion:  frames aligned in time, concatenated along D -> one aggregator
    "late"  LateFusion:   one aggregator per stream, embeddings concatenated

Early fusion needs frames on one clock: each stream is brought to the target frame rate (the lowest of the
streams unless given). A faster stream is averaged over the source frames that fall in each target frame
(real frames only); a slower one is repeated (nearest frame). Lengths are then cropped to the shortest stream
per utterance, so the fused frame_lens are exact. Text streams (frame_rate 0) have no clock: late fusion only.
"""

from __future__ import annotations

import functools
from fractions import Fraction

import torch
from torch import nn

from .downstream.base import Aggregator
from .errors import ConfigError
from .util.masks import length_mask

Stream = tuple[torch.Tensor, torch.Tensor]  # (frames [B, T, D], frame_lens [B])


def _rate_ratio(source_rate: float, target_rate: float) -> tuple[int, int]:
    """target / source as a reduced fraction p / q, so frame indices map with exact integer arithmetic."""
    ratio = Fraction(target_rate).limit_denominator(10_000) / Fraction(source_rate).limit_denominator(10_000)
    return ratio.numerator, ratio.denominator


def resample_frames(frames: torch.Tensor, frame_lens: torch.Tensor, source_rate: float, target_rate: float) -> Stream:
    """frames [B, T, D] at source_rate (frames/s), frame_lens [B] -> (frames [B, T', D], frame_lens [B]) at target_rate.

    Downsampling: target frame j is the mean of the real source frames i with floor(i * target / source) == j
    (for 100 Hz -> 50 Hz: frames 2j and 2j+1). Upsampling: target frame j repeats source frame
    floor(j * source / target). Padding frames of the result are zero.
    """
    if source_rate <= 0 or target_rate <= 0:
        raise ConfigError(f"frame rates must be positive to resample frames; got {source_rate} -> {target_rate} Hz")
    p, q = _rate_ratio(source_rate, target_rate)
    if p == q:
        return frames, frame_lens
    batch, steps, _ = frames.shape
    device = frames.device
    real = length_mask(frame_lens, steps)  # [B, T]
    if p < q:
        target_of = torch.arange(steps, device=device) * p // q  # [T] source frame -> target frame
        out_steps = int(target_of[-1]) + 1 if steps else 0
        # where(), not a multiply: source padding is undefined (could be NaN) and must not be read.
        values = torch.where(real.unsqueeze(-1), frames, torch.zeros((), dtype=frames.dtype, device=device))
        sums = frames.new_zeros(batch, out_steps, frames.shape[2]).index_add_(1, target_of, values)
        counts = frames.new_zeros(batch, out_steps).index_add_(1, target_of, real.to(frames.dtype))
        resampled = sums / counts.clamp(min=1).unsqueeze(-1)
        # a target frame is real when it holds at least one real source frame: the last one is (len - 1) * p // q.
        new_lens = torch.where(frame_lens > 0, (frame_lens - 1) * p // q + 1, torch.zeros_like(frame_lens))
    else:
        out_steps = -(-steps * p // q)
        source_of = torch.arange(out_steps, device=device) * q // p  # [T'] target frame -> source frame
        resampled = frames[:, source_of]
        new_lens = -(-frame_lens * p // q)  # ceil: every target frame whose source frame is real
        real_out = length_mask(new_lens, out_steps).unsqueeze(-1)
        resampled = torch.where(real_out, resampled, torch.zeros((), dtype=frames.dtype, device=device))
    return resampled, new_lens


class SingleStream(nn.Module):
    """fusion "none": [(frames [B, T, D], frame_lens [B])] -> the aggregator's embedding [B, E]."""

    def __init__(self, aggregator: Aggregator):
        super().__init__()
        self.aggregator = aggregator
        self.output_dim = aggregator.output_dim

    def forward(self, streams: list[Stream]) -> torch.Tensor:
        _check_count(streams, 1)
        frames, frame_lens = streams[0]
        return self.aggregator(frames, frame_lens)


class EarlyFusion(nn.Module):
    """fusion "early": [(frames [B, T_i, D_i], frame_lens_i [B])] -> embedding [B, E]. The streams are brought to
    `target_rate`, concatenated along D (`concat`), and the one aggregator (built for sum D_i) pools them."""

    def __init__(self, frame_rates: list[float], aggregator: Aggregator, target_rate: float | None = None):
        super().__init__()
        for index, rate in enumerate(frame_rates):
            if rate <= 0:
                raise ConfigError(
                    f"model.upstreams[{index}] has no frame rate (frame_rate={rate}: a text upstream); early fusion "
                    "concatenates frames in time and needs audio upstreams: use fusion: late for text"
                )
        if target_rate is not None and target_rate <= 0:
            raise ConfigError(f"key 'model.fusion_frame_rate' is {target_rate}; expected a positive rate (frames/s)")
        self.frame_rates = list(frame_rates)
        self.target_rate = float(min(frame_rates) if target_rate is None else target_rate)
        self.aggregator = aggregator
        self.output_dim = aggregator.output_dim

    @property
    def resamples(self) -> bool:
        """Whether a stream changes frame rate (ONNX export cannot: the resampled shapes depend on the data)."""
        return any(rate != self.target_rate for rate in self.frame_rates)

    def concat(self, streams: list[Stream]) -> Stream:
        """-> (frames [B, T, sum D_i], frame_lens [B]): each stream resampled to target_rate, cropped to the
        shortest stream (T: the shortest tensor, so every shape follows the input's; frame_lens: per utterance)
        and concatenated along D; frames at or past frame_lens are zero."""
        _check_count(streams, len(self.frame_rates))
        aligned = [
            resample_frames(frames, frame_lens, rate, self.target_rate)
            for (frames, frame_lens), rate in zip(streams, self.frame_rates)
        ]
        steps = functools.reduce(torch.sym_min, [frames.shape[1] for frames, _ in aligned])
        frame_lens = torch.stack([lens for _, lens in aligned]).min(dim=0).values.clamp(max=steps)  # [B]
        frames = torch.cat([frames[:, :steps] for frames, _ in aligned], dim=2)
        real = length_mask(frame_lens, steps).unsqueeze(-1)
        return torch.where(real, frames, torch.zeros((), dtype=frames.dtype, device=frames.device)), frame_lens

    def forward(self, streams: list[Stream]) -> torch.Tensor:
        return self.aggregator(*self.concat(streams))


class LateFusion(nn.Module):
    """fusion "late": one aggregator per stream, embeddings concatenated. [(frames_i, frame_lens_i)] -> [B, sum E_i]."""

    def __init__(self, aggregators: list[Aggregator]):
        super().__init__()
        self.aggregators = nn.ModuleList(aggregators)
        self.output_dim = sum(aggregator.output_dim for aggregator in aggregators)

    def forward(self, streams: list[Stream]) -> torch.Tensor:
        _check_count(streams, len(self.aggregators))
        embeddings = [aggregator(frames, lens) for aggregator, (frames, lens) in zip(self.aggregators, streams)]
        return torch.cat(embeddings, dim=1)


def _check_count(streams: list[Stream], expected: int) -> None:
    if len(streams) != expected:
        raise ValueError(f"fusion got {len(streams)} streams for {expected} upstreams")
