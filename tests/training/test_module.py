"""SERModule: a fine-tuned upstream really trains in train mode (dropout on); a frozen one stays in eval mode."""

from __future__ import annotations

import lightning as L
import pytest

from serkit.config import load_config
from serkit.data.dataset import build_loader
from serkit.data.config import DataConfig
from serkit.data.prepare import read_corpus
from serkit.model import build_model
from serkit.training.module import SERModule
from serkit.upstream.tiny import save_tiny_speech_model


class ModeProbe(L.Callback):
    def __init__(self):
        self.modes = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        upstream = pl_module.model.upstreams[0]
        # every submodule, the HF encoder's dropout layers included
        self.modes.append({m.training for m in upstream.modules()})


@pytest.mark.parametrize("freeze, expected", [("cnn", {True}), ("all", {False})])
def test_upstream_mode_during_fit(freeze, expected, synth_iemocap_root, tmp_path):
    source = save_tiny_speech_model(tmp_path / "w2v2", "wav2vec2")
    cfg = load_config({"model": {"upstreams": [{"name": "hf", "source": str(source), "layers": "last",
                                                "freeze": freeze}], "aggregators": [{"name": "mean"}]}})
    model = build_model(cfg.model, num_classes=4)
    data = read_corpus(DataConfig(corpus="iemocap", root=str(synth_iemocap_root), check=False))
    prepared, labels = data.prepared, data.classes
    loader = build_loader(prepared.utterances[:8], labels, max_batch_seconds=10, shuffle=False)
    probe = ModeProbe()
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, callbacks=[probe], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0)  # as in training.fold: no validation pass before training
    trainer.fit(SERModule(model, cfg.train, labels), loader, loader)
    assert probe.modes and all(mode == expected for mode in probe.modes)
