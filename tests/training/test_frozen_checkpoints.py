"""Training checkpoints leave out frozen upstream parameters (they are the pretrained source's), while the
bundle stays complete; a fold resumes from such a last.ckpt; checkpoints that do not fit are refused."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import torch
from safetensors import safe_open

from serkit.bundle import load_bundle
from serkit.cli import main
from serkit.config import load_config, save_config
from serkit.errors import ConfigError
from serkit.model import build_model
from serkit.checkpoint import (frozen_fingerprint, frozen_keys, load_trained_state_dict,
                               trained_state_dict)
from serkit.training.module import SERModule
from serkit.upstream.tiny import save_tiny_speech_model


def frozen_config(source, max_epochs: int) -> list[str]:
    return [f"model.upstreams=[{{name: hf, source: '{source}', layers: weighted, freeze: all}}]",
            "model.aggregators=[{name: mean}]", f"train.max_epochs={max_epochs}", "train.top_k=2",
            "train.progress_bar=false", "train.lr_downstream=3e-3", "data.max_batch_seconds=40",
            "train.keep_checkpoints=true"]  # what these tests look into


def killed_under(fold, overrides: list[str]) -> None:
    """Make a finished fold look like one of the command with `overrides`, killed after its last epoch: its
    result gone, its recorded config that command's (serkit resumes a fold only under its own config)."""
    (fold / "result.json").unlink()
    save_config(load_config(fold / "config.yaml", overrides=overrides), fold / "config.yaml")


def keys(path) -> set[str]:
    with safe_open(str(path), framework="pt") as f:
        return set(f.keys())


