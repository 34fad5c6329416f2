"""Task-independent encoders. Importing this package registers them all in UPSTREAMS."""

from . import fbank, hf, text, whisper  # noqa: F401  (each module registers its upstream)
from .base import UPSTREAMS, Upstream, UpstreamConfig, UpstreamOutput
from .build import build_layer_selector, build_upstream
from .freezing import apply_freeze
from .layers import LayerSelector

__all__ = [
    "UPSTREAMS",
    "LayerSelector",
    "Upstream",
    "UpstreamConfig",
    "UpstreamOutput",
    "apply_freeze",
    "build_layer_selector",
    "build_upstream",
]
