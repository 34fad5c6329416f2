"""The feature cache of frozen upstreams: hits equal misses equal the upstream itself, keys follow content and
upstream identity, padding cannot leak in, and a frozen upstream is not run again after the first epoch."""

from __future__ import annotations

import warnings

import pytest
import torch

from serkit.checkpoint import frozen_fingerprint
from serkit.downstream import AggregatorConfig
from serkit.errors import ConfigError
from serkit.model import ModelConfig, build_model
from serkit.upstream import LayerSelector, build_layer_selector, build_upstream
from serkit.upstream.cache import (
    FeatureCache,
    content_key,
    install_feature_cache,
    installed_caches,
    upstream_fingerprint,
)
from serkit.upstream.fbank import FbankConfig
from serkit.upstream.hf import HFConfig
from serkit.upstream.layers import stacked_layers
from serkit.upstream.whisper import WhisperConfig


class Counting:
    """Wraps an upstream's forward: counts calls and rows it was asked for."""

    def __init__(self, upstream):
        self.upstream, self.calls, self.rows = upstream, 0, 0
        self.forward = upstream.forward
        upstream.forward = self

    def __call__(self, wavs, wav_lens, texts=None):
        self.calls += 1
        self.rows += wavs.shape[0]
        return self.forward(wavs, wav_lens, texts)


def fbank(cmn: bool = False, layers: str = "last"):
    cfg = FbankConfig(layers=layers, freeze="all", cmn=cmn)
    return build_upstream(cfg), cfg


def whisper(directory, mode: str = "crop", layers: str = "weighted"):
    cfg = WhisperConfig(source=str(directory), layers=layers, freeze="all", whisper_input=mode)
    return build_upstream(cfg), cfg


def cache_for(upstream, cfg, directory, dtype="float32") -> FeatureCache:
    return FeatureCache.for_upstream(upstream, cfg, build_layer_selector(cfg, upstream), directory, dtype)


def test_miss_then_hit_equal_the_upstream_itself(tmp_path, wave, batch):
    upstream, cfg = fbank()
    cache = cache_for(upstream, cfg, tmp_path)
    wavs, lens = batch([wave(0.8, seed=1), wave(0.5, seed=2), wave(1.1, seed=3)], extra=500)
    with torch.no_grad():
        direct = upstream(wavs, lens)
    first = cache(upstream, wavs, lens)
    assert (cache.misses, cache.hits, cache.upstream_calls) == (3, 0, 1)
    second = cache(upstream, wavs, lens)
    assert (cache.misses, cache.hits, cache.upstream_calls) == (3, 3, 1)
    assert torch.equal(first.frame_lens, direct.frame_lens) and torch.equal(second.frame_lens, direct.frame_lens)
    for b, n in enumerate(direct.frame_lens.tolist()):  # float32 storage: exact on every real frame
        assert torch.equal(first.hidden[0][b, :n], direct.hidden[0][b, :n])
        assert torch.equal(second.hidden[0][b, :n], direct.hidden[0][b, :n])
    assert len(list(cache.directory.rglob("*.safetensors"))) == 3


def test_float16_storage_is_close_and_a_hit_equals_its_miss(tmp_path, tiny_whisper_dir, wave, batch):
    upstream, cfg = whisper(tiny_whisper_dir)
    cache = cache_for(upstream, cfg, tmp_path, dtype="float16")
    wavs, lens = batch([wave(0.9, seed=4), wave(0.4, seed=5)])
    with torch.no_grad():
        direct = upstream(wavs, lens)
    miss, hit = cache(upstream, wavs, lens), cache(upstream, wavs, lens)
    assert len(miss.hidden) == upstream.num_layers and all(h is not None for h in miss.hidden)  # weighted: all
    for layer, (m, h, d) in enumerate(zip(miss.hidden, hit.hidden, direct.hidden)):
        assert m.dtype == torch.float32 and torch.equal(m, h)  # epoch 1 and epoch 2 see the same numbers
        for b, n in enumerate(direct.frame_lens.tolist()):
            scale = d[b, :n].abs().max().item()
            assert (m[b, :n] - d[b, :n]).abs().max().item() <= 2e-3 * max(scale, 1.0), f"layer {layer}"


