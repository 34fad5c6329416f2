"""Corpora, one file each. Importing this package registers them all in CORPORA."""

from .base import CORPORA, Corpus, FoldSplit, Prepared

from . import iemocap  # noqa: E402,F401
from . import ravdess  # noqa: E402,F401
from . import manifest  # noqa: E402,F401

__all__ = ["CORPORA", "Corpus", "FoldSplit", "Prepared"]
