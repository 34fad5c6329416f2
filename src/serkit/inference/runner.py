"""Predict a long list of files (what `serkit predict` does): in chunks, with transcripts, in input order.

Chunks of `chunk_size` files go through `predict_batch` one after the other, so results stream out while the
rest is still running and memory holds one chunk's results, not the whole list's. Within a chunk, pieces of
similar length share a batch.
"""

from __future__ import annotations

from typing import Iterator, Sequence

from .recognizer import EmotionRecognizer
from .results import Prediction, PredictionFailure
from .transcripts import Transcripts

DEFAULT_CHUNK_SIZE = 64


def predict_files(
    recognizer: EmotionRecognizer,
    paths: Sequence[str],
    transcripts: Transcripts | None = None,
    skip_errors: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    **settings,
) -> Iterator[Prediction | PredictionFailure]:
    """Yield one result per path, in order. Models with a text branch get each file's transcript from
    `transcripts` (or its sidecar file); a file without one is an error naming it. settings: window_seconds,
    hop_seconds, batch_seconds. Without skip_errors the first bad file raises its error."""
    transcripts = transcripts or Transcripts()
    for begin in range(0, len(paths), chunk_size):
        chunk = list(paths[begin : begin + chunk_size])
        texts = [transcripts.text_for(path) for path in chunk] if recognizer.needs_text else None
        yield from recognizer.predict_batch(chunk, texts=texts, skip_errors=skip_errors, **settings)