def test_layers_come_as_views_of_one_zero_padded_block_the_selector_mixes_in_place(tmp_path, tiny_whisper_dir,
                                                                                    wave, batch):
    """float16 entries are served as float32 views of one [L, B, T, D] block: the stored values exactly, zeros past
    each row's frames, and a weighted LayerSelector mixes that block itself (no stacked copy)."""
    upstream, cfg = whisper(tiny_whisper_dir)
    cache = cache_for(upstream, cfg, tmp_path, dtype="float16")
    wavs, lens = batch([wave(0.4, seed=5), wave(0.9, seed=4)], extra=300)
    out = cache(upstream, wavs, lens)
    block = out.hidden[0]._base
    assert block is not None and block.shape == (upstream.num_layers, *out.hidden[0].shape)
    assert stacked_layers(out.hidden) is block
    for b, key in enumerate(content_key(wavs[b, : int(n)]) for b, n in enumerate(lens.tolist())):
        stored, n = cache._read(key), int(out.frame_lens[b])
        for layer, frames in enumerate(stored):
            assert torch.equal(out.hidden[layer][b, :n], frames.float())
            assert not out.hidden[layer][b, n:].any()
    assert out.frame_lens.tolist()[0] < out.hidden[0].shape[1]  # the short row is padded
    for layer_norm in (False, True):
        selector = LayerSelector(upstream.num_layers, "weighted", layer_norm=layer_norm)
        assert torch.equal(selector(out.hidden), selector([h.clone() for h in out.hidden]))  # bit for bit


def test_same_audio_shares_an_entry_and_an_edit_misses(tmp_path, wave, batch):
    upstream, cfg = fbank()
    counting = Counting(upstream)
    cache = cache_for(upstream, cfg, tmp_path)
    audio = wave(0.6, seed=7)
    wavs, lens = batch([audio, wave(0.3, seed=8), audio.clone()], extra=300)  # rows 0 and 2: same samples
    out = cache(upstream, wavs, lens)
    assert counting.rows == 2  # the duplicate is computed once...
    n = int(out.frame_lens[0])
    assert torch.equal(out.hidden[0][0, :n], out.hidden[0][2, :n])  # ...and shared
    edited = audio.clone()
    edited[100] += 1e-3  # one sample changed: a different file content
    assert content_key(edited) != content_key(audio)
    assert content_key(audio) == content_key(audio.double())  # the key is of the float32 samples fed
    cache(upstream, edited[None], torch.tensor([edited.shape[0]]))
    assert counting.rows == 3 and cache.misses == 4


def test_upstream_identity_changes_the_key(tmp_path, tiny_whisper_dir):
    plain, plain_cfg = fbank(cmn=False)
    cmn, cmn_cfg = fbank(cmn=True)
    pad, pad_cfg = whisper(tiny_whisper_dir, "pad")
    crop, crop_cfg = whisper(tiny_whisper_dir, "crop")
    last, last_cfg = whisper(tiny_whisper_dir, "crop", layers="last")
    fingerprints = {upstream_fingerprint(u, c) for u, c in ((plain, plain_cfg), (cmn, cmn_cfg), (pad, pad_cfg),
                                                            (crop, crop_cfg))}
    assert len(fingerprints) == 4
    # other weights, same config: a different key too
    changed, changed_cfg = whisper(tiny_whisper_dir, "crop")
    with torch.no_grad():
        changed.encoder.layers[0].fc1.bias[0] += 0.5
    assert upstream_fingerprint(changed, changed_cfg) != upstream_fingerprint(crop, crop_cfg)
    # reloading the same checkpoint gives the same key (entries survive across runs)
    again, again_cfg = whisper(tiny_whisper_dir, "crop")
    assert upstream_fingerprint(again, again_cfg) == upstream_fingerprint(crop, crop_cfg)
    # the stored layer set and the dtype are part of the folder's key
    folders = {cache_for(u, c, tmp_path, d).directory for u, c, d in
               ((crop, crop_cfg, "float32"), (crop, crop_cfg, "float16"), (last, last_cfg, "float32"))}
    assert len(folders) == 3


