"""Corpora, one file each. Importing this package registers them all in CORPORA."""

from .base import CORPORA, Corpus, FoldSplit, Prepared

__all__ = ["CORPORA", "Corpus", "FoldSplit", "Prepared"]
