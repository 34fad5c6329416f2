"""Task-dependent heads. AGGREGATORS finds every aggregator module of this package on its first lookup."""

from .base import AGGREGATORS, Aggregator, AggregatorConfig, aggregator_config, length_mask
from .classifier import Classifier, ClassifierConfig

__all__ = ["AGGREGATORS", "Aggregator", "AggregatorConfig", "Classifier", "ClassifierConfig", "aggregator_config",
           "length_mask"]
