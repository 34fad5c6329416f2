import json

import numpy as np
import pytest
import torch
from transformers import AutoModel, Wav2Vec2FeatureExtractor

from serkit.errors import ConfigError
from serkit.upstream import build_upstream
from serkit.upstream.audio import zero_mean_unit_var
from serkit.upstream.hf import HFConfig, HFSpeechUpstream
from serkit.upstream.whisper import WhisperUpstream

# the tiny checkpoints of conftest.SPEECH_VARIANTS
VARIANTS = ["wav2vec2-group", "wav2vec2-layer", "hubert-group", "hubert-layer", "wavlm-group", "wavlm-layer", "data2vec-audio"]


def load(directory, **overrides) -> HFSpeechUpstream:
    cfg = HFConfig(source=str(directory), freeze="none", **overrides)
    return build_upstream(cfg).eval()


@pytest.mark.parametrize("variant", VARIANTS)
def test_utterance_alone_equals_it_inside_a_padded_batch(variant, tiny_speech_dirs, wave, batch, same_real_frames):
    upstream = load(tiny_speech_dirs[variant])
    short, long = wave(0.45, seed=1), wave(0.83, seed=2)
    wavs, lens = batch([long, short], extra=555)  # extra: padding beyond the longest too
    with torch.no_grad():
        together = upstream(wavs, lens)
        alone_short = upstream(short[None], torch.tensor([short.shape[0]]))
        alone_long = upstream(long[None], torch.tensor([long.shape[0]]))
    same_real_frames(together, 1, alone_short)
    same_real_frames(together, 0, alone_long)
    assert len(together.hidden) == upstream.num_layers == 3  # CNN/embedding output + 2 layers
    assert together.hidden[0].shape == (2, int(together.frame_lens.max()), 32)


@pytest.mark.parametrize("variant", VARIANTS)
def test_frame_lens_come_from_the_model_and_run_at_50_hz(variant, tiny_speech_dirs):
    upstream = load(tiny_speech_dirs[variant])
    lens = torch.tensor([400, 719, 720, 16000, 16321])
    expected = upstream.model._get_feat_extract_output_lengths(lens)
    wavs = torch.randn(len(lens), int(lens.max())) * 0.1
    with torch.no_grad():
        out = upstream(wavs, lens)
    assert out.frame_lens.tolist() == expected.tolist() == [1, 1, 2, 49, 50]
    assert upstream.frame_rate == 50.0


def test_group_norm_models_run_unpadded_and_layer_norm_models_batched(tiny_speech_dirs):
    expected = {  # the batched path needs a layer-norm CNN AND a model trained with attention masks
        "wav2vec2-group": False, "wav2vec2-layer": True, "hubert-group": False, "hubert-layer": True,
        "wavlm-group": False, "wavlm-layer": True, "data2vec-audio": False,
    }
    assert {v: load(d).batched for v, d in tiny_speech_dirs.items()} == expected


@pytest.mark.parametrize("variant", ["wav2vec2-group", "data2vec-audio"])
def test_padding_would_leak_into_these_models_run_as_one_padded_batch(variant, tiny_speech_dirs, wave, batch):
    # why the unpadded path exists: the same checkpoint run on the padded batch (with the attention mask
    # where its extractor asks for one) gives different real frames
    upstream = load(tiny_speech_dirs[variant])
    short, long = wave(0.45, seed=1), wave(0.83, seed=2)
    wavs, lens = batch([long, short])
    mask = (torch.arange(wavs.shape[1])[None] < lens[:, None]).long()
    with torch.no_grad():
        inputs = zero_mean_unit_var(wavs, lens) if upstream.do_normalize else wavs
        naive = upstream._encode(inputs, mask if upstream.feature_extractor.return_attention_mask else None)
        alone = upstream(short[None], torch.tensor([short.shape[0]])).hidden
    leak = max((n[1, :22] - a[0]).abs().max().item() for n, a in zip(naive, alone))
    assert leak > 1e-2


