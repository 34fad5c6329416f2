"""Training-test fixtures: a tiny experiment config (filterbank -> narrow ECAPA-TDNN) written as YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from serkit.demo import DEMO_ECAPA

TINY_EXPERIMENT = {
    "name": "tiny_fbank_ecapa",
    "seed": 0,
    "model": {
        "upstreams": [{"name": "fbank", "layers": "last", "freeze": "all"}],
        "aggregators": [{"name": "ecapa", **DEMO_ECAPA}],
    },
    "train": {"max_epochs": 12, "lr_downstream": 3e-3, "top_k": 3, "progress_bar": False},
    "data": {"corpus": "iemocap", "max_batch_seconds": 40.0},
}


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("configs") / "tiny_fbank_ecapa.yaml"
    path.write_text(yaml.safe_dump(TINY_EXPERIMENT))
    return path
