"""The LightningModule: one SERModel, cross-entropy, two learning rates, validation WA/UA.

Lightning owns devices, precision, DDP, gradient clipping/accumulation and progress; this file owns only
what is particular to SER: the loss, the parameter groups and the validation metrics.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import frozen_fingerprint, frozen_keys
from ..data.batch import Batch
from ..errors import ConfigError
from ..evaluation.metrics import compute_metrics
from ..model import SERModel
from ..train_config import TrainConfig
from .augment import FrameMasking, mixup
from .checkpoints import VAL_SCORES
from .layer_decay import upstream_param_groups
from .schedule import warmup_linear_decay

FROZEN_FINGERPRINT = "serkit_frozen_fingerprint"  # last.ckpt entry: sha256 of the frozen parameters


class SERModule(L.LightningModule):
    def __init__(self, model: SERModel, train_cfg: TrainConfig, labels: list[str]):
        super().__init__()
        self.model = model
        self.train_cfg = train_cfg
        self.labels = list(labels)
        # last.ckpt leaves out frozen upstream parameters (on_save_checkpoint); on_load_checkpoint checks the rest
        self.strict_loading = False
        self._fingerprint: str | None = None
        self._val_preds: list[np.ndarray] = []
        self._val_targets: list[np.ndarray] = []
        self.val_scores: dict[str, float] = {}  # the last validation's, written into checkpoints (top-k metadata)
        if train_cfg.augment.masks_frames:
            model.frame_augment = FrameMasking(train_cfg.augment)
        # from_pretrained() hands back encoders in eval mode, and Lightning keeps the modes it finds (restoring them
        # after each validation): without this a fine-tuned upstream would train with dropout and SpecAugment off.
        # Frozen upstreams stay in eval mode whatever train() asks (Upstream.train).
        model.train()

    def setup(self, stage: str) -> None:
        # Hashed here, before Lightning restores a checkpoint or converts the module for a "*-true" precision
        # (bf16-true casts every weight): the same built weights give the same hash in every fit.
        self._frozen_fingerprint()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        frozen = {f"model.{key}" for key in frozen_keys(self.model)}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k not in frozen}
        checkpoint[FROZEN_FINGERPRINT] = self._frozen_fingerprint()
        checkpoint[VAL_SCORES] = dict(self.val_scores)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        try:  # name the file in errors (None when called outside a fit)
            where = f"{self.trainer.ckpt_path}: " if self.trainer.ckpt_path else ""
        except RuntimeError:  # not attached to a Trainer
            where = ""
        expected = set(self.state_dict())
        frozen = {f"model.{key}" for key in frozen_keys(self.model)}
        state = checkpoint.get("state_dict", {})
        missing, unexpected = sorted(expected - frozen - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ConfigError(f"{where}the checkpoint to resume from does not fit this model: it lacks "
                              f"{missing[:5]} and has unknown entries {unexpected[:5]} (was the config changed since?)")
        # the frozen weights are rebuilt from the upstream's source, not read back: it must be what it was
        if FROZEN_FINGERPRINT not in checkpoint:
            raise ConfigError(f"{where}the checkpoint to resume from has no {FROZEN_FINGERPRINT!r}, so the frozen "
                              "upstream weights cannot be checked: it was not written by this serkit's training; "
                              "start the fold afresh in a new run directory")
        if checkpoint[FROZEN_FINGERPRINT] != self._frozen_fingerprint():
            raise ConfigError(f"{where}the frozen upstream weights differ from those this run was trained with: "
                              "the upstream's source (hub revision, local folder, transformers version) changed "
                              "since; restore it, or start the fold afresh in a new run directory")

    def _frozen_fingerprint(self) -> str:
        if self._fingerprint is None:  # hashed once: frozen parameters do not change during a fit
            self._fingerprint = frozen_fingerprint(self.model)
        return self._fingerprint

    def forward(self, batch: Batch) -> torch.Tensor:
        """-> logits [B, C]."""
        return self.model(batch.wavs, batch.wav_lens, batch.texts)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        embedding = self.model.embed(batch.wavs, batch.wav_lens, batch.texts)
        smoothing = self.train_cfg.label_smoothing
        if self.train_cfg.augment.mixup > 0 and len(batch) > 1:
            embedding, partner, lam = mixup(embedding, self.train_cfg.augment.mixup)
            logits = self.model.classifier(embedding).float()
            loss = lam * F.cross_entropy(logits, batch.labels, label_smoothing=smoothing) + (1 - lam) * F.cross_entropy(
                logits, batch.labels[partner], label_smoothing=smoothing)
        else:
            loss = F.cross_entropy(self.model.classifier(embedding).float(), batch.labels, label_smoothing=smoothing)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch))
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        logits = self(batch)
        loss = F.cross_entropy(logits.float(), batch.labels)
        self.log("val_loss", loss, batch_size=len(batch), sync_dist=False)
        self._val_preds.append(logits.argmax(-1).cpu().numpy())
        self._val_targets.append(batch.labels.cpu().numpy())

    def on_validation_epoch_end(self) -> None:
        # Every rank validates on the whole (unsharded) validation set, so the metrics are identical on all
        # ranks without a gather, and duplicated padding batches never bias them.
        if not self._val_preds:
            return
        metrics = compute_metrics(np.concatenate(self._val_preds), np.concatenate(self._val_targets), self.labels)
        self._val_preds.clear()
        self._val_targets.clear()
        self.val_scores = {"val_ua": metrics.ua, "val_wa": metrics.wa}
        self.log("val_ua", metrics.ua, prog_bar=True, sync_dist=False)
        self.log("val_wa", metrics.wa, prog_bar=True, sync_dist=False)

    def configure_optimizers(self):
        groups = self.model.parameter_groups()
        cfg = self.train_cfg
        # the upstreams' trained parameters, one group per learning rate (several with train.lr_layer_decay)
        param_groups = upstream_param_groups(self.model.upstreams, cfg.lr_upstream, cfg.lr_layer_decay) + [
            {"params": [p for p in groups["downstream"] if p.requires_grad], "lr": cfg.lr_downstream},
        ]
        param_groups = [g for g in param_groups if g["params"]]
        optimizer = torch.optim.AdamW(param_groups, weight_decay=cfg.weight_decay)
        total = int(self.trainer.estimated_stepping_batches)
        warmup = int(round(cfg.warmup * total))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_linear_decay(step, total, warmup)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
