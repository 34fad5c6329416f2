"""Masked building blocks of ECAPA-TDNN (Desplanques et al., Interspeech 2020).

Layout inside ECAPA is channels-first: x [B, C, T], with a float mask [B, 1, T] (1 on real frames, 0 on
padding). Two rules make every block padding invariant (an utterance alone == the same utterance inside a
padded batch):

1. Every block's output is zero on padding frames. A 'same'-padded convolution then sees, at an utterance's
   last frames, exactly the zeros it would see at the edge of the utterance alone.
2. Every statistic (BatchNorm in training, the SE squeeze, the attention softmax, the global context and the
   pooled mean / std) is taken over real frames only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Floor of a variance before its square root: keeps the std's gradient finite on constant inputs.
VAR_EPS = 1e-10


def weighted_mean_std(x: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [B, C, T], weights [B, 1 or C, T] summing to 1 over T -> (mean [B, C], std [B, C]).

    The std is the weighted population std sqrt(sum_t w_t (x_t - mean)^2) (the paper's eq. 9, written in the
    centred form, which loses less precision than sum w x^2 - mean^2).
    """
    mean = (weights * x).sum(dim=2)
    var = (weights * (x - mean.unsqueeze(2)).square()).sum(dim=2)
    return mean, var.clamp(min=VAR_EPS).sqrt()


