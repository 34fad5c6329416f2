"""Corpora, one file each. CORPORA finds every corpus module of this package on its first lookup."""

from .base import CORPORA, Corpus, FoldSplit, Prepared

__all__ = ["CORPORA", "Corpus", "FoldSplit", "Prepared"]
