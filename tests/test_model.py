"""SERModel from a config: fusion none / early / late, padding invariance, gradients, parameter groups, misconfigs.

Fake upstreams (registered under test-only keys) keep these tests independent of any checkpoint; the last
tests build real ones (the fbank and a tiny wav2vec2 saved and loaded through from_pretrained).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from serkit.downstream import AggregatorConfig, ClassifierConfig
from serkit.downstream.ecapa import EcapaConfig
from serkit.errors import ConfigError
from serkit.model import ModelConfig, build_model, check_model_config
from serkit.upstream import UPSTREAMS, Upstream, UpstreamConfig, UpstreamOutput
from serkit.upstream.fbank import FbankConfig
from serkit.upstream.hf import HFConfig

REPO = Path(__file__).resolve().parents[1]
TINY_ECAPA = EcapaConfig(channels=32, mfa_channels=48, embedding_dim=16, res2net_scale=4, se_channels=8, attention_channels=8
)
MEAN = AggregatorConfig(name="mean")


class FakeAudioUpstream(Upstream):
    """wavs [B, S] -> 3 layers [B, S // hop, dim] (a linear map of each hop of samples, then two tanh layers);
    frame_rate 16000 / hop. Padding frames are NaN: any read of them shows up downstream."""

    Config = HFConfig  # source "hop:dim"

    def __init__(self, hop: int, dim: int):
        super().__init__()
        self.hop, self.num_layers, self.hidden_size, self.frame_rate = hop, 3, dim, 16000 / hop
        self.encoder = nn.Linear(hop, dim)  # the "CNN feature encoder" of freeze="cnn"
        self.layers = nn.ModuleList([nn.Linear(dim, dim), nn.Linear(dim, dim)])

    @classmethod
    def from_config(cls, cfg: UpstreamConfig, pretrained: bool = True) -> "FakeAudioUpstream":
        hop, dim = (int(part) for part in cfg.source.split(":"))  # source "hop:dim", e.g. "160:20" (100 Hz, D=20)
        return cls(hop, dim)

    def forward(self, wavs, wav_lens, texts=None) -> UpstreamOutput:
        steps = wavs.shape[1] // self.hop
        hidden = [self.encoder(wavs[:, : steps * self.hop].reshape(wavs.shape[0], steps, self.hop))]
        for layer in self.layers:
            hidden.append(torch.tanh(layer(hidden[-1])))
        frame_lens = wav_lens // self.hop
        padding = (torch.arange(steps)[None, :] >= frame_lens[:, None]).unsqueeze(-1)
        return UpstreamOutput([h.masked_fill(padding, float("nan")) for h in hidden], frame_lens)

    def feature_encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters())


class FakeTextUpstream(Upstream):
    """texts -> 2 layers [B, max chars, dim] (a character embedding, then a tanh layer); frame_rate 0."""

    modality = "text"
    Config = HFConfig  # source "dim"

    def __init__(self, dim: int):
        super().__init__()
        self.num_layers, self.hidden_size, self.frame_rate = 2, dim, 0.0
        self.embedding = nn.Embedding(64, dim)
        self.layer = nn.Linear(dim, dim)

    @classmethod
    def from_config(cls, cfg: UpstreamConfig, pretrained: bool = True) -> "FakeTextUpstream":
        return cls(int(cfg.source))

    def forward(self, wavs, wav_lens, texts=None) -> UpstreamOutput:
        assert texts is not None and len(texts) == wavs.shape[0]
        frame_lens = torch.tensor([len(text) for text in texts])
        ids = torch.zeros(len(texts), int(frame_lens.max()), dtype=torch.long)
        for row, text in enumerate(texts):
            ids[row, : len(text)] = torch.tensor([ord(c) % 64 for c in text])
        first = self.embedding(ids)
        padding = (torch.arange(ids.shape[1])[None, :] >= frame_lens[:, None]).unsqueeze(-1)
        hidden = [first, torch.tanh(self.layer(first))]
        return UpstreamOutput([h.masked_fill(padding, float("nan")) for h in hidden], frame_lens)


for _key, _cls in (("test-fake-audio", FakeAudioUpstream), ("test-fake-text", FakeTextUpstream)):
    if _key not in UPSTREAMS:
        UPSTREAMS.register(_key)(_cls)


def audio(source: str, layers: str = "weighted", freeze: str = "none") -> UpstreamConfig:
    return HFConfig(name="test-fake-audio", source=source, layers=layers, freeze=freeze)


def text(dim: int = 24) -> UpstreamConfig:
    return HFConfig(name="test-fake-text", source=str(dim), layers="last", freeze="none")


CONFIGS = {
    "none": (ModelConfig(upstreams=[audio("160:20")], aggregators=[TINY_ECAPA]), 16),
    "early": (ModelConfig(upstreams=[audio("160:20"), audio("320:12")], fusion="early", aggregators=[TINY_ECAPA]), 16),
    "late": (
        ModelConfig(upstreams=[audio("160:20"), text(24)], fusion="late", aggregators=[TINY_ECAPA, MEAN]),
        16 + 24,
    ),
    "late-replicated": (
        ModelConfig(upstreams=[audio("320:12"), audio("160:20")], fusion="late", aggregators=[MEAN]),
        12 + 20,  # one mean-pooling config, replicated for each upstream
    ),
}


def _batch(samples: list[int], seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    wavs = torch.zeros(len(samples), max(samples))
    for row, length in enumerate(samples):
        wavs[row, :length] = 0.1 * torch.randn(length, generator=generator)
    texts = ["so happy today", "no", "why would you say that"][: len(samples)]
    return wavs, torch.tensor(samples), texts


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_build_from_config_gives_logits_and_embeddings(name):
    cfg, embedding_dim = CONFIGS[name]
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=4).eval()
    wavs, wav_lens, texts = _batch([4800, 3520, 2000])
    with torch.no_grad():
        embedding = model.embed(wavs, wav_lens, texts)
        logits = model(wavs, wav_lens, texts)
    assert model.embedding_dim == embedding_dim
    assert embedding.shape == (3, embedding_dim)
    assert logits.shape == (3, 4)
    assert torch.isfinite(logits).all()  # the NaN padding of the fakes is never read
    torch.testing.assert_close(logits, model.classifier(embedding))  # embed() is the classifier's input


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_alone_equals_inside_padded_batch(name):
    cfg, _ = CONFIGS[name]
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=4).eval()
    wavs, wav_lens, texts = _batch([4800, 3520, 1280])
    with torch.no_grad():
        batched_logits = model(wavs, wav_lens, texts)
        batched_embedding = model.embed(wavs, wav_lens, texts)
        for row, length in enumerate(wav_lens.tolist()):
            one = (wavs[row : row + 1, :length], wav_lens[row : row + 1], texts[row : row + 1])
            torch.testing.assert_close(batched_embedding[row : row + 1], model.embed(*one), rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(batched_logits[row : row + 1], model(*one), rtol=1e-4, atol=1e-5)


def test_early_fusion_aligns_100hz_and_50hz_streams():
    cfg, _ = CONFIGS["early"]
    model = build_model(cfg, num_classes=4)
    wavs, wav_lens, texts = _batch([4800, 3520, 2000])
    frames, frame_lens = model.aggregate.concat(model.streams(wavs, wav_lens, texts))
    # 100 Hz: S // 160 frames, halved (rounding up); 50 Hz: S // 320 frames; the shorter wins
    expected = [min(-(-(s // 160) // 2), s // 320) for s in wav_lens.tolist()]
    assert frame_lens.tolist() == expected
    assert frames.shape == (3, max(expected), 20 + 12)


def test_gradients_reach_downstream_and_unfrozen_upstream():
    cfg = ModelConfig(upstreams=[audio("160:20", freeze="cnn"), text()], fusion="late", aggregators=[TINY_ECAPA, MEAN])
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=3).train()
    wavs, wav_lens, texts = _batch([4800, 3520, 2000])
    nn.functional.cross_entropy(model(wavs, wav_lens, texts), torch.tensor([0, 2, 1])).backward()
    groups = model.parameter_groups()
    downstream = {name for name, p in model.named_parameters() if any(p is q for q in groups["downstream"])}
    no_grad = [name for name, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert no_grad == []
    assert any(name.startswith("layer_selectors.0") for name in downstream)  # layer weights train with the head
    assert any(name.startswith("classifier") for name in downstream)
    assert any(name.startswith("aggregate.aggregators.0") for name in downstream)
    # freeze="cnn" froze the fake's feature encoder, and only it
    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    assert frozen == ["upstreams.0.encoder.weight", "upstreams.0.encoder.bias"]


def test_parameter_groups_split_every_parameter_once():
    cfg, _ = CONFIGS["late"]
    model = build_model(cfg, num_classes=4)
    groups = model.parameter_groups()
    upstream_ids = {id(p) for p in groups["upstream"]}
    downstream_ids = {id(p) for p in groups["downstream"]}
    assert upstream_ids.isdisjoint(downstream_ids)
    assert upstream_ids | downstream_ids == {id(p) for p in model.parameters()}
    assert upstream_ids == {id(p) for p in model.upstreams.parameters()}


def test_frozen_upstream_stays_in_eval_mode_while_the_model_trains():
    cfg = ModelConfig(upstreams=[audio("160:20", freeze="all")], aggregators=[TINY_ECAPA])
    model = build_model(cfg, num_classes=4)
    model.train()
    assert model.training and model.aggregate.training
    assert not model.upstreams[0].training
    assert not any(p.requires_grad for p in model.upstreams.parameters())


@pytest.mark.parametrize(
    "cfg, pattern",
    [
        (ModelConfig(upstreams=[audio("160:20"), audio("320:12")], fusion="late", aggregators=[MEAN] * 3),
         r"model\.aggregators.*3 entries.*1 or 2"),
        (ModelConfig(upstreams=[audio("320:12"), text()], fusion="early", aggregators=[MEAN]),
         r"model\.upstreams\[1\].*text.*late"),
        (ModelConfig(upstreams=[audio("160:20")], aggregators=[AggregatorConfig(name="attentive-lstm")]),
         r"model\.aggregators\[0\]\.name.*'attentive-lstm'.*known: .*ecapa"),
        (ModelConfig(upstreams=[audio("160:20"), audio("320:12")], aggregators=[MEAN]),
         r"model\.upstreams.*2 entries.*'none'"),
        (ModelConfig(upstreams=[audio("160:20")], fusion="middle"), r"model\.fusion.*'middle'"),
        (ModelConfig(upstreams=[UpstreamConfig(name="no-such-encoder")]),
         r"model\.upstreams\[0\]\.name.*'no-such-encoder'"),
        (ModelConfig(upstreams=[audio("160:20", layers="7")]), r"model\.upstreams\[0\].*layers"),
    ],
)
def test_misconfig_names_the_key(cfg, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build_model(cfg, num_classes=4)


def test_paper_configs_are_valid_model_configs():
    """configs/paper/*.yaml (experiments 1-11) parse into ModelConfig and pass the structural checks."""
    paths = sorted((REPO / "configs" / "paper").glob("*.yaml"))
    assert len(paths) >= 11
    fusions = set()
    for path in paths:
        section = OmegaConf.load(path).model
        cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelConfig), section))
        check_model_config(cfg)
        fusions.add(cfg.fusion)
    assert fusions == {"none", "early", "late"}


def test_model_config_from_yaml_keys():
    cfg = OmegaConf.to_object(
        OmegaConf.merge(
            OmegaConf.structured(ModelConfig),
            {"upstreams": [{"name": "fbank"}, {"name": "text"}], "fusion": "late",
             "aggregators": [{"name": "ecapa", "channels": 64}, {"name": "mean"}], "classifier": {"dropout": 0.1}},
        )
    )
    assert isinstance(cfg.aggregators[0], AggregatorConfig) and cfg.aggregators[0].channels == 64
    assert isinstance(cfg.classifier, ClassifierConfig) and cfg.classifier.dropout == 0.1


# --- real upstreams: the Kaldi fbank (100 Hz) and a tiny wav2vec2 (50 Hz) loaded with from_pretrained ----------


@pytest.fixture(scope="module")
def tiny_wav2vec2_dir(tmp_path_factory) -> str:
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(0)
    config = Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48, conv_dim=(16,) * 7,
        feat_extract_norm="layer", do_stable_layer_norm=True, num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, mask_time_prob=0.0,
    )
    directory = tmp_path_factory.mktemp("tiny-wav2vec2")
    Wav2Vec2Model(config).save_pretrained(directory)
    Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True).save_pretrained(directory)
    return str(directory)


def test_real_fbank_and_tiny_wav2vec2_early_fusion(tiny_wav2vec2_dir):
    cfg = ModelConfig(
        upstreams=[FbankConfig(layers="last", freeze="all"),
                   HFConfig(source=tiny_wav2vec2_dir, layers="weighted", freeze="cnn")],
        fusion="early",
        aggregators=[TINY_ECAPA],
    )
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=4).eval()
    wavs, wav_lens, texts = _batch([8000, 5600, 3200])
    with torch.no_grad():
        frames, frame_lens = model.aggregate.concat(model.streams(wavs, wav_lens, texts))
        fbank_lens = [(s - 400) // 160 + 1 for s in wav_lens.tolist()]
        w2v2_lens = model.upstreams[1].model._get_feat_extract_output_lengths(wav_lens).tolist()
        expected = [min(-(-f // 2), int(w)) for f, w in zip(fbank_lens, w2v2_lens)]
        assert frame_lens.tolist() == expected
        assert frames.shape == (3, max(expected), 80 + 32)
        logits = model(wavs, wav_lens, texts)
        for row, length in enumerate(wav_lens.tolist()):
            alone = model(wavs[row : row + 1, :length], wav_lens[row : row + 1])
            torch.testing.assert_close(logits[row : row + 1], alone, rtol=1e-4, atol=1e-4)


def test_real_tiny_wav2vec2_mean_pooling_trains(tiny_wav2vec2_dir):
    cfg = ModelConfig(upstreams=[HFConfig(source=tiny_wav2vec2_dir, layers="weighted", freeze="cnn")])
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=4).train()
    wavs, wav_lens, _ = _batch([8000, 5600, 3200])
    nn.functional.cross_entropy(model(wavs, wav_lens), torch.tensor([0, 1, 3])).backward()
    assert model.layer_selectors[0].weights.grad.abs().sum() > 0
    assert model.classifier.linear.weight.grad.abs().sum() > 0
    layers = [(n, p) for n, p in model.upstreams.named_parameters() if ".encoder.layers." in n]
    assert layers and all(p.grad is not None and p.grad.abs().sum() > 0 for _, p in layers)  # the encoder fine-tunes
    assert not any(p.requires_grad for p in model.upstreams[0].feature_encoder_parameters())  # freeze="cnn"
