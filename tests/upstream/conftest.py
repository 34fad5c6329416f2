"""Tiny encoders built here, saved with save_pretrained and loaded back through our real
`from_pretrained(path)` code: one saved directory per variant, once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# the shape of every tiny speech model below: serkit's own stand-in (hidden 32, 2 layers, 2 heads, wav2vec2's
# 7-layer conv stack with 16 channels: total stride 320 -> 50 Hz, receptive field 400 samples)
from serkit.upstream.tiny import TINY_SPEECH

# name -> (config class name, config overrides, preprocessor settings or None = save none)
SPEECH_VARIANTS = {
    # wav2vec2-base style: group-norm CNN, trained without attention masks
    "wav2vec2-group": ("Wav2Vec2Config", dict(feat_extract_norm="group"), dict(do_normalize=True, return_attention_mask=False)),
    # wav2vec2-large-robust style: layer-norm CNN, pre-LN transformer, attention masks
    "wav2vec2-layer": (
        "Wav2Vec2Config",
        dict(feat_extract_norm="layer", do_stable_layer_norm=True, layerdrop=0.1),
        dict(do_normalize=True, return_attention_mask=True),
    ),
    # hubert-base style, saved WITHOUT preprocessor_config.json (exercises the fallback defaults)
    "hubert-group": ("HubertConfig", dict(feat_extract_norm="group"), None),
    "hubert-layer": ("HubertConfig", dict(feat_extract_norm="layer", do_stable_layer_norm=True), dict(do_normalize=True, return_attention_mask=True)),
    # wavlm-base-plus style: group-norm CNN although its extractor returns an attention mask
    "wavlm-group": ("WavLMConfig", dict(feat_extract_norm="group", num_buckets=16, max_bucket_distance=64), dict(do_normalize=False, return_attention_mask=True)),
    "wavlm-layer": ("WavLMConfig", dict(feat_extract_norm="layer", do_stable_layer_norm=True, num_buckets=16, max_bucket_distance=64), dict(do_normalize=True, return_attention_mask=True)),
    "data2vec-audio": ("Data2VecAudioConfig", dict(num_conv_pos_embeddings=3, conv_pos_kernel_size=5), dict(do_normalize=True, return_attention_mask=True)),
}


def save_tiny_speech_model(directory: Path, variant: str) -> Path:
    import transformers

    config_name, overrides, preprocessing = SPEECH_VARIANTS[variant]
    config = getattr(transformers, config_name)(**{**TINY_SPEECH, **overrides})
    torch.manual_seed(0)
    transformers.AutoModel.from_config(config).save_pretrained(directory)
    if preprocessing is not None:
        transformers.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, **preprocessing).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_speech_dirs(tmp_path_factory) -> dict[str, Path]:
    """variant name -> a saved tiny model directory (see SPEECH_VARIANTS)."""
    root = tmp_path_factory.mktemp("tiny_speech")
    return {name: save_tiny_speech_model(root / name, name) for name in SPEECH_VARIANTS}


# Tiny Whisper with a 2 s window (100 encoder positions = 200 mel frames), so that a clip longer than one
# window (chunking) stays cheap; the feature extractor is saved with the matching chunk_length.
TINY_WHISPER_WINDOW_SECONDS = 2


@pytest.fixture(scope="session")
def tiny_whisper_dir(tmp_path_factory) -> Path:
    from serkit.upstream.tiny import save_tiny_whisper

    return save_tiny_whisper(tmp_path_factory.mktemp("tiny_whisper"), window_seconds=TINY_WHISPER_WINDOW_SECONDS,
                             encoder_layerdrop=0.1)


TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "a", "dog",
              "i", "am", "so", "happy", "angry", "sad", "today", "##s", "##ed", ".", ",", "!", "?"]


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-dim BERT with a 25-word WordPiece vocabulary, saved with its tokenizer."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory = tmp_path_factory.mktemp("tiny_bert")
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("\n".join(TINY_VOCAB) + "\n")
    BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True).save_pretrained(directory)
    config = BertConfig(
        vocab_size=len(TINY_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(directory)
    return directory


# Helpers are handed out as fixtures (not imported), so they work whatever pytest's import mode.


def random_wave(seconds: float, seed: int) -> torch.Tensor:
    """[S] float32 noise at 16 kHz with a slow envelope (not silence, not constant), amplitude ~0.1."""
    generator = torch.Generator().manual_seed(seed)
    samples = int(round(seconds * 16000))
    envelope = 0.5 + 0.5 * torch.sin(torch.linspace(0, 6.0, samples) + seed)
    return 0.1 * envelope * torch.randn(samples, generator=generator)


def padded_batch(waves: list[torch.Tensor], extra: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """list of [S_i] -> wavs [B, max S + extra] zero-padded, wav_lens [B]."""
    lens = torch.tensor([w.shape[0] for w in waves])
    wavs = torch.zeros(len(waves), int(lens.max()) + extra)
    for i, w in enumerate(waves):
        wavs[i, : w.shape[0]] = w
    return wavs, lens


def assert_same_real_frames(batch_out, b: int, alone_out, atol: float = 1e-4) -> None:
    """Row b of a batched UpstreamOutput equals a single-utterance output on its real frames."""
    n = int(alone_out.frame_lens[0])
    assert int(batch_out.frame_lens[b]) == n
    assert len(batch_out.hidden) == len(alone_out.hidden)
    for layer, (batched, alone) in enumerate(zip(batch_out.hidden, alone_out.hidden)):
        assert alone.shape[1] == n
        diff = (batched[b, :n] - alone[0, :n]).abs().max().item()
        assert diff <= atol, f"layer {layer}: max abs diff {diff:.2e} > {atol}"


@pytest.fixture(scope="session")
def wave():
    return random_wave


@pytest.fixture(scope="session")
def batch():
    return padded_batch


@pytest.fixture(scope="session")
def same_real_frames():
    return assert_same_real_frames
