"""Use a trained model: load a bundle, predict on files or arrays (long inputs window by window), embed.

    from serkit import EmotionRecognizer
    rec = EmotionRecognizer.load("runs/exp/fold_1/model")
    rec.predict("a.wav")  # -> Prediction(label, probabilities, duration, source, windows)
"""

from .recognizer import EmotionRecognizer
from .results import Prediction, PredictionFailure, WindowPrediction
from .timeline import Segment, Timeline

__all__ = ["EmotionRecognizer", "Prediction", "PredictionFailure", "Segment", "Timeline", "WindowPrediction"]
