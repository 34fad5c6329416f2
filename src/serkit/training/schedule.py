"""Learning-rate schedule: linear warm-up, then linear decay to zero (as a LambdaLR multiplier)."""

from __future__ import annotations


def warmup_linear_decay(step: int, total_steps: int, warmup_steps: int) -> float:
    """Multiplier of the peak learning rate at optimiser step `step` (0-based)."""
    if total_steps <= 0:
        return 1.0
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    remaining = max(1, total_steps - warmup_steps)
    return max(0.0, (total_steps - step) / remaining)
