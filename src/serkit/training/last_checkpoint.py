"""Lightning callback: write checkpoints/last.ckpt after every validation, so a killed fold resumes there.

Lightning's own `ModelCheckpoint(save_top_k=0, save_last=True)` writes last.ckpt only in a step where it also
saved a top-k file, which with save_top_k=0 means only at the end of the fit (lightning 2.6): a fold killed
mid-way then restarted from epoch 0. Our top-k weights are kept by TopKWeights; this writes the full training
state (model, optimiser, scheduler, loops, callback states) through the trainer, hence through
AtomicCheckpointIO. It must come after TopKWeights in the callback list, so the tracker state it saves
includes this validation's checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback


class LastCheckpoint(Callback):
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        # every rank calls it (it synchronises); rank 0 writes. weights_only=False: the full training state
        trainer.save_checkpoint(self.path, weights_only=False)
