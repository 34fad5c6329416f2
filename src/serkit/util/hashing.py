"""Content hashes of tensors, for fingerprints that must change whenever any value does."""

from __future__ import annotations

import torch


def update_with_tensor(digest, name: str, tensor: torch.Tensor) -> None:
    """Feed `name`, dtype, shape and the raw bytes of `tensor` (any dtype, any device) into a hashlib digest."""
    tensor = tensor.detach().cpu().contiguous()
    digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
    digest.update(tensor.reshape(-1).view(torch.uint8).numpy())  # the buffer itself: no copy of a large tensor
