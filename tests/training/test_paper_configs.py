"""Every config in configs/paper builds its model (tiny upstreams swapped in, as the demo does) and trains a step."""

from __future__ import annotations

import pytest
import torch

from serkit.config import load_config
from serkit.data.dataset import build_loader
from serkit.data.config import DataConfig
from serkit.data.prepare import read_corpus
from serkit.demo import demo_adapter
from serkit.evaluation.paper import PAPER_TABLE1
from serkit.model import build_model
from serkit.train_config import TrainConfig
from serkit.training.module import SERModule
from serkit.training.paper import PAPER_CONFIG_DIR, paper_config
from serkit.upstream.tiny import save_tiny_bert, save_tiny_speech_model


@pytest.fixture(scope="module")
def tiny_sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_models")
    return {
        "wav2vec2": str(save_tiny_speech_model(root / "wav2vec2", "wav2vec2")),
        "hubert": str(save_tiny_speech_model(root / "hubert", "hubert")),
        "text": str(save_tiny_bert(root / "bert", ["i", "am", "so", "happy", "angry", "sad", "today"])),
    }


@pytest.fixture(scope="module")
def batch(synth_iemocap_root):
    data = read_corpus(DataConfig(corpus="iemocap", root=str(synth_iemocap_root), check=False))
    prepared, labels = data.prepared, data.classes
    loader = build_loader(prepared.utterances[:6], labels, max_batch_seconds=1000, shuffle=False)
    return next(iter(loader))


def test_there_is_one_config_per_paper_experiment():
    names = sorted(p.stem for p in PAPER_CONFIG_DIR.glob("*.yaml"))
    assert names == sorted(e.config for e in PAPER_TABLE1.values())


@pytest.mark.parametrize("number", sorted(PAPER_TABLE1))
def test_paper_config_builds_and_trains_one_step(number, tiny_sources, batch):
    cfg = load_config(paper_config(number))
    assert cfg.name == PAPER_TABLE1[number].config
    cfg = demo_adapter(tiny_sources)(cfg)
    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes=4)
    module = SERModule(model, TrainConfig(), ["neu", "hap", "ang", "sad"])
    groups = model.parameter_groups()
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in groups[g] if p.requires_grad], "lr": 1e-3} for g in groups
         if any(p.requires_grad for p in groups[g])]
    )
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    model.train()
    loss = torch.nn.functional.cross_entropy(module(batch), batch.labels)
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, trainable[n])]
    assert any(n.startswith("classifier") for n in changed)
    fine_tuned = any(u.freeze != "all" for u in cfg.model.upstreams)
    assert any(n.startswith("upstreams") for n in changed) == fine_tuned
