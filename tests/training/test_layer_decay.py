"""Layer-wise learning-rate decay: each block's rate is what the formula says (Whisper and wav2vec2, LoRA
adapters with their block), one Adam step moves each block by its own rate, 1 leaves the optimiser as it was,
and what cannot decay is refused with its key."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from serkit.config import load_config
from serkit.downstream import AggregatorConfig
from serkit.errors import ConfigError
from serkit.model import ModelConfig, build_model
from serkit.train_config import TrainConfig
from serkit.training.layer_decay import layer_scales
from serkit.training.module import SERModule
from serkit.upstream.hf import HFConfig
from serkit.upstream.tiny import save_tiny_speech_model, save_tiny_whisper
from serkit.upstream.whisper import WhisperConfig


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory):
    return save_tiny_whisper(tmp_path_factory.mktemp("whisper"))


@pytest.fixture(scope="module")
def w2v2_dir(tmp_path_factory):
    return save_tiny_speech_model(tmp_path_factory.mktemp("w2v2"), "wav2vec2")


def optimizer_of(model, **train) -> torch.optim.Optimizer:
    module = SERModule(model, TrainConfig(**train), ["a", "b"])
    module._trainer = SimpleNamespace(estimated_stepping_batches=10)  # all configure_optimizers reads of it
    return module.configure_optimizers()["optimizer"]


def rate_of(optimizer) -> dict[int, float]:
    return {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}


def test_whisper_blocks_decay_from_the_top_and_the_stem_is_slowest(whisper_dir):
    model = build_model(ModelConfig(upstreams=[WhisperConfig(source=str(whisper_dir), freeze="none")]), 2)
    upstream = model.upstreams[0]
    rates = rate_of(optimizer_of(model, lr_upstream=1e-4, lr_layer_decay=0.5))
    for name, parameter in upstream.named_parameters():
        expected = {"encoder.layers.0.": 0.5e-4, "encoder.layers.1.": 1e-4, "encoder.layer_norm.": 1e-4}
        rate = next((r for prefix, r in expected.items() if name.startswith(prefix)), 0.25e-4)  # conv, positions
        if parameter.requires_grad:
            assert rates[id(parameter)] == pytest.approx(rate), name
    head = [p for p in model.parameters() if id(p) not in {id(q) for q in upstream.parameters()}]
    assert {rates[id(p)] for p in head} == {TrainConfig().lr_downstream}  # the head keeps its own rate


@pytest.mark.parametrize("family, final_norm", [("wav2vec2", 1.0), ("data2vec-audio", 0.64)])
def test_hf_blocks_decay_the_cnn_is_left_out_and_the_final_norm_goes_where_it_runs(family, final_norm, tmp_path):
    """The tiny wav2vec2 is pre-LN (do_stable_layer_norm, as the large checkpoints): encoder.layer_norm runs
    after the top block and learns at its rate; data2vec-audio is post-LN: it normalises the blocks' input."""
    source = save_tiny_speech_model(tmp_path / family, family)
    model = build_model(ModelConfig(upstreams=[HFConfig(source=str(source), freeze="cnn")]), 2)
    scales = layer_scales(model.upstreams[0], 0.8)
    for name, scale in scales.items():
        expected = (0.8 if "encoder.layers.0." in name else 1.0 if "encoder.layers.1." in name
                    else final_norm if "encoder.layer_norm." in name else 0.64)  # CNN, projection, positions
        assert scale == pytest.approx(expected), name
    rates = rate_of(optimizer_of(model, lr_upstream=1e-4, lr_layer_decay=0.8))
    cnn = list(model.upstreams[0].model.feature_extractor.parameters())
    assert cnn and not any(id(p) in rates for p in cnn)  # frozen: in no group


def test_one_adam_step_moves_each_block_by_its_own_rate(whisper_dir):
    """Adam's first step moves every parameter with a gradient by its group's rate (sign of the gradient)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(upstreams=[WhisperConfig(source=str(whisper_dir), freeze="none")],
                                    aggregators=[AggregatorConfig(name="mean")]), 2)
    optimizer = optimizer_of(model, lr_upstream=1e-3, lr_layer_decay=0.1, warmup=0.0, weight_decay=0.0)
    blocks = model.upstreams[0].encoder.layers
    before = [blocks[i].fc1.weight.detach().clone() for i in (0, 1)]
    wavs = torch.randn(2, 16000)
    loss = torch.nn.functional.cross_entropy(model(wavs, torch.tensor([16000, 12000])), torch.tensor([0, 1]))
    loss.backward()
    optimizer.step()
    moved = [float((blocks[i].fc1.weight.detach() - before[i]).abs().max()) for i in (0, 1)]
    assert moved[1] == pytest.approx(1e-3, rel=1e-3) and moved[0] == pytest.approx(1e-4, rel=1e-3)


def test_no_decay_gives_the_optimizer_of_before(whisper_dir):
    model = build_model(ModelConfig(upstreams=[WhisperConfig(source=str(whisper_dir), freeze="none")]), 2)
    groups = optimizer_of(model, lr_upstream=2e-5).param_groups
    upstream = [p for p in model.upstreams.parameters() if p.requires_grad]
    assert [g["lr"] for g in groups] == [2e-5, TrainConfig().lr_downstream]
    assert [id(p) for p in groups[0]["params"]] == [id(p) for p in upstream]  # one group, in module order


def test_lora_adapters_decay_with_their_block(whisper_dir):
    pytest.importorskip("peft", reason="LoRA needs the optional peft library (serkit[lora])")
    model = build_model(ModelConfig(upstreams=[WhisperConfig(source=str(whisper_dir), freeze="cnn", lora_rank=2)]), 2)
    rates = rate_of(optimizer_of(model, lr_upstream=1e-4, lr_layer_decay=0.5))
    adapters = {n: p for n, p in model.upstreams[0].named_parameters() if "lora_" in n}
    assert adapters and all(rates[id(p)] == pytest.approx(0.5e-4 if "layers.0." in n else 1e-4)
                            for n, p in adapters.items())


def test_what_cannot_decay_is_refused_with_its_key(tmp_path):
    from serkit.upstream.fbank import FbankConfig

    with pytest.raises(ConfigError, match=r"train\.lr_layer_decay"):
        load_config(overrides=["train.lr_layer_decay=1.5"])
    with pytest.raises(ConfigError, match=r"train\.lr_layer_decay"):
        load_config(overrides=["train.lr_layer_decay=0"])

    class Blockless(torch.nn.Module):  # a trained upstream without encoder blocks
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(2))

        def lora_root(self):
            raise ConfigError("no blocks")

        def modules_after_blocks(self):
            return []

    model = build_model(ModelConfig(upstreams=[FbankConfig()]), 2)
    model.upstreams.append(Blockless())
    with pytest.raises(ConfigError, match=r"train\.lr_layer_decay: model\.upstreams\[1\] \(Blockless\) has no encoder"):
        optimizer_of(model, lr_layer_decay=0.9)
    assert optimizer_of(model).param_groups  # no decay: any upstream trains at lr_upstream
