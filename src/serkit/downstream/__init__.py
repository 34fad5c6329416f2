"""Task-dependent heads. Importing this package registers them all in AGGREGATORS."""

from . import ecapa, mean_pool, stats_pool  # noqa: F401  (registers "ecapa", "mean" and "stats")
from .base import AGGREGATORS, Aggregator, AggregatorConfig, length_mask
from .classifier import Classifier, ClassifierConfig

__all__ = ["AGGREGATORS", "Aggregator", "AggregatorConfig", "Classifier", "ClassifierConfig", "length_mask"]