def test_padding_never_reaches_the_cache(tmp_path, tiny_whisper_dir, wave, batch):
    """An utterance cached from inside a padded batch equals it encoded alone, and vice versa."""
    upstream, cfg = whisper(tiny_whisper_dir, "crop")
    short, long = wave(0.37, seed=1), wave(1.5, seed=2)
    with torch.no_grad():
        alone = upstream(short[None], torch.tensor([short.shape[0]]))
    for first in ("batch", "alone"):
        cache = cache_for(upstream, cfg, tmp_path / first)
        wavs, lens = batch([long, short], extra=700)
        calls = [lambda: cache(upstream, wavs, lens), lambda: cache(upstream, short[None], torch.tensor([short.shape[0]]))]
        outputs = [call() for call in (calls if first == "batch" else calls[::-1])]
        together, single = outputs if first == "batch" else outputs[::-1]
        n = int(alone.frame_lens[0])
        assert int(together.frame_lens[1]) == int(single.frame_lens[0]) == n
        for layer in range(upstream.num_layers):
            assert torch.equal(together.hidden[layer][1, :n], single.hidden[layer][0, :n])  # one entry, served twice
            assert (single.hidden[layer][0, :n] - alone.hidden[layer][0, :n]).abs().max() <= 1e-4


def test_model_with_cache_equals_model_without_and_keeps_its_weights(tmp_path, tiny_whisper_dir, wave, batch):
    cfg = ModelConfig(
        upstreams=[WhisperConfig(source=str(tiny_whisper_dir), layers="weighted", freeze="all",
                                  whisper_input="crop"),
                   FbankConfig(layers="last", freeze="all")],
        fusion="late", aggregators=[AggregatorConfig(name="mean")],
    )
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=3).eval()
    state, fingerprint = model.state_dict(), frozen_fingerprint(model)
    wavs, lens = batch([wave(0.9, seed=4), wave(0.4, seed=5)], extra=200)
    with torch.no_grad():
        plain = model(wavs, lens)
        caches = install_feature_cache(model, tmp_path, "float32")
        assert list(caches) == [0, 1]
        cached_miss, cached_hit = model(wavs, lens), model(wavs, lens)
    # bundles and checkpoints are the same with or without the cache: names, values, frozen fingerprint
    assert list(model.state_dict()) == list(state) and all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert frozen_fingerprint(model) == fingerprint
    assert torch.allclose(cached_miss, plain, atol=1e-5) and torch.equal(cached_miss, cached_hit)
    assert installed_caches(model) == list(caches.values()) and [c.hits for c in caches.values()] == [2, 2]
    # "last": only that layer is stored; the others are None, never fake data
    assert caches[1].layers == (0,)


def test_trained_and_text_upstreams_are_not_cached(tmp_path, tiny_whisper_dir):
    cfg = ModelConfig(upstreams=[WhisperConfig(source=str(tiny_whisper_dir), freeze="cnn")],
                      aggregators=[AggregatorConfig(name="mean")])
    model = build_model(cfg, num_classes=2)
    with pytest.warns(UserWarning, match="no upstream"):
        assert install_feature_cache(model, tmp_path) == {}
    assert installed_caches(model) == []
    with pytest.raises(ConfigError, match="freeze"):
        FeatureCache.for_upstream(model.upstreams[0], cfg.upstreams[0], model.layer_selectors[0], tmp_path)


def test_a_damaged_entry_is_recomputed(tmp_path, wave):
    upstream, cfg = fbank()
    cache = cache_for(upstream, cfg, tmp_path)
    audio = wave(0.5, seed=9)
    lens = torch.tensor([audio.shape[0]])
    good = cache(upstream, audio[None], lens)
    cache.path_for(content_key(audio)).write_bytes(b"not a safetensors file")
    with pytest.warns(UserWarning, match="unreadable"):
        again = cache(upstream, audio[None], lens)
    assert torch.equal(good.hidden[0], again.hidden[0]) and cache.misses == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache(upstream, audio[None], lens)  # rewritten: a clean hit now
    assert cache.hits == 1


