"""Files from elsewhere run no code, and paths they hold cannot leave their root.

Checkpoints load with torch.load(weights_only=True) (a crafted pickle is refused before it runs), bundles hold
safetensors weights and JSON/YAML data only, configs refuse YAML's python tags, and paths in manifests,
label files, bundles and top-k state stay inside their folder."""

from __future__ import annotations

import ast
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from serkit.bundle import load_bundle
from serkit.cli import main
from serkit.config import load_config
from serkit.data.corpora.iemocap import read_label_file
from serkit.data.corpora.manifest import Manifest
from serkit.errors import ConfigError, DataError
from serkit.training.checkpoints import CheckpointFiles, TopKCheckpoint

SRC = Path(__file__).resolve().parents[1] / "src" / "serkit"


class CreatesMarker:
    """Unpickling this calls Path.touch(marker): what a malicious checkpoint would do with os.system."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def crafted_checkpoint(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 3, "state_dict": {}, "payload": CreatesMarker(marker)}, path)
    return path


# ----------------------------------------------------------------------------------------------- pickles


def test_crafted_checkpoint_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = crafted_checkpoint(tmp_path / "last.ckpt", marker)
    with pytest.raises(DataError, match="not plain data") as info:
        CheckpointFiles({}).load_checkpoint(path)
    assert str(path) in str(info.value)
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):  # the same file under the default torch.load: refused as well
        torch.load(path)
    assert not marker.exists()


def test_resuming_a_fold_from_a_crafted_last_ckpt_is_refused(synth_iemocap_root, tmp_path, capsys):
    """The file a `serkit cv` resume reads first: it must be refused with a clear error, and run nothing."""
    from serkit.demo import DEMO_ECAPA

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "name": "tiny", "model": {"upstreams": [{"name": "fbank", "layers": "last", "freeze": "all"}],
                                  "aggregators": [{"name": "ecapa", **DEMO_ECAPA}]},
        "train": {"max_epochs": 1, "progress_bar": False}}))
    marker = tmp_path / "pwned"
    out = tmp_path / "run"
    crafted_checkpoint(out / "fold_1" / "checkpoints" / "last.ckpt", marker)
    code = main(["cv", str(config), "--root", str(synth_iemocap_root), "--out", str(out), "folds=[1]"])
    assert code == 1
    err = capsys.readouterr().err
    assert "refusing to load this checkpoint" in err and "last.ckpt" in err
    assert not marker.exists()


def test_bundle_weights_replaced_by_a_pickle_are_refused(tiny_bundle, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    marker = tmp_path / "pwned"
    with open(bundle / "model.safetensors", "wb") as f:
        pickle.dump(CreatesMarker(marker), f)
    with pytest.raises(DataError, match="not a readable safetensors checkpoint"):
        load_bundle(bundle)
    assert not marker.exists()


@pytest.mark.parametrize("content", ["[[[[", "{\"a\": 1}", "\xff\xfe"])
def test_bundle_with_bad_labels_is_refused(tiny_bundle, tmp_path, content):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    (bundle / "labels.json").write_text(content, errors="surrogateescape")
    with pytest.raises(DataError, match="labels.json"):
        load_bundle(bundle)


def test_config_python_tags_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "c.yaml"
    path.write_text(f"name: !!python/object/apply:pathlib.Path.touch [{yaml.safe_dump(str(marker)).strip()}]\n")
    with pytest.raises(ConfigError, match="python/object/apply"):
        load_config(path)
    assert not marker.exists()


def test_package_never_unpickles_untrusted_files():
    """Every torch.load in the package passes weights_only=True; no pickle.load(s), eval or exec at all."""
    offenders = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            if name in ("eval", "exec", "pickle.load", "pickle.loads", "dill.load"):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno} {name}")
            if name.endswith("torch.load") or name == "torch.load":
                flags = {k.arg: ast.unparse(k.value) for k in node.keywords}
                if flags.get("weights_only") != "True":
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno} torch.load without weights_only=True")
    assert offenders == []


# ---------------------------------------------------------------------------------------- path traversal


@pytest.mark.parametrize("value", ["../a.wav", "sub/../../a.wav", "./../a.wav", "sub/../.." + os.sep + "a.wav"])
def test_manifest_relative_paths_cannot_leave_its_folder(tmp_path, value):
    sf.write(tmp_path / "a.wav", np.zeros(1600, np.float32), 16000)
    (tmp_path / "data" / "sub").mkdir(parents=True)
    manifest = tmp_path / "data" / "m.csv"
    manifest.write_text(f"path,label,speaker\n{value},neu,s1\n")
    with pytest.raises(DataError, match="leaves the manifest's folder"):
        Manifest.prepare(manifest)


@pytest.mark.parametrize("utt_id", ["../../etc/passwd", "Ses01F_impro01_../../x", "Ses01F_impro01/../../F000",
                                    "..\\..\\Ses01F_impro01_F000"])
def test_iemocap_ids_cannot_build_paths_outside_the_corpus(tmp_path, utt_id):
    path = tmp_path / "Ses01F_impro01.txt"
    path.write_text(f"[0.0 - 1.0]\t{utt_id}\tneu\t[2.5, 2.5, 2.5]\n")
    with pytest.raises(DataError, match="does not look like"):
        read_label_file(path)


def test_bundle_upstream_folder_linked_outside_is_refused(tiny_bundle, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(bundle / "upstreams" / "0", elsewhere)
    (bundle / "upstreams" / "0").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(DataError, match="outside the bundle"):
        load_bundle(bundle)


def test_bundle_config_cannot_point_upstreams_elsewhere(tiny_bundle, tmp_path):
    """config.yaml's upstream sources are ignored: the bundle's own upstreams/<i>/ is always used; an upstream
    that has no source (the filterbank) refuses one, naming the key and the file."""
    from serkit.bundle import save_bundle
    from serkit.model import build_model
    from serkit.upstream.tiny import save_tiny_whisper

    cfg = load_config({"model": {"upstreams": [{"name": "whisper", "source": str(save_tiny_whisper(tmp_path / "w")),
                                                "freeze": "all"}]}})
    whisper = save_bundle(tmp_path / "whisper_bundle", build_model(cfg.model, num_classes=2), cfg, ["a", "b"])
    fbank = tmp_path / "fbank_bundle"
    shutil.copytree(tiny_bundle, fbank)
    for bundle in (whisper, fbank):
        config = yaml.safe_load((bundle / "config.yaml").read_text())
        config["model"]["upstreams"][0]["source"] = str(tmp_path / "nonexistent")
        (bundle / "config.yaml").write_text(yaml.safe_dump(config))
    _, cfg, _ = load_bundle(whisper)
    assert cfg.model.upstreams[0].source == str(whisper / "upstreams" / "0")
    with pytest.raises(ConfigError, match=r"config\.yaml.*model\.upstreams\.0\.source' is not a parameter of upstream "
                                          r"'fbank'"):
        load_bundle(fbank)


def test_topk_state_in_a_checkpoint_cannot_point_outside_its_folder(tmp_path):
    """A last.ckpt's top-k entries are re-rooted in the fold's checkpoints folder (by file name)."""
    callback = TopKCheckpoint(tmp_path / "checkpoints", k=2, monitor="ua")
    state = callback.state_dict()
    callback.load_state_dict({**state, "dirpath": "/elsewhere", "best_model_path": "/etc/passwd",
                              "kth_best_model_path": "../../../secret.safetensors", "best_k_models": {
                                  "/etc/passwd": torch.tensor(0.9), "../../../secret.safetensors": torch.tensor(0.8)}})
    folder = os.path.realpath(tmp_path / "checkpoints")
    assert callback.kept_paths() == [os.path.join(folder, "passwd"), os.path.join(folder, "secret.safetensors")]
    assert callback.best_model_path == os.path.join(folder, "passwd")
    assert callback.kth_best_model_path == os.path.join(folder, "secret.safetensors")


def test_damaged_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save({"epoch": 1, "state_dict": {"w": torch.ones(1000)}}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match="damaged"):
        CheckpointFiles({}).load_checkpoint(path)
