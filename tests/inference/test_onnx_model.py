"""EmotionRecognizer on an exported .onnx file (ONNX Runtime): the bundle's predictions, windows and embeddings,
through the API, `serkit predict` and the service; files that are not serkit exports are refused clearly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from serkit.cli import main
from serkit.errors import ConfigError
from serkit.inference import EmotionRecognizer
from serkit.inference.onnx_model import OnnxModel

ATOL = 1e-4  # ONNX Runtime vs PyTorch (the export check's tolerance)


def probabilities(predictions, labels) -> np.ndarray:
    return np.array([[p.probabilities[label] for label in labels] for p in predictions])


def test_onnx_recognizer_gives_the_bundles_predictions(tiny_bundle, tiny_onnx, odd_audio_dir, odd_files,
                                                       long_audio_file):
    torch_rec = EmotionRecognizer.load(tiny_bundle)
    onnx_rec = EmotionRecognizer.load(tiny_onnx, threads=1)
    assert isinstance(onnx_rec.model, OnnxModel) and onnx_rec.labels == torch_rec.labels
    assert not onnx_rec.needs_text
    paths = [str(odd_audio_dir / name) for name in odd_files] + [str(long_audio_file)]
    ours, theirs = onnx_rec.predict_batch(paths), torch_rec.predict_batch(paths)
    np.testing.assert_allclose(probabilities(ours, torch_rec.labels), probabilities(theirs, torch_rec.labels),
                               atol=ATOL)
    assert [p.label for p in ours] == [p.label for p in theirs]
    # the 10-minute file: the same windows, each with the bundle's probabilities
    long_ours, long_theirs = ours[-1], theirs[-1]
    assert len(long_ours.windows) == len(long_theirs.windows) == 119
    assert [(w.start, w.end) for w in long_ours.windows] == [(w.start, w.end) for w in long_theirs.windows]
    np.testing.assert_allclose(probabilities(long_ours.windows, torch_rec.labels),
                               probabilities(long_theirs.windows, torch_rec.labels), atol=ATOL)
    spread = probabilities(theirs, torch_rec.labels)
    assert np.abs(spread - spread[0]).max() > 1e-3  # different files, different answers: the check bites


def test_onnx_embeddings_equal_the_bundles(tiny_bundle, tiny_onnx, odd_audio_dir):
    path = str(odd_audio_dir / "phone_8k.wav")
    ours = EmotionRecognizer.load(tiny_onnx).embed(path)
    theirs = EmotionRecognizer.load(tiny_bundle).embed(path)
    assert ours.shape == theirs.shape == (64,) and ours.dtype == np.float32
    # relative to the largest value, as the export check (the torch filterbank twin rounds differently)
    np.testing.assert_allclose(ours, theirs, atol=1e-3 * max(1.0, float(np.abs(theirs).max())))


def test_predict_command_takes_an_onnx_file(tiny_bundle, tiny_onnx, odd_audio_dir, capsys):
    paths = [str(odd_audio_dir / "stereo_44k1.wav"), str(odd_audio_dir / "phone_8k.wav")]
    rows = {}
    for model in (tiny_bundle, tiny_onnx):
        assert main(["predict", str(model), *paths, "--window", "2", "--hop", "1", "--threads", "1"]) == 0
        rows[model] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    ours, theirs = rows[tiny_onnx], rows[tiny_bundle]
    assert [(r["file"], r["window"]) for r in ours] == [(r["file"], r["window"]) for r in theirs]
    assert len(ours) == 4  # 1.5 s: one row; 3 s at window 2 / hop 1: the file and 2 windows
    for a, b in zip(ours, theirs):
        assert list(a["probabilities"]) == list(b["probabilities"])
        np.testing.assert_allclose(list(a["probabilities"].values()), list(b["probabilities"].values()), atol=ATOL)


def test_group_norm_graph_runs_each_utterance_alone(tmp_path):
    """A group-norm wav2vec2 (the base models' layout) is not padding invariant: the exported graph must see
    each utterance unpadded, so a padded batch of three lengths is run row by row and equals PyTorch."""
    import transformers

    from serkit.bundle import save_bundle
    from serkit.config import load_config
    from serkit.export.onnx import export_onnx
    from serkit.model import build_model
    from serkit.upstream.tiny import TINY_SPEECH

    encoder = tmp_path / "group_w2v2"
    torch.manual_seed(0)
    transformers.AutoModel.from_config(transformers.Wav2Vec2Config(**TINY_SPEECH, feat_extract_norm="group")
                                       ).save_pretrained(encoder)
    transformers.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, do_normalize=True,
                                          return_attention_mask=False).save_pretrained(encoder)
    cfg = load_config({"model": {"upstreams": [{"name": "hf", "source": str(encoder), "layers": "last",
                                                "freeze": "all"}], "aggregators": [{"name": "mean"}]}})
    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes=4).eval()
    labels = ["neu", "hap", "ang", "sad"]
    bundle = save_bundle(tmp_path / "bundle", model, cfg, labels)
    result = export_onnx(bundle, tmp_path / "group.onnx")
    assert not result.padding_invariant

    generator = torch.Generator().manual_seed(1)
    waves = [0.1 * torch.randn(n, generator=generator).numpy() for n in (16000, 4000, 9100)]
    ours = EmotionRecognizer.load(result.path).predict_batch(waves, sample_rate=16000, batch_seconds=60)
    theirs = EmotionRecognizer.load(bundle).predict_batch(waves, sample_rate=16000, batch_seconds=60)
    np.testing.assert_allclose(probabilities(ours, labels), probabilities(theirs, labels), atol=ATOL)


def test_a_missing_file_is_named(tmp_path, capsys):
    missing = tmp_path / "nowhere.onnx"
    with pytest.raises(ConfigError, match=r"nowhere\.onnx: no such ONNX file"):
        EmotionRecognizer.load(missing)
    assert main(["predict", str(missing), str(tmp_path)]) == 1
    assert "no such ONNX file" in capsys.readouterr().err


def test_a_corrupt_file_is_refused_with_its_name(tmp_path):
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"\x08\x07 this is not a protobuf graph" * 10)
    with pytest.raises(ConfigError, match=r"garbage\.onnx: ONNX Runtime cannot load it"):
        EmotionRecognizer.load(bad)


def _identity_graph(path, outputs: list[str], metadata: dict[str, str]):
    """A valid ONNX file that is not (or is an incomplete) serkit export: wavs passed through."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Identity", ["wavs"], [name]) for name in outputs]
    graph = helper.make_graph(nodes, "identity", [helper.make_tensor_value_info("wavs", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 4]) for name in outputs])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    helper.set_model_props(proto, metadata)
    onnx.save(proto, str(path))
    return path


