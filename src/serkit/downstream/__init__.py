"""Task-dependent heads. Importing this package registers them all in AGGREGATORS."""

from .base import AGGREGATORS, Aggregator, AggregatorConfig, length_mask

__all__ = ["AGGREGATORS", "Aggregator", "AggregatorConfig", "length_mask"]
