"""Task-independent encoders. UPSTREAMS finds every upstream module of this package on its first lookup."""

from .base import UPSTREAMS, Upstream, UpstreamConfig, UpstreamOutput
from .build import build_layer_selector, build_upstream, upstream_config
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
    "upstream_config",
]
