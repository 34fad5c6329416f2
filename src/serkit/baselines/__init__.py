"""Classical baselines scored on the same folds as serkit's systems (optional extra `baseline`)."""
