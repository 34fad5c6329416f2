"""Lightning callback: carry the random number generators' states in last.ckpt.

Lightning seeds once at the start and does not save RNG states, so a run resumed from last.ckpt would draw
different dropout masks, SpecAugment spans and DataLoader worker seeds than the uninterrupted run. The
states are taken when last.ckpt is written (after validation, at the end of an epoch) and put back when the
resumed fit starts its first epoch, so it continues the same random streams. Not at load time: Lightning
draws from the generator between loading and the first epoch (it builds a DataLoader iterator while setting
up), which the uninterrupted run does not do at that point. Stored as tensors, ints and tuples only, so the
checkpoint still loads with torch.load(weights_only=True).
"""

from __future__ import annotations

import random

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback


class RNGState(Callback):
    def __init__(self):
        self._pending: dict | None = None  # loaded from last.ckpt, applied when the first epoch starts

    def state_dict(self) -> dict:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        return {
            "python": random.getstate(),
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_state_dict(self, state_dict: dict) -> None:
        self._pending = state_dict

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        random.setstate(state["python"])
        numpy = state["numpy"]
        np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"],
                             numpy["has_gauss"], numpy["gauss"]))
        torch.set_rng_state(state["torch"])
        cuda = state["cuda"]
        if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
