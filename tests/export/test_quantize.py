"""`serkit export --quantize int8` (issue 13, section 3): the int8 graph runs, stays close to the float graph,
is smaller, says what it is, and its check reports agreement, speed and (with labelled clips) accuracy; option
combinations that cannot work are refused before anything is exported."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from serkit.cli import main
from serkit.errors import ConfigError
from serkit.export import onnx as onnx_export
from serkit.export.check_clips import SYNTHETIC_SECONDS
from serkit.inference import EmotionRecognizer
from serkit.inference.onnx_model import OnnxModel


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def int8_export(whisper_bundles, tmp_path_factory):
    return onnx_export.export_onnx(whisper_bundles["crop"], tmp_path_factory.mktemp("int8") / "model.onnx",
                                   quantize="int8", threads=1)


def noise(lens, seed=0):
    generator = torch.Generator().manual_seed(seed)
    wavs = torch.zeros(len(lens), max(lens))
    for i, n in enumerate(lens):
        wavs[i, :n] = 0.1 * torch.randn(n, generator=generator)
    return wavs.numpy(), np.array(lens)


def test_int8_graph_is_smaller_quantized_and_says_so(int8_export, whisper_onnx):
    import onnx

    assert int8_export.quantization == "int8" and int8_export.path.exists()
    assert int8_export.size_bytes == int8_export.path.stat().st_size
    assert int8_export.float_size_bytes == whisper_onnx["crop"].stat().st_size
    # the weights of the matrix products (the B operand) shrink to a quarter (plus a scale per channel); the
    # rest (the log-mel's DFT kernels and mel filters, convolutions) stays float32
    float_graph = onnx.load(str(whisper_onnx["crop"])).graph
    weights = {init.name: init for init in float_graph.initializer}
    matmul_bytes = sum(len(weights[node.input[1]].raw_data) for node in float_graph.node
                       if node.op_type in ("MatMul", "Gemm") and node.input[1] in weights)
    assert matmul_bytes > 300_000
    assert int8_export.float_size_bytes - int8_export.size_bytes > 0.7 * matmul_bytes
    int8_graph = onnx.load(str(int8_export.path)).graph
    kept = {init.name: init.data_type for init in int8_graph.initializer}
    assert kept["upstreams.0.log_mel.mel_filters"] == onnx.TensorProto.FLOAT  # the front end is not quantized
    ops = {node.op_type for node in int8_graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops and "ConvInteger" not in ops
    assert onnx_export.read_metadata(int8_export.path)["quantization"] == "int8"
    assert OnnxModel(int8_export.path).quantization == "int8" and OnnxModel(whisper_onnx["crop"]).quantization is None


def test_int8_outputs_are_close_to_the_float_graph_but_not_equal(int8_export, whisper_onnx):
    feeds = dict(zip(("wavs", "wav_lens"), noise([20000, 7000, 45000], seed=3)))
    int8 = onnx_export.onnx_session(int8_export.path).run(None, feeds)
    float32 = onnx_export.onnx_session(whisper_onnx["crop"]).run(None, feeds)
    difference = np.abs(int8[0] - float32[0]).max()
    assert 0 < difference < 0.05
    np.testing.assert_allclose(int8[0].sum(axis=1), 1.0, atol=1e-5)
    relative = np.abs(int8[1] - float32[1]).max() / np.abs(float32[1]).max()
    assert 0 < relative < 0.05


def test_int8_check_compares_with_the_float_graph_on_synthetic_speech(int8_export):
    check = int8_export.clip_check
    assert (check.reference, check.candidate) == ("float32 ONNX", "int8 ONNX")
    assert len(check.clips.waves) == len(SYNTHETIC_SECONDS) and check.clips.labels is None
    assert 0 <= check.agreement <= 1 and check.max_probability_diff < 0.05
    assert check.reference_seconds > 0 and check.candidate_seconds > 0 and check.threads == 1
    summary = check.summary()
    assert f"int8 ONNX vs float32 ONNX on {len(SYNTHETIC_SECONDS)} synthetic speech clips" in summary
    assert "labels agree on" in summary
    assert "accuracy" not in summary  # unlabelled


def test_int8_recognizer_predicts(int8_export, tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, 0.1 * np.sin(np.arange(24000) / 7.0).astype(np.float32), 16000)
    prediction = EmotionRecognizer.load(int8_export.path, threads=1).predict(str(path))
    assert prediction.label in prediction.probabilities and abs(sum(prediction.probabilities.values()) - 1) < 1e-5


def write_labelled_clips(folder, labels) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i, label in enumerate(labels):
        path = folder / f"{i}_{label}.wav"
        sf.write(path, (0.1 * rng.standard_normal(8000 + 3000 * i)).astype(np.float32), 16000)
        paths.append(path)
    return paths


def test_cli_int8_with_a_labelled_manifest_prints_the_accuracy_change(whisper_bundles, tmp_path, capsys):
    labels = ["neu", "hap", "ang", "sad", "neu", "cal", "cal"]  # 'cal': not one of the model's classes
    paths = write_labelled_clips(tmp_path / "clips", labels)
    manifest = tmp_path / "clips" / "check.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "speaker"])
        writer.writerows([p.name, label, f"s{i % 2}"] for i, (p, label) in enumerate(zip(paths, labels)))
    out = tmp_path / "model.onnx"
    assert main(["export", str(whisper_bundles["pad"]), "--onnx", str(out), "--quantize", "int8",
                 "--check-audio", str(manifest), "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "wrote" in printed and "(int8, " in printed and " MiB -> " in printed
    assert f"on 5 labelled clips of {manifest} (" in printed
    assert "accuracy on the labelled clips: WA " in printed and "points), UA " in printed
    assert "left out of the check (labels the model does not have): cal 2" in printed
    assert json.loads(onnx_export.read_metadata(out)["labels"]) == ["neu", "hap", "ang", "sad"]


def test_float_export_with_check_audio_compares_onnx_with_pytorch(whisper_bundles, whisper_onnx, tmp_path):
    paths = write_labelled_clips(tmp_path / "clips", ["a", "b", "c"])
    result = onnx_export.export_onnx(whisper_bundles["pad"], tmp_path / "model.onnx",
                                     check_audio=[str(tmp_path / "clips")], threads=1)
    check = result.clip_check
    assert result.quantization is None and (check.reference, check.candidate) == ("PyTorch", "ONNX")
    assert len(check.clips.waves) == len(paths) and check.agreement == 1.0 and check.max_probability_diff < 1e-4


@pytest.mark.parametrize("arguments, message", [
    (["--quantize", "int8", "--opset", "12"], "--quantize int8 needs opset 13 or later"),
    (["--quantize", "int8", "--threads", "0"], "threads is 0; expected a positive number"),
    (["--quantize", "int8", "--check-audio", "nowhere.wav"], "--check-audio nowhere.wav: no such file or folder"),
])
def test_bad_combinations_are_refused_before_exporting(tiny_bundle, tmp_path, capsys, arguments, message):
    out = tmp_path / "model.onnx"
    assert main(["export", str(tiny_bundle), "--onnx", str(out), *arguments]) == 1
    assert message in capsys.readouterr().err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_an_unknown_quantization_is_refused(tiny_bundle, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["export", str(tiny_bundle), "--onnx", str(tmp_path / "m.onnx"), "--quantize", "int4"])
    assert "invalid choice: 'int4'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"quantize='fp16': expected one of int8 \(or none: float32\)"):
        onnx_export.export_onnx(tiny_bundle, tmp_path / "m.onnx", quantize="fp16")


def test_check_manifests_are_refused_when_unusable(tiny_bundle, tmp_path):
    paths = write_labelled_clips(tmp_path, ["x", "y"])
    manifest = tmp_path / "other.csv"
    manifest.write_text("path,label,speaker\n" + "".join(f"{p.name},{p.stem[2:]},s{i}\n" for i, p in enumerate(paths)))
    with pytest.raises(ConfigError, match=r"other\.csv: none of its 2 rows has a label of this model .*its labels: x, y"):
        onnx_export.export_onnx(tiny_bundle, tmp_path / "m.onnx", quantize="int8", check_audio=[str(manifest)])
    with pytest.raises(ConfigError, match=r"a manifest \(.*other\.csv\) must be given alone"):
        onnx_export.export_onnx(tiny_bundle, tmp_path / "m.onnx", check_audio=[str(manifest), str(paths[0])])
    assert not (tmp_path / "m.onnx").exists()


def test_a_failing_quantization_leaves_the_previous_file(tiny_bundle, tiny_onnx, tmp_path, monkeypatch):
    out = tmp_path / "model.onnx"
    out.write_bytes(tiny_onnx.read_bytes())

    def fails(float_path, out_path, metadata):
        out_path.write_bytes(b"half an int8 file")
        raise RuntimeError("simulated quantizer failure")

    monkeypatch.setattr(onnx_export, "quantize_int8", fails)
    with pytest.raises(ConfigError, match=r"int8 quantization failed \(.*model\.onnx was left as it was\): "
                                          r"RuntimeError: simulated quantizer failure"):
        onnx_export.export_onnx(tiny_bundle, out, quantize="int8")
    assert out.read_bytes() == tiny_onnx.read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
