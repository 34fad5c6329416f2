import math

import pytest
import torch
import transformers
from safetensors.torch import save_file
from transformers import WhisperFeatureExtractor
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from serkit.errors import ConfigError
from serkit.upstream import build_upstream
from serkit.upstream.hf import HFConfig
from serkit.upstream.whisper import ENCODER_KEY_MAPPING, WhisperConfig, WhisperUpstream

WINDOW = 32000  # the tiny model's window: 2 s (conftest.TINY_WHISPER_WINDOW_SECONDS)


def load(directory, whisper_input="pad", freeze="none") -> WhisperUpstream:
    cfg = WhisperConfig(source=str(directory), freeze=freeze, whisper_input=whisper_input)
    return build_upstream(cfg).eval()


def direct_transformers_call(directory, audio: torch.Tensor) -> list[torch.Tensor]:
    """WhisperFeatureExtractor + WhisperEncoder exactly as ../shared/models/whisper-*-encoder/README.md loads them."""
    extractor = WhisperFeatureExtractor.from_pretrained(directory)
    encoder = WhisperEncoder.from_pretrained(directory, dtype=torch.float32, key_mapping=ENCODER_KEY_MAPPING).eval()
    features = extractor(audio.numpy(), sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        return list(encoder(features, output_hidden_states=True).hidden_states)


@pytest.mark.parametrize("mode", ["pad", "crop"])
def test_utterance_alone_equals_it_inside_a_padded_batch(mode, tiny_whisper_dir, wave, batch, same_real_frames):
    upstream = load(tiny_whisper_dir, mode)
    short, long = wave(0.37, seed=1), wave(1.5, seed=2)
    wavs, lens = batch([long, short], extra=700)
    with torch.no_grad():
        together = upstream(wavs, lens)
        alone = upstream(short[None], torch.tensor([short.shape[0]]))
    same_real_frames(together, 1, alone)
    assert len(together.hidden) == upstream.num_layers == 3
    assert together.frame_lens.tolist() == [75, math.ceil(short.shape[0] / 320)]


def test_pad_mode_equals_a_direct_transformers_call_cropped(tiny_whisper_dir, wave):
    audio = wave(0.9, seed=3)
    with torch.no_grad():
        ours = load(tiny_whisper_dir)(audio[None], torch.tensor([audio.shape[0]]))
    reference = direct_transformers_call(tiny_whisper_dir, audio)
    n = int(ours.frame_lens[0])
    assert n == 45
    for mine, theirs in zip(ours.hidden, reference, strict=True):
        torch.testing.assert_close(mine[0], theirs[0, :n], atol=1e-5, rtol=1e-5)


def test_crop_mode_equals_pad_mode_on_a_full_window_and_differs_on_a_short_clip(tiny_whisper_dir, wave):
    pad, crop = load(tiny_whisper_dir, "pad"), load(tiny_whisper_dir, "crop")
    full, short = wave(2.0, seed=4), wave(0.5, seed=5)
    with torch.no_grad():
        for mine, theirs in zip(crop(full[None], torch.tensor([WINDOW])).hidden, pad(full[None], torch.tensor([WINDOW])).hidden):
            torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)
        a = crop(short[None], torch.tensor([short.shape[0]])).hidden[-1]
        b = pad(short[None], torch.tensor([short.shape[0]])).hidden[-1]
    assert a.shape == b.shape and (a - b).abs().max() > 1e-3  # attention no longer sees the padded tail


@pytest.mark.parametrize("mode", ["pad", "crop"])
def test_inputs_longer_than_the_window_are_encoded_in_chunks_and_concatenated(mode, tiny_whisper_dir, wave):
    upstream = load(tiny_whisper_dir, mode)
    audio = wave(4.7, seed=6)  # 2 s + 2 s + 0.7 s
    with torch.no_grad():
        whole = upstream(audio[None], torch.tensor([audio.shape[0]]))
        parts = [upstream(part[None], torch.tensor([part.shape[0]])) for part in audio.split(WINDOW)]
    assert int(whole.frame_lens[0]) == math.ceil(audio.shape[0] / 320) == sum(int(p.frame_lens[0]) for p in parts)
    for layer, mine in enumerate(whole.hidden):
        torch.testing.assert_close(mine[0], torch.cat([p.hidden[layer][0] for p in parts]), atol=1e-5, rtol=1e-5)