def test_a_frozen_upstream_is_not_run_again_in_later_epochs(tmp_path, wave):
    """Two epochs of training over the same utterances, shuffled into other batches: the upstream runs in
    epoch 1 only."""
    cfg = ModelConfig(upstreams=[FbankConfig(layers="last", freeze="all", cmn=True)],
                      aggregators=[AggregatorConfig(name="mean")])
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=2)
    counting = Counting(model.upstreams[0])  # the upstream's own call, which the cache wraps
    (cache,) = install_feature_cache(model, tmp_path).values()
    waves = [wave(0.3 + 0.05 * i, seed=i) for i in range(8)]
    labels = torch.tensor([i % 2 for i in range(8)])
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    calls_per_epoch = []
    for epoch in range(2):
        before = counting.calls
        order = torch.randperm(8, generator=torch.Generator().manual_seed(epoch)).tolist()
        for start in (0, 4):
            rows = order[start:start + 4]
            wavs = torch.nn.utils.rnn.pad_sequence([waves[i] for i in rows], batch_first=True)
            lens = torch.tensor([waves[i].shape[0] for i in rows])
            loss = torch.nn.functional.cross_entropy(model(wavs, lens), labels[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        calls_per_epoch.append(counting.calls - before)
    assert calls_per_epoch == [2, 0]
    assert counting.rows == 8 and cache.hits == 8


def test_run_fold_encodes_each_utterance_once(tmp_path, synth_iemocap_root, monkeypatch):
    """The real training loop (Lightning, 2 epochs, validation, best/averaged evaluation) with
    train.feature_cache: the frozen filterbank sees every utterance of the fold exactly once."""
    from serkit.config import load_config
    from serkit.data.config import DataConfig
    from serkit.data.prepare import read_corpus
    from serkit.demo import DEMO_ECAPA
    from serkit.training.fold import run_fold
    from serkit.upstream.fbank import FbankUpstream

    rows_seen = []
    forward = FbankUpstream.forward

    def counting_forward(self, wavs, wav_lens, texts=None):
        rows_seen.append(wavs.shape[0])
        return forward(self, wavs, wav_lens, texts)

    monkeypatch.setattr(FbankUpstream, "forward", counting_forward)
    cfg = load_config({
        "model": {"upstreams": [{"name": "fbank", "layers": "last", "freeze": "all"}],
                  "aggregators": [{"name": "ecapa", **DEMO_ECAPA}]},
        "train": {"max_epochs": 2, "top_k": 2, "progress_bar": False, "feature_cache": str(tmp_path / "cache")},
        "data": {"corpus": "iemocap", "max_batch_seconds": 40.0},
    })
    data = read_corpus(DataConfig(corpus="iemocap", root=str(synth_iemocap_root), check=False))
    corpus, prepared, labels = data.corpus, data.prepared, data.classes
    split = corpus.split(prepared.utterances, 1)
    result = run_fold(cfg, split, labels, tmp_path / "fold_1")
    distinct = len({utt.id for utt in split.train + split.valid + split.test})
    assert sum(rows_seen) == distinct  # 2 epochs + 4 evaluations, yet each utterance encoded once
    assert len(list((tmp_path / "cache").rglob("*.safetensors"))) == distinct
    assert result.averaged is not None and result.test.n == len(split.test)


def test_the_registry_key_of_the_built_class_not_the_config_s_name_is_hashed(tiny_whisper_dir):
    """`name: hf` with a Whisper source builds the whisper upstream: it must find what `name: whisper` stored
    (the probe and a cv config may name it either way)."""
    from serkit.upstream import build_upstream

    named, named_cfg = whisper(tiny_whisper_dir, "pad")
    via_hf_cfg = HFConfig(source=str(tiny_whisper_dir), layers="weighted", freeze="all")
    via_hf = build_upstream(via_hf_cfg)
    assert type(via_hf) is type(named)
    assert upstream_fingerprint(via_hf, via_hf_cfg) == upstream_fingerprint(named, named_cfg)