def test_an_onnx_file_that_is_not_a_serkit_export_is_refused(tmp_path):
    other = _identity_graph(tmp_path / "other.onnx", ["out"], {})
    with pytest.raises(ConfigError, match=r"other\.onnx: not a serkit export.*serkit export MODEL --onnx"):
        EmotionRecognizer.load(other)


def test_an_export_without_the_embedding_output_asks_for_a_new_export(tmp_path):
    old = _identity_graph(tmp_path / "old.onnx", ["probabilities"], {"labels": '["a", "b", "c", "d"]'})
    with pytest.raises(ConfigError, match=r"old\.onnx: exported by an older serkit.*export the bundle again"):
        EmotionRecognizer.load(old)


def test_an_onnx_model_refuses_a_gpu_device(tiny_onnx):
    with pytest.raises(ConfigError, match=r"runs on the CPU .*load the model bundle"):
        EmotionRecognizer.load(tiny_onnx, device="cuda")


def test_predict_refuses_zero_threads(tiny_onnx, odd_audio_dir, capsys):
    assert main(["predict", str(tiny_onnx), str(odd_audio_dir), "--threads", "0"]) == 1
    assert "--threads is 0" in capsys.readouterr().err


def test_the_service_answers_with_an_onnx_model(tiny_onnx, tiny_bundle, odd_audio_dir):
    pytest.importorskip("fastapi", reason="the service needs the serve extra")
    from fastapi.testclient import TestClient

    from serkit.serve import ServeLimits, create_app

    path = odd_audio_dir / "mono_16k.wav"
    with TestClient(create_app(EmotionRecognizer.load(tiny_onnx), ServeLimits())) as client:
        answer = client.post("/predict", files={"file": (path.name, path.read_bytes(), "audio/wav")})
    assert answer.status_code == 200, answer.text
    expected = EmotionRecognizer.load(tiny_bundle).predict(str(path))
    got = answer.json()
    assert got["label"] == expected.label
    np.testing.assert_allclose([got["probabilities"][k] for k in expected.probabilities],
                               list(expected.probabilities.values()), atol=ATOL)


@pytest.mark.parametrize("metadata, message", [
    ({"labels": "neu, hap", "sample_rate": "16000"}, r"metadata 'labels' is 'neu, hap'; expected a JSON list"),
    ({"labels": '["a", "b", "c", "d"]', "sample_rate": "8000"}, r"metadata 'sample_rate' is '8000'; expected '16000'"),
    ({"labels": '["a", "b", "c", "d"]'}, r"metadata 'sample_rate' is None"),
    ({"labels": '["a", "b", "c"]', "sample_rate": "16000"}, r"3 labels in its metadata but 4 probabilities out"),
])
def test_bad_metadata_is_named(tmp_path, metadata, message):
    path = _identity_graph(tmp_path / "bad.onnx", ["probabilities", "embedding"], metadata)
    with pytest.raises(ConfigError, match=r"bad\.onnx: " + message):
        EmotionRecognizer.load(path)


def test_a_file_that_does_not_say_it_is_padding_invariant_runs_one_utterance_per_call(tmp_path):
    path = _identity_graph(tmp_path / "quiet.onnx", ["probabilities", "embedding"],
                           {"labels": '["a", "b", "c", "d"]', "sample_rate": "16000"})
    assert not OnnxModel(path).padding_invariant


def test_load_refuses_bad_thread_counts(tiny_bundle, tiny_onnx):
    for model in (tiny_bundle, tiny_onnx):
        with pytest.raises(ConfigError, match=r"threads is 0; expected a positive number"):
            EmotionRecognizer.load(model, threads=0)


def test_a_quantized_file_says_so_and_a_float_one_does_not(tmp_path):
    """`serkit export --quantize int8` writes metadata `quantization`; OnnxModel reports it (None: float32)."""
    common = {"labels": '["a", "b", "c", "d"]', "sample_rate": "16000", "padding_invariant": "true"}
    quantized = _identity_graph(tmp_path / "int8.onnx", ["probabilities", "embedding"],
                                {**common, "quantization": "int8"})
    plain = _identity_graph(tmp_path / "float.onnx", ["probabilities", "embedding"], common)
    assert OnnxModel(quantized).quantization == "int8"
    assert OnnxModel(plain).quantization is None