def test_layerdrop_off_and_cnn_policy_freezes_only_the_two_convolutions(tiny_whisper_dir):
    upstream = load(tiny_whisper_dir, freeze="cnn")
    assert upstream.encoder.layerdrop == 0.0
    assert not load(tiny_whisper_dir, freeze="none").encoder.embed_positions.weight.requires_grad
    frozen = {name for name, p in upstream.named_parameters() if not p.requires_grad}
    assert frozen == {
        "encoder.conv1.weight", "encoder.conv1.bias", "encoder.conv2.weight", "encoder.conv2.bias",
        "encoder.embed_positions.weight",  # fixed sinusoids, frozen whatever the policy
    }


def test_checkpoint_without_encoder_weights_is_a_config_error(tmp_path):
    transformers.WhisperConfig(d_model=32, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=64,
                  max_source_positions=100, vocab_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                  decoder_start_token_id=1).save_pretrained(tmp_path)
    save_file({"decoder.layer_norm.weight": torch.ones(32)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ConfigError, match="weights missing"):
        load(tmp_path)


def test_unknown_input_mode_is_a_config_error(tiny_whisper_dir):
    with pytest.raises(ConfigError, match="whisper_input"):
        load(tiny_whisper_dir, "trim")


# --- the real converted encoders in ../shared/models (skipped where absent) ---------------------------


def test_real_tiny_en_loads_offline_in_float32_and_equals_a_direct_transformers_call(whisper_tiny_dir, wave):
    upstream = build_upstream(HFConfig(source=str(whisper_tiny_dir), freeze="all")).eval()
    assert isinstance(upstream, WhisperUpstream)
    assert {p.dtype for p in upstream.parameters()} == {torch.float32}
    assert (upstream.num_layers, upstream.hidden_size, upstream.frame_rate) == (5, 384, 50.0)
    audio = wave(1.3, seed=7)
    with torch.no_grad():
        ours = upstream(audio[None], torch.tensor([audio.shape[0]]))
    reference = direct_transformers_call(whisper_tiny_dir, audio)
    n = int(ours.frame_lens[0])
    assert n == 65
    for mine, theirs in zip(ours.hidden, reference, strict=True):
        torch.testing.assert_close(mine[0], theirs[0, :n], atol=1e-4, rtol=1e-5)


def test_real_tiny_en_utterance_alone_equals_it_inside_a_padded_batch(whisper_tiny_dir, wave, batch, same_real_frames):
    upstream = load(whisper_tiny_dir, freeze="all")
    short, long = wave(0.8, seed=8), wave(1.7, seed=9)
    wavs, lens = batch([long, short], extra=321)
    with torch.no_grad():
        together = upstream(wavs, lens)
        alone = upstream(short[None], torch.tensor([short.shape[0]]))
    same_real_frames(together, 1, alone, atol=1e-4)


def test_real_base_equals_a_direct_transformers_call(whisper_base_dir, wave):
    audio = wave(0.6, seed=10)
    with torch.no_grad():
        ours = load(whisper_base_dir, freeze="all")(audio[None], torch.tensor([audio.shape[0]]))
    reference = direct_transformers_call(whisper_base_dir, audio)
    n = int(ours.frame_lens[0])
    torch.testing.assert_close(ours.hidden[-1][0], reference[-1][0, :n], atol=1e-4, rtol=1e-5)


def test_log_mel_is_float32_and_unchanged_under_a_bf16_autocast(tiny_whisper_dir, wave):
    """Lightning's bf16-mixed wraps the forward in an autocast: the log-mel front end must stay float32."""
    upstream = load(tiny_whisper_dir)
    chunks = [wave(0.6, seed=11), wave(1.2, seed=12)]
    plain = upstream.log_mel(chunks, torch.device("cpu"))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = upstream.log_mel(chunks, torch.device("cpu"))
    assert autocast.dtype == torch.float32
    torch.testing.assert_close(autocast, plain)