@pytest.mark.parametrize("variant", ["wav2vec2-group", "wav2vec2-layer", "data2vec-audio"])
def test_output_equals_a_direct_transformers_call(variant, tiny_speech_dirs, wave):
    directory = tiny_speech_dirs[variant]
    upstream = load(directory)
    audio = wave(0.6, seed=3)
    extractor = Wav2Vec2FeatureExtractor.from_pretrained(directory)
    model = AutoModel.from_pretrained(directory).eval()
    inputs = extractor(audio.numpy(), sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
        # the last entry is the encoder's output (after the pre-LN models' final LayerNorm)
        reference = [*out.hidden_states[:-1], out.last_hidden_state]
        ours = upstream(audio[None], torch.tensor([audio.shape[0]])).hidden
    assert len(ours) == len(reference)
    for mine, theirs in zip(ours, reference):
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)


def test_normalisation_uses_real_samples_only_like_the_extractor_on_the_utterance_alone(wave, batch):
    a, b = wave(0.3, seed=4) + 0.05, wave(0.5, seed=5)
    wavs, lens = batch([a, b], extra=100)
    ours = zero_mean_unit_var(wavs, lens)
    extractor = Wav2Vec2FeatureExtractor(do_normalize=True)
    for row, audio in enumerate([a, b]):
        reference = extractor(audio.numpy(), sampling_rate=16000).input_values[0]
        np.testing.assert_allclose(ours[row, : audio.shape[0]].numpy(), reference, atol=1e-5)
        assert ours[row, audio.shape[0] :].abs().max() == 0


def test_missing_preprocessor_config_falls_back_to_fairseq_defaults(tiny_speech_dirs):
    directory = tiny_speech_dirs["hubert-group"]
    assert not (directory / "preprocessor_config.json").exists()
    upstream = load(directory)
    assert (upstream.do_normalize, upstream.feature_extractor.return_attention_mask) == (False, False)


def test_checkpoint_preprocessor_config_is_followed(tiny_speech_dirs):
    assert load(tiny_speech_dirs["wavlm-group"]).do_normalize is False
    assert load(tiny_speech_dirs["wav2vec2-group"]).do_normalize is True


def test_layerdrop_is_switched_off_at_load(tiny_speech_dirs):
    directory = tiny_speech_dirs["wav2vec2-layer"]
    assert json.loads((directory / "config.json").read_text())["layerdrop"] == 0.1
    assert load(directory).model.config.layerdrop == 0.0


def test_too_short_utterance_is_padded_to_the_receptive_field(tiny_speech_dirs):
    upstream = load(tiny_speech_dirs["wav2vec2-layer"])
    assert upstream.min_samples == 400
    with torch.no_grad():
        out = upstream(torch.randn(2, 800) * 0.1, torch.tensor([120, 800]))
    assert out.frame_lens.tolist() == [1, 2]
    assert torch.isfinite(out.hidden[-1][0, :1]).all()


def test_whisper_source_under_the_hf_key_gives_the_whisper_upstream(tiny_whisper_dir):
    upstream = build_upstream(HFConfig(source=str(tiny_whisper_dir)))
    assert isinstance(upstream, WhisperUpstream)


def test_unsupported_model_type_is_a_config_error(tiny_bert_dir):
    with pytest.raises(ConfigError, match="'bert' model"):
        build_upstream(HFConfig(source=str(tiny_bert_dir)))


def test_save_config_files_rebuild_the_architecture_without_weights(tiny_speech_dirs, tmp_path, wave):
    upstream = load(tiny_speech_dirs["wav2vec2-layer"])
    upstream.save_config_files(tmp_path)
    rebuilt = build_upstream(HFConfig(source=str(tmp_path), freeze="none"), pretrained=False).eval()
    assert not (tmp_path / "model.safetensors").exists()
    rebuilt.load_state_dict(upstream.state_dict())
    audio = wave(0.5, seed=6)
    with torch.no_grad():
        a = upstream(audio[None], torch.tensor([audio.shape[0]])).hidden[-1]
        b = rebuilt(audio[None], torch.tensor([audio.shape[0]])).hidden[-1]
    torch.testing.assert_close(a, b)
    assert rebuilt.batched and rebuilt.do_normalize


