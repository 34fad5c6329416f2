"""Task-independent encoders. Importing this package registers them all in UPSTREAMS."""

from .base import UPSTREAMS, Upstream, UpstreamConfig, UpstreamOutput

__all__ = ["UPSTREAMS", "Upstream", "UpstreamConfig", "UpstreamOutput"]
