import pytest
import torch
from torch import nn

from serkit.errors import ConfigError
from serkit.upstream import UpstreamConfig, apply_freeze, build_layer_selector, build_upstream
from serkit.upstream.hf import HFConfig
from serkit.upstream.text import TextConfig
from serkit.upstream.whisper import WhisperConfig


class TinySER(nn.Module):
    """upstream -> layer selector -> masked mean -> linear: just enough model to train one step."""

    def __init__(self, cfg: UpstreamConfig):
        super().__init__()
        self.upstream = build_upstream(cfg)
        self.selector = build_layer_selector(cfg, self.upstream)
        self.head = nn.Linear(self.upstream.hidden_size, 2)

    def forward(self, wavs, wav_lens, texts=None):
        out = self.upstream(wavs, wav_lens, texts)
        frames = self.selector(out.hidden)  # [B, T, D]
        mask = (torch.arange(frames.shape[1])[None] < out.frame_lens[:, None]).unsqueeze(-1)
        pooled = (frames * mask).sum(1) / out.frame_lens[:, None]
        return self.head(pooled)


def one_step(model: TinySER, wavs, wav_lens) -> dict[str, torch.Tensor]:
    """Train one SGD step on all parameters; returns a snapshot of the parameters from before it."""
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    model.train()
    optimiser = torch.optim.SGD(model.parameters(), lr=1.0)
    loss = nn.functional.cross_entropy(model(wavs, wav_lens), torch.tensor([0, 1]))
    loss.backward()
    optimiser.step()
    return before


def changed(model, before, prefix) -> dict[str, bool]:
    return {n: not torch.equal(p.detach(), before[n]) for n, p in model.named_parameters() if n.startswith(prefix)}


@pytest.fixture
def audio(wave, batch):
    return batch([wave(0.6, seed=1), wave(0.4, seed=2)])


def config(directory, freeze):
    return HFConfig(source=str(directory), freeze=freeze, layers="weighted")


@pytest.mark.parametrize("policy", ["all", "frozen"])
def test_frozen_upstream_gets_no_gradient_never_changes_and_stays_in_eval_mode(policy, tiny_speech_dirs, audio):
    torch.manual_seed(0)
    model = TinySER(config(tiny_speech_dirs["wav2vec2-layer"], policy))  # dropout 0.1 configured
    before = one_step(model, *audio)
    assert model.training and model.selector.training
    assert not any(module.training for module in model.upstream.modules())
    assert all(p.grad is None and not p.requires_grad for p in model.upstream.parameters())
    assert not any(changed(model, before, "upstream.").values())
    assert model.selector.weights.grad.abs().sum() > 0 and all(changed(model, before, "selector.").values())
    with torch.no_grad():  # train mode, yet no dropout: the same input gives the same output twice
        torch.testing.assert_close(model(*audio), model(*audio), atol=0, rtol=0)


@pytest.mark.parametrize("variant", ["wav2vec2-group", "hubert-layer", "wavlm-group", "data2vec-audio"])
def test_cnn_policy_keeps_the_feature_encoder_while_the_transformer_trains(tiny_speech_dirs, audio, variant):
    # every family: the bare HubertModel, for one, has no freeze_feature_encoder() of its own
    torch.manual_seed(0)
    model = TinySER(config(tiny_speech_dirs[variant], "cnn"))
    before = one_step(model, *audio)
    cnn = changed(model, before, "upstream.model.feature_extractor.")
    assert cnn and not any(cnn.values())
    assert all(p.grad is None for p in model.upstream.feature_encoder_parameters())
    layers = changed(model, before, "upstream.model.encoder.layers.")
    assert layers and all(layers.values())
    assert all(changed(model, before, "selector.").values())
    assert model.upstream.training


def test_none_policy_trains_the_feature_encoder_too(tiny_speech_dirs, audio):
    torch.manual_seed(0)
    model = TinySER(config(tiny_speech_dirs["wav2vec2-group"], "none"))
    before = one_step(model, *audio)
    assert any(changed(model, before, "upstream.model.feature_extractor.").values())


def test_frozen_whisper_and_text_upstreams(tiny_whisper_dir, tiny_bert_dir):
    for cfg in [WhisperConfig(source=str(tiny_whisper_dir), freeze="all"),
                TextConfig(source=str(tiny_bert_dir), freeze="all")]:
        upstream = build_upstream(cfg)
        nn.ModuleList([upstream]).train()
        assert not upstream.training and not any(p.requires_grad for p in upstream.parameters())


def test_unknown_policy_is_a_config_error(tiny_speech_dirs):
    upstream = build_upstream(config(tiny_speech_dirs["wav2vec2-group"], "none"))
    with pytest.raises(ConfigError, match="upstream.freeze='encoder'"):
        apply_freeze(upstream, "encoder")
