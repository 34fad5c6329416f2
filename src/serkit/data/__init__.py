"""Audio I/O, corpora, manifests, folds and batching. Knows nothing of models or training."""
