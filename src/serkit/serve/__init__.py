"""`serkit serve`: the HTTP service and web page around an EmotionRecognizer (needs the `serve` extra)."""

from .app import create_app
from .limits import ServeLimits

__all__ = ["ServeLimits", "create_app"]
