"""Tampered model bundles and ONNX files (issue 14, section 5, items 6, 10 and 12): each is refused by loading with
an error naming the bundle file and the key, before anything is allocated for it; nothing gives a traceback, NaN
probabilities or two columns of one name."""

from __future__ import annotations

import json
import shutil
import time

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from serkit.bundle import load_bundle
from serkit.cli import main
from serkit.errors import ConfigError, DataError, SerkitError
from serkit.inference import EmotionRecognizer


def tampered_copy(bundle, tmp_path, name="bundle"):
    copy = tmp_path / name
    shutil.copytree(bundle, copy)
    return copy


def edit_config(bundle, edit) -> None:
    config = yaml.safe_load((bundle / "config.yaml").read_text())
    edit(config)
    (bundle / "config.yaml").write_text(yaml.safe_dump(config))


def edit_weights(bundle, edit) -> None:
    path = bundle / "model.safetensors"
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    state = load_file(str(path))
    edit(state)
    save_file(state, str(path), metadata)


def edit_upstream_config(bundle, **values) -> None:
    path = bundle / "upstreams" / "0" / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **values}))


def set_aggregator(key, value):
    return lambda config: config["model"]["aggregators"][0].__setitem__(key, value)


@pytest.fixture(scope="module")
def hf_bundle(tmp_path_factory):
    """A bundle over a tiny wav2vec2 (2 layers, hidden size 32) with mean pooling: 66 tensors."""
    from serkit.bundle import save_bundle
    from serkit.config import load_config
    from serkit.model import build_model
    from serkit.upstream.tiny import save_tiny_speech_model

    root = tmp_path_factory.mktemp("hf_bundle")
    source = save_tiny_speech_model(root / "w2v2", "wav2vec2")
    cfg = load_config({"model": {"upstreams": [{"name": "hf", "source": str(source), "layers": "weighted",
                                                "freeze": "all"}], "aggregators": [{"name": "mean"}]}})
    model = build_model(cfg.model, num_classes=4).eval()
    return save_bundle(root / "model", model, cfg, ["neu", "hap", "ang", "sad"])


# ------------------------------------------------------------------ item 6: shapes checked before building


@pytest.mark.parametrize("labels, count", [(["neu", "hap", "ang"], 3), (["neu", "hap", "ang", "sad", "fru"], 5)])
def test_labels_that_do_not_match_the_classifier_are_named(tiny_bundle, tmp_path, labels, count):
    bundle = tampered_copy(tiny_bundle, tmp_path)
    (bundle / "labels.json").write_text(json.dumps(labels))
    with pytest.raises(DataError, match=rf"labels\.json: {count} class names, but the classifier in "
                                        r"model\.safetensors has 4 outputs "
                                        r"\(classifier\.linear\.weight is \[4, 64\]\)"):
        load_bundle(bundle)


def test_a_tensor_of_the_wrong_shape_is_named(tiny_bundle, tmp_path):
    bundle = tampered_copy(tiny_bundle, tmp_path)
    edit_weights(bundle, lambda state: state.__setitem__("aggregate.aggregator.first.conv.bias", torch.zeros(65)))
    with pytest.raises(DataError, match=r"model\.safetensors: aggregate\.aggregator\.first\.conv\.bias is \[65\], but "
                                        r"model\.aggregators in config\.yaml makes it \[64\]"):
        load_bundle(bundle)


@pytest.mark.parametrize("channels", [32, 100_000_000])
def test_config_sizes_that_do_not_fit_the_weights_are_refused_before_allocating(tiny_bundle, tmp_path, channels):
    """channels 1e8 used to allocate a 160 GB tensor (refused by the allocator here, by the OOM killer elsewhere)."""
    bundle = tampered_copy(tiny_bundle, tmp_path)
    edit_config(bundle, set_aggregator("channels", channels))
    with pytest.raises(DataError, match=rf"model\.safetensors: aggregate\.aggregator\.first\.conv\.weight is \[64, 80, 5\], but "
                                        rf"model\.aggregators in config\.yaml makes it \[{channels}, 80, 5\]"):
        load_bundle(bundle)


def test_a_negative_size_names_its_key(tiny_bundle, tmp_path):
    bundle = tampered_copy(tiny_bundle, tmp_path)
    edit_config(bundle, set_aggregator("embedding_dim", -5))
    with pytest.raises(SerkitError, match=r"config\.yaml.*embedding_dim.*-5"):
        load_bundle(bundle)