@pytest.mark.parametrize("variant", ["wav2vec2-layer", "wavlm-layer", "wav2vec2-group"])
def test_last_layer_is_the_encoders_final_output_and_its_norm_trains(tiny_speech_dirs, variant):
    """Pre-LN encoders normalise after the last layer; "last" must be that output, so the final LayerNorm
    gets a gradient (DDP refuses parameters that never get one)."""
    upstream = build_upstream(HFConfig(source=str(tiny_speech_dirs[variant]), freeze="none"))
    upstream.eval()
    wavs = torch.randn(1, 8000)
    out = upstream(wavs, torch.tensor([8000]))
    reference = AutoModel.from_pretrained(tiny_speech_dirs[variant]).eval()
    inputs = wavs
    if upstream.do_normalize:
        inputs = (wavs - wavs.mean()) / torch.sqrt(wavs.var(unbiased=False) + 1e-7)
    expected = reference(inputs).last_hidden_state
    torch.testing.assert_close(out.hidden[-1], expected, atol=1e-4, rtol=1e-4)
    out.hidden[-1].sum().backward()
    final_norm = upstream.model.encoder.layer_norm.weight
    assert final_norm.grad is not None and final_norm.grad.abs().sum() > 0


def test_pad_multiple_rounds_the_width_on_an_accelerator_only():
    upstream = HFSpeechUpstream.__new__(HFSpeechUpstream)  # the rule alone, no model
    upstream.pad_multiple = 4000  # 0.25 s
    assert [upstream.padded_width(n, torch.device("cuda")) for n in (400, 4000, 4001, 13280)] == [4000, 4000, 8000,
                                                                                                  16000]
    assert upstream.padded_width(13280, torch.device("cpu")) == 13280  # no first-time shape costs to save
    upstream.pad_multiple = 0
    assert upstream.padded_width(13280, torch.device("cuda")) == 13280


@pytest.mark.parametrize("variant", ["wav2vec2-layer", "hubert-layer", "wavlm-layer"])
def test_a_rounded_width_leaves_every_real_frame(variant, tiny_speech_dirs, wave, batch, same_real_frames):
    # the width a GPU would run (0.25 s = 4000 samples: the 0.83 s clip, 13280 samples, runs 16000 wide, 49
    # frames where it has 41), run here on the CPU; and on the CPU itself the option changes nothing
    plain = load(tiny_speech_dirs[variant])
    rounded = load(tiny_speech_dirs[variant], pad_multiple_s=0.25)
    rounded.load_state_dict(plain.state_dict())
    short, long = wave(0.45, seed=1), wave(0.83, seed=2)
    wavs, lens = batch([long, short])
    with torch.no_grad():
        a, on_cpu = plain(wavs, lens), rounded(wavs, lens)
        rounded.padded_width = lambda longest, device: HFSpeechUpstream.padded_width(rounded, longest, "cuda")
        b = rounded(wavs, lens)
    assert all(torch.equal(x, y) for x, y in zip(a.hidden, on_cpu.hidden))
    assert a.frame_lens.tolist() == b.frame_lens.tolist()
    assert a.hidden[0].shape[1] == int(a.frame_lens.max()) < b.hidden[0].shape[1] == 49
    for i, n in enumerate(a.frame_lens.tolist()):
        same_real_frames(b, i, type(a)([h[i:i + 1, :n] for h in a.hidden], a.frame_lens[i:i + 1]))


@pytest.mark.parametrize("variant,reason", [("wav2vec2-group", "a group-norm CNN"),
                                            ("data2vec-audio", "stacked position convolutions")])
def test_pad_multiple_is_refused_where_there_is_no_padded_width(variant, reason, tiny_speech_dirs):
    with pytest.raises(ConfigError, match=f"runs each utterance alone, unpadded \\(.*{reason}"):
        load(tiny_speech_dirs[variant], pad_multiple_s=0.5)


def test_pad_multiple_is_refused_for_a_whisper_source_and_where_it_is_not_a_duration(tiny_speech_dirs,
                                                                                     whisper_tiny_dir):
    with pytest.raises(ConfigError, match="is a Whisper encoder: pad_multiple_s"):
        build_upstream(HFConfig(source=str(whisper_tiny_dir), pad_multiple_s=0.5))
    for bad in (-0.5, float("nan"), float("inf"), 1e-6):
        with pytest.raises(ConfigError, match="pad_multiple_s"):
            HFConfig(source=str(tiny_speech_dirs["wav2vec2-layer"]), pad_multiple_s=bad)