@pytest.fixture(scope="module")
def frozen_run(tiny_config, synth_iemocap_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("frozen")
    source = save_tiny_speech_model(root / "w2v2", "wav2vec2")
    out = root / "run"
    args = ["cv", str(tiny_config), "--root", str(synth_iemocap_root), "--out", str(out), "--folds", "1"]
    assert main([*args, *frozen_config(source, 2)]) == 0
    return out, source, args


def test_topk_and_last_checkpoints_hold_only_trained_weights(frozen_run):
    out, source, _ = frozen_run
    fold = out / "fold_1"
    cfg = load_config(fold / "config.yaml")
    model = build_model(cfg.model, num_classes=4)
    frozen = frozen_keys(model)
    assert frozen and all(key.startswith("upstreams.0.") for key in frozen)
    trained = set(model.state_dict()) - frozen
    assert trained == {"layer_selectors.0.weights", "classifier.linear.weight", "classifier.linear.bias"}
    topk = sorted((fold / "checkpoints").glob("*.safetensors"))
    assert len(topk) == 2
    for path in topk:
        assert keys(path) == trained
    last = torch.load(fold / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert {k.removeprefix("model.") for k in last["state_dict"]} == trained
    # the bundle is whole: it loads with no pretrained source at hand
    assert keys(fold / "model" / "model.safetensors") == set(model.state_dict())


def test_bundle_carries_the_frozen_source_weights(frozen_run):
    out, source, _ = frozen_run
    bundle_model, _, _ = load_bundle(out / "fold_1" / "model")
    built = build_model(load_config(out / "fold_1" / "config.yaml").model, num_classes=4)  # from the source
    for key in frozen_keys(built):
        assert torch.equal(bundle_model.state_dict()[key], built.state_dict()[key]), key


def test_a_fold_resumes_from_a_last_ckpt_without_frozen_weights(frozen_run):
    out, source, args = frozen_run
    fold = out / "fold_1"
    killed_under(fold, frozen_config(source, 3))  # a 3-epoch run killed after epoch 2: resumes from last.ckpt
    assert main([*args, *frozen_config(source, 3)]) == 0
    fits = [json.loads(line) for line in (fold / "fits.jsonl").read_text().splitlines()]
    assert [fit["start_epoch"] for fit in fits] == [0, 2]
    assert json.loads((fold / "result.json").read_text())["fold"] == 1
    with open(fold / "logs" / "metrics.csv", newline="") as log:  # continued: the first fit's rows kept, none twice
        assert [int(float(row["epoch"])) for row in csv.DictReader(log) if row.get("val_ua")] == [0, 1, 2]


def test_loading_refuses_a_state_that_lacks_a_trained_entry_or_has_an_unknown_one(frozen_run):
    out, _, _ = frozen_run
    model = build_model(load_config(out / "fold_1" / "config.yaml").model, num_classes=4)
    state = trained_state_dict(model)
    load_trained_state_dict(model, dict(state))  # the trained entries alone: fine
    lacking = {k: v for k, v in state.items() if k != "classifier.linear.weight"}
    with pytest.raises(ConfigError, match=r"best\.safetensors does not fit.*classifier\.linear\.weight"):
        load_trained_state_dict(model, lacking, "best.safetensors")
    with pytest.raises(ConfigError, match=r"unknown ones \['extra'\]"):
        load_trained_state_dict(model, {**state, "extra": torch.zeros(1)})


def saved_checkpoint(run_dir) -> tuple[SERModule, dict]:
    """A module rebuilt from the run's fold 1 config, and the last.ckpt content its on_save_checkpoint writes."""
    cfg = load_config(run_dir / "fold_1" / "config.yaml")
    module = SERModule(build_model(cfg.model, num_classes=4), cfg.train, ["neu", "hap", "ang", "sad"])
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    return module, checkpoint


def test_resuming_refuses_a_checkpoint_that_lacks_a_trained_entry(frozen_run):
    module, checkpoint = saved_checkpoint(frozen_run[0])
    assert not any(k.removeprefix("model.") in frozen_keys(module.model) for k in checkpoint["state_dict"])
    module.on_load_checkpoint(checkpoint)  # what on_save_checkpoint wrote fits
    del checkpoint["state_dict"]["model.classifier.linear.bias"]
    with pytest.raises(ConfigError, match=r"resume from does not fit.*classifier\.linear\.bias"):
        module.on_load_checkpoint(checkpoint)


def resume_args(args: list[str], out) -> list[str]:
    return [*args[: args.index("--out") + 1], str(out), *args[args.index("--out") + 2 :]]


def test_a_last_ckpt_without_the_frozen_fingerprint_is_refused(frozen_run):
    """Without the fingerprint nothing says the rebuilt frozen weights are those the run trained with."""
    module, checkpoint = saved_checkpoint(frozen_run[0])
    module.on_load_checkpoint(dict(checkpoint))  # as written: fine
    del checkpoint["serkit_frozen_fingerprint"]
    with pytest.raises(ConfigError, match=r"has no 'serkit_frozen_fingerprint'.*start the fold afresh"):
        module.on_load_checkpoint(checkpoint)


def test_resuming_with_a_changed_frozen_source_is_refused(frozen_run, tmp_path, capsys):
    out, _, args = frozen_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    changed = save_tiny_speech_model(tmp_path / "w2v2_retrained", "wav2vec2", seed=1)  # same shapes, new values
    killed_under(copy / "fold_1", frozen_config(changed, 3))  # as if its source folder had been rewritten since
    assert main([*resume_args(args, copy), *frozen_config(changed, 3)]) == 1
    err = capsys.readouterr().err
    assert "last.ckpt: the frozen upstream weights differ from those this run was trained with" in err


def test_freeze_cnn_leaves_out_the_convolutions_only(tmp_path):
    source = save_tiny_speech_model(tmp_path / "w2v2", "wav2vec2")
    cfg = load_config({"model": {"upstreams": [{"name": "hf", "source": str(source), "layers": "last",
                                                "freeze": "cnn"}], "aggregators": [{"name": "mean"}]}})
    model = build_model(cfg.model, num_classes=4)
    frozen = frozen_keys(model)
    assert frozen and all(".feature_extractor." in key for key in frozen)
    trained = set(trained_state_dict(model))
    assert any(".encoder.layers." in key for key in trained) and "classifier.linear.weight" in trained
    assert len(frozen_fingerprint(model)) == 64


def test_the_fingerprint_is_taken_before_a_true_precision_casts_the_weights(frozen_run):
    """bf16-true converts the module after `setup`; a resumed fit hashes the freshly built float32 model, so the
    fingerprint written at save time must be the float32 one too."""
    out, _, _ = frozen_run
    cfg = load_config(out / "fold_1" / "config.yaml")
    labels = ["neu", "hap", "ang", "sad"]
    trained = SERModule(build_model(cfg.model, num_classes=4), cfg.train, labels)
    trained.setup("fit")
    trained.to(torch.bfloat16)  # what Lightning's bf16-true precision does after setup
    checkpoint = {"state_dict": trained.state_dict()}
    trained.on_save_checkpoint(checkpoint)
    resumed = SERModule(build_model(cfg.model, num_classes=4), cfg.train, labels)
    resumed.on_load_checkpoint(checkpoint)  # no false "weights differ"
