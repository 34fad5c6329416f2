"""Shared test set-up: one thread (steady timings on 2 cores), offline hub, paths to ../shared."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from serkit.data.synth_iemocap import SynthReport, build_synthetic_iemocap  # noqa: E402

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path inside ../shared, or skip the test (a user's clone has no ../shared)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"optional resource {path} is absent (only developers' and CI machines have ../shared)")
    return path


@pytest.fixture
def superb_split_dir() -> Path:
    return shared_path("data", "superb_iemocap_split")


@pytest.fixture
def ravdess_dir() -> Path:
    return shared_path("data", "ravdess")


@pytest.fixture
def whisper_tiny_dir() -> Path:
    return shared_path("models", "whisper-tiny.en-encoder")


@pytest.fixture
def whisper_base_dir() -> Path:
    return shared_path("models", "whisper-base-encoder")


@pytest.fixture(scope="session")
def synth_iemocap(tmp_path_factory) -> SynthReport:
    """`serkit synth-iemocap --size small --seed 0`: 5 sessions x (F, M), ~235 label lines, a few seconds to build."""
    return build_synthetic_iemocap(tmp_path_factory.mktemp("synth_iemocap") / "IEMOCAP_full_release", seed=0)


@pytest.fixture(scope="session")
def synth_iemocap_root(synth_iemocap) -> Path:
    return synth_iemocap.root


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """An untrained model bundle (filterbank -> narrow ECAPA-TDNN -> 4 classes), saved by the real save_bundle:
    for tests of everything that loads bundles (predict, API, service, export). Its outputs are not meaningful."""
    from serkit.bundle import save_bundle
    from serkit.config import load_config
    from serkit.demo import DEMO_ECAPA
    from serkit.model import build_model

    cfg = load_config({
        "name": "tiny_bundle",
        "model": {"upstreams": [{"name": "fbank", "layers": "last", "freeze": "all"}],
                  "aggregators": [{"name": "ecapa", **DEMO_ECAPA}]},
    })
    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes=4).eval()
    return save_bundle(tmp_path_factory.mktemp("bundles") / "tiny", model, cfg, ["neu", "hap", "ang", "sad"],
                       metrics={"note": "untrained"})


@pytest.fixture(scope="session")
def tiny_onnx(tiny_bundle, tmp_path_factory) -> Path:
    """tiny_bundle exported by `serkit export --onnx` (the export extra is part of the test extra)."""
    from serkit.cli import main

    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    assert main(["export", str(tiny_bundle), "--onnx", str(path)]) == 0
    return path
