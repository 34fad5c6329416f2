"""LoRA adapters through peft (issue 11 section 3): only the adapters train, in the blocks the freeze policy
leaves trainable; merged into the weights they give the same model; a cv fold's bundle holds the merged
model, loads without LoRA, scores what the fold reported and exports to ONNX."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import yaml

from serkit.downstream import AggregatorConfig
from serkit.errors import ConfigError
from serkit.model import ModelConfig, build_model
from serkit.upstream import build_layer_selector, build_upstream, upstream_config
from serkit.upstream.cache import FeatureCache, install_feature_cache
from serkit.upstream.fbank import FbankConfig
from serkit.upstream.hf import HFConfig
from serkit.upstream.lora import has_lora, merge_lora
from serkit.upstream.tiny import save_tiny_speech_model
from serkit.upstream.whisper import WhisperConfig

pytest.importorskip("peft", reason="LoRA needs the peft library (pip install 'serkit[lora]')")


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def wav2vec2_dir(tmp_path_factory):
    return save_tiny_speech_model(tmp_path_factory.mktemp("lora_w2v2"), "wav2vec2")


def lora_cfg(source, name="hf", freeze="cnn", **lora) -> UpstreamConfig:
    return upstream_config({"name": name, "source": str(source), "freeze": freeze, "lora_rank": 4, **lora})


@pytest.mark.parametrize("settings, message", [
    (dict(lora_rank=-1), "lora_rank is -1"),
    (dict(freeze="all"), "freeze='all': nothing of the upstream would train"),
    (dict(lora_alpha=0.0), "lora_alpha is 0.0"),
    (dict(lora_dropout=1.0), "lora_dropout is 1.0"),
    (dict(lora_targets=" , "), "lora_targets is empty"),
    (dict(lora_targets="qkv"), "no linear layers of that name"),
])
def test_bad_lora_settings_are_config_errors_naming_the_key(wav2vec2_dir, settings, message):
    with pytest.raises(ConfigError, match="upstream.lora_") as error:
        build_upstream(lora_cfg(wav2vec2_dir, **settings))
    assert message in str(error.value)


def test_upstreams_without_blocks_refuse_lora():
    with pytest.raises(ConfigError, match="supported by the hf and whisper upstreams only"):
        build_upstream(FbankConfig(lora_rank=4))


def test_only_the_adapters_train_and_they_start_as_the_identity(wav2vec2_dir, wave, batch):
    plain = build_upstream(HFConfig(source=str(wav2vec2_dir), freeze="cnn")).eval()
    adapted = build_upstream(lora_cfg(wav2vec2_dir, lora_targets="q_proj,v_proj")).eval()
    trained = [name for name, p in adapted.named_parameters() if p.requires_grad]
    assert trained and all("lora_A" in name or "lora_B" in name for name in trained)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trained} == {"q_proj", "v_proj"}
    assert len(trained) == 2 * 2 * plain.model.config.num_hidden_layers  # A and B, q and v, every block
    wavs, lens = batch([wave(0.6, seed=1), wave(0.3, seed=2)], extra=200)
    with torch.no_grad():  # B starts at zero: the adapted encoder is the pretrained one
        for a, b in zip(adapted(wavs, lens).hidden, plain(wavs, lens).hidden, strict=True):
            torch.testing.assert_close(a, b)


def test_with_a_frozen_bottom_only_the_top_blocks_get_adapters_and_the_cache_keeps_its_key(
        tiny_whisper_dir, tmp_path):
    partial_cfg = WhisperConfig(source=str(tiny_whisper_dir), freeze="bottom:1")
    adapted_cfg = dataclasses.replace(partial_cfg, lora_rank=2)
    adapted = build_upstream(adapted_cfg)
    trained = [name for name, p in adapted.named_parameters() if p.requires_grad]
    assert trained and all(name.startswith("encoder.layers.1.") and ".lora_" in name for name in trained)
    partial = build_upstream(partial_cfg)
    caches = [FeatureCache.for_upstream(u, c, build_layer_selector(c, u), tmp_path)
              for u, c in ((partial, partial_cfg), (adapted, adapted_cfg))]
    assert caches[0].directory == caches[1].directory  # the same bottom: the same cached frames


def test_merging_gives_the_adapted_model_without_peft_layers(wav2vec2_dir, wave, batch):
    upstream = build_upstream(lora_cfg(wav2vec2_dir))
    with torch.no_grad():  # a trained adapter: B no longer zero
        for name, parameter in upstream.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    wavs, lens = batch([wave(0.5, seed=3), wave(0.8, seed=4)], extra=100)
    with torch.no_grad():
        before = upstream.eval()(wavs, lens).hidden
        assert merge_lora(upstream) == 2 * upstream.model.config.num_hidden_layers
        after = upstream(wavs, lens).hidden
    assert not has_lora(upstream)
    assert not any("lora" in name or "base_layer" in name for name in upstream.state_dict())
    assert not torch.allclose(before[-1], build_upstream(lora_cfg(wav2vec2_dir)).eval()(wavs, lens).hidden[-1])
    for a, b in zip(after, before, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_a_cv_fold_bundles_the_merged_model_which_scores_as_reported_and_exports(wav2vec2_dir, synth_iemocap_root,
                                                                              tmp_path):
    from safetensors.torch import load_file

    from serkit.bundle import load_bundle
    from serkit.cli import main
    from serkit.data.config import DataConfig
    from serkit.data.dataset import build_loader
    from serkit.data.prepare import read_corpus
    from serkit.export.onnx import export_onnx
    from serkit.training.predictions import evaluate_model

    config = tmp_path / "lora.yaml"
    config.write_text(yaml.safe_dump({
        "name": "lora", "seed": 0, "data": {"corpus": "iemocap", "max_batch_seconds": 40.0},
        "model": {"upstreams": [{"name": "hf", "source": str(wav2vec2_dir), "freeze": "cnn", "lora_rank": 4,
                                 "lora_alpha": 8.0}],
                  "aggregators": [{"name": "mean"}]},
        "train": {"max_epochs": 2, "top_k": 2, "lr_upstream": 1e-2, "progress_bar": False}}))
    out = tmp_path / "run"
    assert main(["cv", str(config), "--root", str(synth_iemocap_root), "--out", str(out), "--folds", "1",
                 "--quiet"]) == 0
    bundle = out / "fold_1" / "model"
    assert not any("lora" in key or "base_layer" in key for key in load_file(bundle / "model.safetensors"))
    model, cfg, labels = load_bundle(bundle)
    assert cfg.model.upstreams[0].lora_rank == 0 and not has_lora(model)
    source = build_upstream(HFConfig(source=str(wav2vec2_dir)))
    moved = [k for k, v in source.state_dict().items() if k.endswith(("q_proj.weight", "v_proj.weight"))
             and not torch.equal(model.upstreams[0].state_dict()[k], v)]
    assert moved  # the adapters were merged into the attention weights
    result = json.loads((out / "fold_1" / "result.json").read_text())
    data = read_corpus(DataConfig(corpus="iemocap", root=str(synth_iemocap_root), check=False))
    corpus, prepared = data.corpus, data.prepared
    loader = build_loader(corpus.split(prepared.utterances, 1).test, labels, cfg.data.max_batch_seconds, shuffle=False)
    assert np.isclose(evaluate_model(model, loader, labels).ua, result[result["reported"]]["test"]["ua"])
    pytest.importorskip("onnxruntime", reason="the export check needs the export extra")
    export_onnx(bundle, tmp_path / "model.onnx")
    assert (tmp_path / "model.onnx").is_file()


def test_a_model_with_lora_trains_on_cached_bottom_frames(tiny_whisper_dir, wave, batch, tmp_path):
    cfg = ModelConfig(upstreams=[WhisperConfig(source=str(tiny_whisper_dir), freeze="bottom:1",
                                                lora_rank=2)],
                      aggregators=[AggregatorConfig(name="stats")])
    model = build_model(cfg, num_classes=3)
    assert list(install_feature_cache(model, tmp_path)) == [0]
    wavs, lens = batch([wave(0.7, seed=5), wave(0.4, seed=6)], extra=50)
    model.train()
    model(wavs, lens).sum().backward()
    grads = {name for name, p in model.named_parameters() if p.grad is not None}
    assert any(".lora_A." in name for name in grads) and not any(name.startswith("upstreams.0.encoder.layers.0.")
                                                                 for name in grads)
