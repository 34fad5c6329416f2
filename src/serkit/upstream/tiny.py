"""Tiny, randomly initialised stand-ins for the pretrained encoders, saved like real checkpoints.

For the CPU demo and tests: the same code path as a real model (`from_pretrained(directory)`), at a size a
laptop trains in seconds (hidden 32, 2 layers, wav2vec2's 7-layer conv stack with 16 channels: 50 Hz).
They have learnt nothing; what they show is the pipeline, not the paper's accuracy.
"""

from __future__ import annotations

from pathlib import Path

import torch

TINY_SPEECH = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=12,
)
# family -> (transformers config class, overrides): the large checkpoints' layout (layer-norm CNN, pre-LN).
FAMILIES = {
    "wav2vec2": ("Wav2Vec2Config", dict(feat_extract_norm="layer", do_stable_layer_norm=True)),
    "hubert": ("HubertConfig", dict(feat_extract_norm="layer", do_stable_layer_norm=True)),
    "wavlm": ("WavLMConfig", dict(feat_extract_norm="layer", do_stable_layer_norm=True, num_buckets=16,
                                  max_bucket_distance=64)),
    "data2vec-audio": ("Data2VecAudioConfig", dict(num_conv_pos_embeddings=3, conv_pos_kernel_size=5)),
}
TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def save_tiny_speech_model(directory: str | Path, family: str, seed: int = 0) -> Path:
    """Save a tiny random `family` encoder (+ its feature extractor config) to `directory`."""
    import transformers

    config_name, overrides = FAMILIES[family]
    directory = Path(directory)
    config = getattr(transformers, config_name)(**{**TINY_SPEECH, **overrides})
    torch.manual_seed(seed)
    transformers.AutoModel.from_config(config).save_pretrained(directory)
    transformers.Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, do_normalize=True, return_attention_mask=True
    ).save_pretrained(directory)
    return directory


def save_tiny_bert(directory: str | Path, words: list[str], seed: int = 0) -> Path:
    """Save a tiny random BERT whose WordPiece vocabulary is `words` (lower-cased) plus the special tokens."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab = TINY_VOCAB + sorted({w.lower() for w in words} - set(TINY_VOCAB))
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True).save_pretrained(directory)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(directory)
    return directory


def save_tiny_whisper(directory: str | Path, d_model: int = 32, ffn_dim: int = 64, window_seconds: int = 2,
                      seed: int = 0, **overrides) -> Path:
    """Save a random Whisper-shaped checkpoint (2 encoder layers, a `window_seconds` window instead of 30 s, so
    chunking and pad mode stay cheap) and the feature extractor with the matching chunk_length. overrides: more
    WhisperConfig fields (e.g. encoder_layerdrop)."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    config = WhisperConfig(
        d_model=d_model, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=ffn_dim, decoder_ffn_dim=64, num_mel_bins=80, max_source_positions=50 * window_seconds,
        max_target_positions=16, vocab_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        decoder_start_token_id=1, **overrides,
    )
    torch.manual_seed(seed)
    WhisperModel(config).save_pretrained(directory)  # a full checkpoint: keys model.encoder.* / decoder.*
    WhisperFeatureExtractor(feature_size=80, chunk_length=window_seconds).save_pretrained(directory)
    return Path(directory)
