"""serkit: speech emotion recognition with self-supervised features.

Layers (imports point downward): data -> upstream/downstream -> fusion -> model -> training/evaluation
-> inference -> serve/export -> cli. README.md's Layout section says what each one holds.

`serkit.EmotionRecognizer` is loaded on first use (PEP 562), so `import serkit` stays light (no torch).
"""

__version__ = "0.1.0"

__all__ = ["EmotionRecognizer", "__version__"]


def __getattr__(name: str):
    if name == "EmotionRecognizer":
        from .inference import EmotionRecognizer

        return EmotionRecognizer
    raise AttributeError(f"module 'serkit' has no attribute {name!r}")