def masked_mean_std(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [B, C, T], mask [B, 1, T] -> mean and population std over real frames only, each [B, C]."""
    mask = mask.float()  # statistics in float32 also under bf16/fp16 autocast
    weights = mask / mask.sum(dim=2, keepdim=True).clamp(min=1.0)
    return weighted_mean_std(x.float(), weights)


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d whose training statistics count real frames only.

    forward(x [B, C, T], mask [B, 1, T]) or forward(x [B, C]). In training the batch mean / variance are taken
    over the real frames of all utterances (padding never pollutes them) and the running statistics are updated
    exactly as torch's BatchNorm1d would on those frames (unbiased variance, same momentum rule). In eval it is
    torch's BatchNorm1d (running statistics, per frame). Same parameters and buffers as nn.BatchNorm1d, so
    state dicts are interchangeable.

    A pooled [1, C] batch in training has no variance: torch raises there; we normalise it with the running
    statistics instead and leave them untouched, so a last batch of one utterance still trains.
    """

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        uses_batch_stats = self.training or self.running_mean is None
        if not uses_batch_stats:
            return super().forward(x)
        if x.dim() == 2:
            if x.shape[0] == 1 and self.running_mean is not None:
                stats = (self.running_mean, self.running_var)
                return F.batch_norm(x, *stats, self.weight, self.bias, False, 0.0, self.eps)
            mask = torch.ones_like(x[:, :1]).unsqueeze(2)
            x = x.unsqueeze(2)
            return self._normalise(x, mask).squeeze(2)
        if mask is None:
            mask = torch.ones_like(x[:, :1])
        return self._normalise(x, mask)

    def _normalise(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, C, T], mask [B, 1, T]: batch statistics over real frames; a tensor count, so no host sync.
        Computed in float32 whatever the input dtype (autocast), returned in the input dtype."""
        dtype = x.dtype
        x, mask = x.float(), mask.float()
        count = mask.sum()
        mean = (x * mask).sum(dim=(0, 2)) / count
        var = ((x - mean[None, :, None]).square() * mask).sum(dim=(0, 2)) / count
        if self.training and self.track_running_stats:
            self._update_running_stats(mean, var, count)
        y = (x - mean[None, :, None]) * torch.rsqrt(var[None, :, None] + self.eps)
        if self.affine:
            y = y * self.weight[None, :, None] + self.bias[None, :, None]
        return y.to(dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor) -> None:
        self.num_batches_tracked.add_(1)
        factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), factor)
        # clamp: a single real frame has no unbiased variance; keep the biased one (0) rather than inf.
        unbiased = var.detach() * (count / (count - 1).clamp(min=1.0))
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)


class TDNNBlock(nn.Module):
    """Conv1d (zero 'same' padding) -> ReLU -> masked BN; padding zeroed. [B, C_in, T] -> [B, C_out, T]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation, padding="same")
        self.norm = MaskedBatchNorm1d(out_channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.norm(F.relu(self.conv(x)), mask) * mask


class Res2NetBlock(nn.Module):
    """Res2Net dilated convolution: C channels split into `scale` groups of C/scale; group 1 passes through,
    group 2 goes through its TDNN, group i > 2 through its TDNN after adding group i-1's output (growing
    receptive fields inside one layer). [B, C, T] -> [B, C, T]."""

    def __init__(self, channels: int, scale: int, kernel_size: int, dilation: int):
        super().__init__()
        width = channels // scale
        self.scale = scale
        self.convs = nn.ModuleList(TDNNBlock(width, width, kernel_size, dilation) for _ in range(scale - 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        groups = x.chunk(self.scale, dim=1)
        outputs = [groups[0]]
        previous = None
        for group, conv in zip(groups[1:], self.convs):
            previous = conv(group if previous is None else group + previous, mask)
            outputs.append(previous)
        return torch.cat(outputs, dim=1)


class SEBlock(nn.Module):
    """Squeeze-excitation: channel gates from the masked mean over time (1x1 bottleneck, ReLU, sigmoid).
    [B, C, T] -> [B, C, T]; padding stays zero because gates multiply."""

    def __init__(self, channels: int, bottleneck: int):
        super().__init__()
        self.squeeze = nn.Conv1d(channels, bottleneck, 1)
        self.excite = nn.Conv1d(bottleneck, channels, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        summary = (x * mask).float().sum(dim=2, keepdim=True) / mask.float().sum(dim=2, keepdim=True).clamp(min=1.0)
        gates = torch.sigmoid(self.excite(F.relu(self.squeeze(summary.to(x.dtype)))))  # [B, C, 1]
        return x * gates


class SERes2NetBlock(nn.Module):
    """1x1 TDNN -> Res2Net dilated TDNN -> 1x1 TDNN -> SE, plus the residual input. [B, C, T] -> [B, C, T]."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, scale: int, se_channels: int):
        super().__init__()
        self.tdnn_in = TDNNBlock(channels, channels, 1)
        self.res2net = Res2NetBlock(channels, scale, kernel_size, dilation)
        self.tdnn_out = TDNNBlock(channels, channels, 1)
        self.se = SEBlock(channels, se_channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = self.tdnn_out(self.res2net(self.tdnn_in(x, mask), mask), mask)
        return self.se(y, mask) + x


class AttentiveStatisticsPooling(nn.Module):
    """Channel- and context-dependent attentive statistics pooling (the paper's eqs. 7-9).

    Attention scores per channel and frame come from a bottleneck (1x1 TDNN with ReLU + BN, tanh, 1x1 conv)
    over each frame, concatenated, with global_context, with the utterance's masked mean and std. Scores at
    padding are -inf before the softmax over time. x [B, C, T], mask [B, 1, T] -> [mean; std] [B, 2C].
    """

    def __init__(self, channels: int, attention_channels: int, global_context: bool = True):
        super().__init__()
        self.global_context = global_context
        self.bottleneck = TDNNBlock(channels * 3 if global_context else channels, attention_channels, 1)
        self.scores = nn.Conv1d(attention_channels, channels, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        context = x
        if self.global_context:
            mean, std = masked_mean_std(x, mask)
            steps = x.shape[2]
            context = torch.cat([x, mean.unsqueeze(2).expand(-1, -1, steps), std.unsqueeze(2).expand(-1, -1, steps)], 1)
        scores = self.scores(torch.tanh(self.bottleneck(context, mask)))  # [B, C, T]
        scores = scores.masked_fill(mask == 0, float("-inf"))
        weights = torch.softmax(scores.float(), dim=2)
        mean, std = weighted_mean_std(x.float(), weights)
        return torch.cat([mean, std], dim=1)
