"""Partial fine-tuning, freeze "bottom:N" (issue 11 section 3): the frozen bottom (input embedding + first N
blocks) never trains and never runs dropout, its layers can be cached, and the top blocks train on the cache
exactly as on the live bottom. The tiny Whisper (tests/upstream/conftest.py) has 2 blocks: "bottom:1".
"""

from __future__ import annotations

import pytest
import torch

from serkit.checkpoint import frozen_keys
from serkit.downstream import AggregatorConfig
from serkit.errors import ConfigError
from serkit.model import ModelConfig, build_model
from serkit.upstream import build_layer_selector, build_upstream
from serkit.upstream.cache import FeatureCache, install_feature_cache, upstream_fingerprint
from serkit.upstream.whisper import WhisperConfig

BOTTOM = ("encoder.conv1.", "encoder.conv2.", "encoder.embed_positions.", "encoder.layers.0.")


def whisper(directory, freeze="bottom:1", mode="pad", layers="weighted"):
    cfg = WhisperConfig(source=str(directory), freeze=freeze, whisper_input=mode, layers=layers)
    return build_upstream(cfg), cfg


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.mark.parametrize("policy, message", [
    ("bottom:0", "whole number >= 1"), ("bottom:two", "whole number >= 1"), ("bottom:", "whole number >= 1"),
    ("bottom:2", "must lie in [1, 1]"), ("top:1", "expected one of"),
])
def test_bad_partial_policies_are_config_errors_naming_the_key(tiny_whisper_dir, policy, message):
    with pytest.raises(ConfigError, match="upstream.freeze") as error:
        whisper(tiny_whisper_dir, freeze=policy)
    assert message in str(error.value)


@pytest.mark.parametrize("name", ["fbank", "hf"])
def test_upstreams_without_partial_freezing_say_so(name, tiny_speech_dirs):
    source = None if name == "fbank" else str(tiny_speech_dirs["wav2vec2-layer"])
    with pytest.raises(ConfigError, match="supported by the whisper upstream only"):
        build_upstream({"name": name, "freeze": "bottom:1", **({"source": source} if source else {})})


def test_only_the_top_blocks_and_final_norm_train(tiny_whisper_dir):
    upstream, _ = whisper(tiny_whisper_dir)
    trained = {name for name, p in upstream.named_parameters() if p.requires_grad}
    assert trained and all(name.startswith(("encoder.layers.1.", "encoder.layer_norm.")) for name in trained)
    assert {name for name, _ in upstream.named_parameters()} - trained == {
        name for name, _ in upstream.named_parameters() if name.startswith(BOTTOM)}
    upstream.train()
    assert upstream.training and upstream.encoder.layers[1].training
    assert not any(m.training for m in (upstream.encoder.conv1, upstream.encoder.layers[0]))


def test_a_backward_pass_reaches_the_top_blocks_only(tiny_whisper_dir, wave, batch):
    upstream, _ = whisper(tiny_whisper_dir)
    wavs, lens = batch([wave(0.7, seed=1), wave(0.4, seed=2)], extra=300)
    out = upstream.train()(wavs, lens)
    sum(layer.sum() for layer in out.hidden).backward()
    for name, parameter in upstream.named_parameters():
        assert (parameter.grad is not None) == name.startswith(("encoder.layers.1.", "encoder.layer_norm.")), name


def test_crop_mode_split_equals_the_unsplit_encoder(tiny_whisper_dir, wave, batch):
    """In crop mode the top blocks already see real frames only, so splitting changes nothing."""
    split, _ = whisper(tiny_whisper_dir, mode="crop")
    whole, _ = whisper(tiny_whisper_dir, freeze="none", mode="crop")
    wavs, lens = batch([wave(1.1, seed=3), wave(0.3, seed=4)], extra=500)
    with torch.no_grad():
        a, b = split.eval()(wavs, lens), whole.eval()(wavs, lens)
    assert a.frame_lens.tolist() == b.frame_lens.tolist()
    for x, y in zip(a.hidden, b.hidden, strict=True):
        for row, n in enumerate(a.frame_lens.tolist()):
            torch.testing.assert_close(x[row, :n], y[row, :n], atol=1e-5, rtol=1e-5)


def test_pad_mode_bottom_is_the_stock_window_and_an_utterance_is_the_same_alone(tiny_whisper_dir, wave, batch):
    split, _ = whisper(tiny_whisper_dir)
    frozen, _ = whisper(tiny_whisper_dir, freeze="all")
    short, long = wave(0.45, seed=5), wave(1.3, seed=6)
    wavs, lens = batch([long, short], extra=900)
    with torch.no_grad():
        prefix = split.eval().encode_prefix(wavs, lens)
        stock = frozen(wavs, lens)
        together = split(wavs, lens)
        alone = split(short[None], torch.tensor([short.shape[0]]))
    assert len(prefix.hidden) == 2 and len(together.hidden) == 3
    for layer in range(2):  # the bottom's layers are exactly the full window's (pad mode)
        torch.testing.assert_close(prefix.hidden[layer], stock.hidden[layer], atol=1e-5, rtol=1e-5)
    n = int(alone.frame_lens[0])
    for x, y in zip(together.hidden, alone.hidden, strict=True):
        torch.testing.assert_close(x[1, :n], y[0, :n], atol=1e-5, rtol=1e-5)


