"""A tiny Whisper built here, saved like a real checkpoint and loaded through `from_pretrained(path)`, and
model bundles over it (pad and crop) for the export tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

LABELS = ["neu", "hap", "ang", "sad"]
# a 2 s window (100 encoder positions = 200 mel frames), so that clips longer than a window stay cheap; d_model
# 64 (not 32) so that the matrix products are most of the weights and int8 visibly shrinks the file
TINY_WINDOW_SECONDS = 2


@pytest.fixture(scope="session")
def tiny_whisper_dir(tmp_path_factory) -> Path:
    from serkit.upstream.tiny import save_tiny_whisper

    return save_tiny_whisper(tmp_path_factory.mktemp("export_tiny_whisper"), d_model=64, ffn_dim=256,
                             window_seconds=TINY_WINDOW_SECONDS)


def whisper_bundle(directory: Path, source: Path, mode: str, freeze: str = "all", aggregator: str = "stats") -> Path:
    """A bundle: Whisper (layer-normed weighted layers) -> `aggregator` -> standardised linear head, with a
    head scaled up so that different clips get clearly different probabilities."""
    from serkit.bundle import save_bundle
    from serkit.config import load_config
    from serkit.model import build_model

    cfg = load_config({"name": f"whisper_{mode}", "model": {
        "upstreams": [{"name": "whisper", "source": str(source), "layers": "weighted", "layer_norm": True,
                       "freeze": freeze, "whisper_input": mode}],
        "aggregators": [{"name": aggregator}], "classifier": {"norm": True}}})
    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes=len(LABELS)).eval()
    with torch.no_grad():
        model.classifier.linear.weight.mul_(20.0)
    return save_bundle(directory, model, cfg, LABELS)


@pytest.fixture(scope="session")
def make_whisper_bundle():
    return whisper_bundle


@pytest.fixture(scope="session")
def whisper_bundles(tiny_whisper_dir, tmp_path_factory) -> dict[str, Path]:
    """input mode ("pad", "crop") -> a bundle over the tiny Whisper."""
    root = tmp_path_factory.mktemp("whisper_bundles")
    return {mode: whisper_bundle(root / mode, tiny_whisper_dir, mode) for mode in ("pad", "crop")}


@pytest.fixture(scope="session")
def whisper_onnx(whisper_bundles, tmp_path_factory) -> dict[str, Path]:
    """input mode -> the bundle exported (float32) by export_onnx."""
    from serkit.export.onnx import export_onnx

    root = tmp_path_factory.mktemp("whisper_onnx")
    return {mode: export_onnx(bundle, root / f"{mode}.onnx").path for mode, bundle in whisper_bundles.items()}
