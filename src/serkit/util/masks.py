"""The padding mask every layer uses (upstreams, fusion, aggregators, the export graph)."""

from __future__ import annotations

import torch


def length_mask(lens: torch.Tensor, max_len: int) -> torch.Tensor:
    """lens [B] -> bool [B, max_len], True on the real samples / frames (index < lens[b])."""
    return torch.arange(max_len, device=lens.device)[None, :] < lens[:, None]