def test_the_cache_holds_the_bottom_only_and_its_key_ignores_the_trained_top(tiny_whisper_dir, tmp_path):
    upstream, cfg = whisper(tiny_whisper_dir)
    cache = FeatureCache.for_upstream(upstream, cfg, build_layer_selector(cfg, upstream), tmp_path)
    assert cache.layers == (0, 1) and cache.num_layers == 2
    key = upstream_fingerprint(upstream, cfg)
    with torch.no_grad():
        upstream.encoder.layers[1].fc1.weight.add_(1.0)  # a training step on the top block
    assert upstream_fingerprint(upstream, cfg) == key
    with torch.no_grad():
        upstream.encoder.layers[0].fc1.weight.add_(1.0)  # a different bottom: different frames
    assert upstream_fingerprint(upstream, cfg) != key
    one_layer, one_cfg = whisper(tiny_whisper_dir, layers="2")
    assert FeatureCache.for_upstream(one_layer, one_cfg, build_layer_selector(one_cfg, one_layer), tmp_path).layers == (1,)
    frozen, frozen_cfg = whisper(tiny_whisper_dir, freeze="all")
    assert upstream_fingerprint(frozen, frozen_cfg) != upstream_fingerprint(*whisper(tiny_whisper_dir))


def test_a_model_trains_its_top_blocks_on_the_cache_as_on_the_live_bottom(tiny_whisper_dir, wave, batch, tmp_path):
    cfg = ModelConfig(upstreams=[WhisperConfig(source=str(tiny_whisper_dir), freeze="bottom:1")],
                      aggregators=[AggregatorConfig(name="stats")])
    torch.manual_seed(0)
    live = build_model(cfg, num_classes=3)
    cached = build_model(cfg, num_classes=3)
    cached.load_state_dict(live.state_dict())
    (cache,) = install_feature_cache(cached, tmp_path, dtype="float32").values()
    wavs, lens = batch([wave(0.8, seed=7), wave(0.5, seed=8)], extra=100)
    for epoch in range(2):  # a miss, then a hit: both equal the live model, gradients included
        for model in (live, cached):
            model.train().zero_grad()
            model(wavs, lens).sum().backward()
        torch.testing.assert_close(cached(wavs, lens), live(wavs, lens), atol=1e-5, rtol=1e-5)
        for (name, a), b in zip(live.named_parameters(), cached.parameters()):
            assert (a.grad is None) == (b.grad is None), name
            if a.grad is not None:
                torch.testing.assert_close(b.grad, a.grad, atol=1e-5, rtol=1e-4)
    assert cache.stats()["hits"] >= 2 and cache.misses == 2
    frozen = frozen_keys(cached)
    assert frozen and all(key.startswith(tuple(f"upstreams.0.{p}" for p in BOTTOM)) for key in frozen)


def test_a_cv_fold_trains_only_the_top_and_its_bundle_loads_and_predicts(tiny_whisper_dir, synth_iemocap_root,
                                                                       tmp_path):
    """`serkit cv` with freeze bottom:1 and the feature cache: the bundle's bottom is the source's, its top
    block moved, and the bundle predicts (its config rebuilds the split encoder)."""
    import yaml
    from safetensors.torch import load_file

    from serkit.cli import main
    from serkit.inference import EmotionRecognizer

    config = tmp_path / "partial.yaml"
    config.write_text(yaml.safe_dump({
        "name": "partial", "seed": 0, "data": {"corpus": "iemocap", "max_batch_seconds": 40.0},
        "model": {"upstreams": [{"name": "whisper", "source": str(tiny_whisper_dir), "freeze": "bottom:1",
                                 "whisper_input": "pad", "layer_norm": True}],
                  "aggregators": [{"name": "stats"}]},
        "train": {"max_epochs": 2, "top_k": 2, "lr_upstream": 1e-3, "progress_bar": False,
                  "feature_cache": str(tmp_path / "cache")}}))
    out = tmp_path / "run"
    assert main(["cv", str(config), "--root", str(synth_iemocap_root), "--out", str(out), "--folds", "1",
                 "--quiet"]) == 0
    bundle = out / "fold_1" / "model"
    weights = load_file(bundle / "model.safetensors")
    source, _ = whisper(tiny_whisper_dir)
    original = {f"upstreams.0.{k}": v for k, v in source.state_dict().items()}
    bottom = [k for k in original if k.removeprefix("upstreams.0.").startswith(BOTTOM)]
    top = [k for k in original if k.startswith("upstreams.0.encoder.layers.1.")]
    assert bottom and all(torch.equal(weights[k], original[k]) for k in bottom)
    assert any(not torch.equal(weights[k], original[k]) for k in top)
    assert list((tmp_path / "cache").rglob("*.safetensors"))  # the bottom was cached
    recognizer = EmotionRecognizer.load(bundle)
    clip = next(synth_iemocap_root.rglob("*.wav"))
    prediction = recognizer.predict(clip)
    assert abs(sum(prediction.probabilities.values()) - 1) < 1e-4