def test_zero_channels_are_refused_before_building(tiny_bundle, tmp_path):
    """channels 0 is divisible by any res2net_scale: with 100,000 it built 900,000 empty modules on `meta`
    (about 2 minutes here) before the shape check could refuse it. Now the config's ranges refuse it."""
    bundle = tampered_copy(tiny_bundle, tmp_path)
    edit_config(bundle, lambda config: config["model"]["aggregators"][0].update(channels=0, res2net_scale=10**5))
    with pytest.raises(ConfigError, match=r"config\.yaml: key 'model\.aggregators\.0\.channels' is 0; expected 1"):
        load_bundle(bundle)


def test_an_hf_hidden_size_that_does_not_fit_is_refused_before_allocating(hf_bundle, tmp_path):
    """hidden_size 200000 used to ask the allocator for 1.28 TB."""
    bundle = tampered_copy(hf_bundle, tmp_path)
    edit_upstream_config(bundle, hidden_size=200_000)
    with pytest.raises(DataError, match=r"model\.safetensors: upstreams\.0\..* is \[32\], but upstreams/0/ "
                                        r"\(model\.upstreams\[0\] in config\.yaml\) makes it \[200000\]"):
        load_bundle(bundle)


def test_an_hf_layer_count_beyond_the_weights_is_refused_at_once(hf_bundle, tmp_path):
    """num_hidden_layers 20000 used to build for 33 s and 2 GB before the weights were found not to fit."""
    bundle = tampered_copy(hf_bundle, tmp_path)
    edit_upstream_config(bundle, num_hidden_layers=20_000)
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"upstreams/0/config\.json: 'num_hidden_layers' is 20000, but "
                                        r"model\.safetensors holds 63 tensors for upstream 0"):
        load_bundle(bundle)
    assert time.perf_counter() - start < 10


def test_the_command_line_names_a_tampered_bundle_without_a_traceback(tiny_bundle, tmp_path, odd_audio_dir, capsys):
    bundle = tampered_copy(tiny_bundle, tmp_path)
    edit_config(bundle, set_aggregator("channels", 32))
    assert main(["predict", str(bundle), str(odd_audio_dir / "mono_16k.wav")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("serkit predict: error: ") and "model.aggregators" in err and "Traceback" not in err


def test_untouched_bundles_still_load(tiny_bundle, hf_bundle):
    for bundle in (tiny_bundle, hf_bundle):
        model, _, labels = load_bundle(bundle)
        assert labels == ["neu", "hap", "ang", "sad"]
        assert all(tensor.device.type == "cpu" for tensor in model.state_dict().values())


# ------------------------------------------------------------------ item 10: duplicate labels


def test_duplicate_labels_in_a_bundle_are_refused(tiny_bundle, tmp_path):
    bundle = tampered_copy(tiny_bundle, tmp_path)
    (bundle / "labels.json").write_text(json.dumps(["neu", "hap", "neu", "sad"]))
    with pytest.raises(DataError, match=r"labels\.json: class names \['neu'\] are listed more than once"):
        load_bundle(bundle)


def test_duplicate_labels_in_an_onnx_file_are_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    outputs = ["probabilities", "embedding"]
    nodes = [helper.make_node("Identity", ["wavs"], [name]) for name in outputs]
    graph = helper.make_graph(nodes, "identity", [helper.make_tensor_value_info("wavs", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 4]) for name in outputs])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    helper.set_model_props(proto, {"labels": '["neu", "hap", "neu", "sad"]', "sample_rate": "16000"})
    path = tmp_path / "dup.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(ConfigError, match=r"dup\.onnx: metadata 'labels' names \['neu'\] more than once"):
        EmotionRecognizer.load(path)


# ------------------------------------------------------------------ item 12: NaN weights


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_weights_that_are_not_finite_are_refused_naming_the_tensor(tiny_bundle, tmp_path, odd_audio_dir, capsys,
                                                                   value):
    bundle = tampered_copy(tiny_bundle, tmp_path)
    edit_weights(bundle, lambda state: state["classifier.linear.bias"].__setitem__(0, value))
    with pytest.raises(DataError, match=r"model\.safetensors: tensor classifier\.linear\.bias holds 1 values that "
                                        r"are not finite"):
        load_bundle(bundle)
    assert main(["predict", str(bundle), str(odd_audio_dir / "mono_16k.wav")]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "not finite" in captured.err


def test_a_missing_path_or_a_run_folder_is_named_for_what_it_is(tiny_bundle, tmp_path):
    import shutil

    from serkit.bundle import load_bundle
    from serkit.errors import DataError

    with pytest.raises(DataError, match=r"nowhere: no such file or folder"):
        load_bundle(tmp_path / "nowhere")
    run = tmp_path / "run"
    shutil.copytree(tiny_bundle, run / "fold_2" / "model")
    with pytest.raises(DataError, match=r"a run folder, not a model bundle: give one fold's bundle, e\.g\. .*fold_2"):
        load_bundle(run)
    assert load_bundle(run / "fold_2" / "model")[2]  # the bundle itself loads
