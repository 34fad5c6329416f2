"""ONNX export: ONNX Runtime gives the PyTorch probabilities on real and synthetic audio, padded batches included."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from serkit.cli import main
from serkit.data.audio import load_audio
from serkit.errors import ConfigError
from serkit.export import onnx as onnx_export
from serkit.export.graph import ExportGraph
from serkit.inference import EmotionRecognizer

LABELS = ["neu", "hap", "ang", "sad"]
ATOL = 1e-4
# (seconds, sample rate, channels): lengths from under one fbank window to several seconds
SYNTHETIC = [(0.015, 16000, 1), (0.1, 16000, 1), (1.0, 8000, 1), (2.5, 44100, 2), (3.2, 16000, 1)]


@pytest.fixture(scope="module")
def exported(tiny_onnx):
    return tiny_onnx


@pytest.fixture(scope="module")
def synthetic_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("export_audio")
    rng = np.random.default_rng(0)
    paths = []
    for seconds, rate, channels in SYNTHETIC:
        t = np.arange(int(seconds * rate)) / rate
        mono = 0.2 * np.sin(2 * np.pi * (150 + 40 * t) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
        samples = np.stack([mono + 0.01 * rng.standard_normal(t.size) for _ in range(channels)], axis=1)
        path = root / f"{seconds}s_{rate}hz_{channels}ch.wav"
        sf.write(path, samples.astype(np.float32), rate, subtype="PCM_16")
        paths.append(str(path))
    return paths


def run_onnx(path, waves: list[np.ndarray]) -> np.ndarray:
    """waves: 16 kHz mono [S_i] -> probabilities [B, C] from ONNX Runtime on one zero-padded batch."""
    lens = np.array([w.shape[0] for w in waves], dtype=np.int64)
    wavs = np.zeros((len(waves), lens.max()), dtype=np.float32)
    for i, w in enumerate(waves):
        wavs[i, : w.shape[0]] = w
    return onnx_export.onnx_session(path).run(["probabilities"], {"wavs": wavs, "wav_lens": lens})[0]


def assert_onnx_matches_pytorch(onnx_path, bundle, paths):
    recognizer = EmotionRecognizer.load(bundle)
    expected = np.array([[p.probabilities[label] for label in LABELS] for p in recognizer.predict_batch(paths)])
    waves = [load_audio(path) for path in paths]
    batched = run_onnx(onnx_path, waves)  # one padded batch of different lengths
    one_by_one = np.concatenate([run_onnx(onnx_path, [w]) for w in waves])
    assert batched.shape == (len(paths), len(LABELS))
    np.testing.assert_allclose(batched, expected, atol=ATOL)
    np.testing.assert_allclose(one_by_one, expected, atol=ATOL)
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(expected - expected[0]).max() > 1e-3  # different inputs, different answers: the check bites


def test_synthetic_files_of_several_lengths(exported, tiny_bundle, synthetic_files):
    assert_onnx_matches_pytorch(exported, tiny_bundle, synthetic_files)


def test_real_recordings(exported, tiny_bundle, ravdess_dir):
    paths = [str(sorted((ravdess_dir / f"Actor_{a:02d}").glob("*.flac"))[a]) for a in (1, 4, 9, 16)]
    assert_onnx_matches_pytorch(exported, tiny_bundle, paths)


def test_file_says_labels_rate_and_padding(exported):
    meta = onnx_export.read_metadata(exported)
    assert json.loads(meta["labels"]) == LABELS
    assert meta["sample_rate"] == "16000" and meta["padding_invariant"] == "true"
    session = onnx_export.onnx_session(exported)
    inputs = {i.name: (i.type, i.shape) for i in session.get_inputs()}
    assert inputs["wavs"][0] == "tensor(float)" and inputs["wav_lens"][0] == "tensor(int64)"
    assert all(isinstance(d, str) for d in inputs["wavs"][1])  # batch and length are dynamic axes
    outputs = {o.name: o.shape for o in session.get_outputs()}
    assert list(outputs) == ["probabilities", "embedding"]  # probabilities first: run(None, ...)[0] keeps working
    assert isinstance(outputs["embedding"][0], str) and outputs["embedding"][1] == 64  # [batch, E]


@pytest.fixture(scope="module")
def tiny_speech_dirs(tmp_path_factory):
    """Tiny wav2vec2 encoders saved like real checkpoints: layer-norm CNN with attention masks (the large
    models' layout) and group-norm CNN without (the base models')."""
    import transformers

    from serkit.upstream.tiny import TINY_SPEECH

    root = tmp_path_factory.mktemp("tiny_w2v2")
    dirs = {}
    for name, norm, mask in (("layer", dict(feat_extract_norm="layer", do_stable_layer_norm=True), True),
                             ("group", dict(feat_extract_norm="group"), False)):
        config = transformers.Wav2Vec2Config(**{**TINY_SPEECH, **norm})
        torch.manual_seed(0)
        transformers.AutoModel.from_config(config).save_pretrained(root / name)
        transformers.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, do_normalize=True,
                                              return_attention_mask=mask).save_pretrained(root / name)
        dirs[name] = root / name
    return dirs


def build(upstreams: list[dict], aggregator: dict, fusion: str = "none"):
    from serkit.config import load_config
    from serkit.model import build_model

    cfg = load_config({"model": {"upstreams": upstreams, "aggregators": [aggregator], "fusion": fusion}})
    torch.manual_seed(0)
    return build_model(cfg.model, num_classes=len(LABELS)).eval()


def noise_batch(lens: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    wavs = torch.zeros(len(lens), max(lens))
    for i, n in enumerate(lens):
        wavs[i, :n] = 0.1 * torch.randn(n, generator=generator)
    return wavs, torch.tensor(lens)


def test_layer_norm_wav2vec2_exports_padding_invariant(tiny_speech_dirs, tmp_path):
    model = build([{"name": "hf", "source": str(tiny_speech_dirs["layer"]), "layers": "weighted", "freeze": "all"}],
                  {"name": "mean"})
    result = onnx_export.export_onnx(model, tmp_path / "w2v2.onnx", labels=LABELS)
    assert result.exporter == "dynamo" and result.padding_invariant and result.max_abs_diff <= ATOL
    wavs, lens = noise_batch([20000, 350, 9100])  # one shorter than the CNN's 400-sample receptive field
    got = onnx_export.onnx_session(result.path).run(None, {"wavs": wavs.numpy(), "wav_lens": lens.numpy()})[0]
    with torch.no_grad():
        expected = torch.softmax(model(wavs, lens), -1).numpy()
    np.testing.assert_allclose(got, expected, atol=ATOL)
    assert np.abs(expected - expected[0]).max() > 1e-4


def test_group_norm_models_export_for_one_utterance_per_call(tiny_speech_dirs):
    """Their PyTorch path runs each utterance unpadded; the export twin reads the whole width, so it is exact
    for unpadded input and flagged as not padding invariant (the conversion itself is the layer-norm test's)."""
    model = build([{"name": "hf", "source": str(tiny_speech_dirs["group"]), "layers": "last", "freeze": "all"}],
                  {"name": "mean"})
    graph = ExportGraph(model).eval()
    assert not graph.padding_invariant
    for n in (400, 7000, 16000):
        wavs, lens = noise_batch([n], seed=n)
        with torch.no_grad():
            probabilities, _ = graph(wavs, lens)
            np.testing.assert_allclose(probabilities.numpy(), torch.softmax(model(wavs, lens), -1).numpy(), atol=1e-5)


def test_text_models_are_refused_with_a_clear_error(tmp_path, capsys):
    from serkit.bundle import save_bundle
    from serkit.config import load_config
    from serkit.upstream.tiny import save_tiny_bert

    bert = save_tiny_bert(tmp_path / "bert", ["hello"])
    upstreams = [{"name": "fbank", "layers": "last", "freeze": "all"},
                 {"name": "text", "source": str(bert), "layers": "last", "freeze": "all"}]
    model = build(upstreams, {"name": "mean"}, fusion="late")
    bundle = save_bundle(tmp_path / "model", model, load_config({"model": {
        "upstreams": upstreams, "aggregators": [{"name": "mean"}], "fusion": "late"}}), LABELS)
    with pytest.raises(ConfigError, match=r"model.upstreams\[1\] is a text upstream.*tokenizer"):
        ExportGraph(model)
    assert main(["export", str(bundle), "--onnx", str(tmp_path / "text.onnx")]) == 1
    assert "text upstream" in capsys.readouterr().err and not (tmp_path / "text.onnx").exists()


def test_an_upstream_without_an_export_twin_is_refused_naming_its_key():
    from serkit.upstream.base import Upstream

    class Plain(Upstream):  # a plug-in's upstream that gives no `exportable`
        pass

    with pytest.raises(ConfigError, match=r"model\.upstreams\[2\]: ONNX export is not supported for the Plain"):
        Plain().exportable("model.upstreams[2]")


def test_early_fusion_of_one_frame_rate_exports_and_across_rates_is_refused(tiny_speech_dirs, tmp_path):
    fbank = {"name": "fbank", "layers": "last", "freeze": "all"}
    model = build([fbank, {**fbank, "cmn": True}], {"name": "stats"}, fusion="early")
    result = onnx_export.export_onnx(model, tmp_path / "early.onnx", labels=LABELS)
    assert result.padding_invariant and result.max_abs_diff <= ATOL
    wavs, lens = noise_batch([20000, 5000, 9100], seed=3)
    got = onnx_export.onnx_session(result.path).run(None, {"wavs": wavs.numpy(), "wav_lens": lens.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got[1], model.embed(wavs, lens).numpy(), rtol=1e-3, atol=1e-3)
    w2v2 = {"name": "hf", "source": str(tiny_speech_dirs["layer"]), "layers": "last", "freeze": "all"}
    with pytest.raises(ConfigError, match=r"model.fusion 'early' resamples frames between rates \[50.0, 100.0\]"):
        ExportGraph(build([fbank, w2v2], {"name": "mean"}, fusion="early"))


def test_torchscript_exporter_is_the_fallback(monkeypatch, tmp_path):
    def dynamo_fails(*args, **kwargs):
        raise RuntimeError("simulated dynamo failure")

    monkeypatch.setitem(onnx_export._EXPORTERS, "dynamo", dynamo_fails)
    model = build([{"name": "fbank", "layers": "last", "freeze": "all", "cmn": True}], {"name": "mean"})
    result = onnx_export.export_onnx(model, tmp_path / "ts.onnx", labels=LABELS)
    assert result.exporter == "torchscript" and result.max_abs_diff <= ATOL
    assert json.loads(onnx_export.read_metadata(result.path)["labels"]) == LABELS


def test_statistics_pooling_head_with_standardised_embedding_exports(tiny_speech_dirs, tmp_path):
    """The RAVDESS recipe's head (layer-normed weighted layers, mean + std pooling, standardised embedding)."""
    from serkit.config import load_config
    from serkit.model import build_model

    cfg = load_config({"model": {
        "upstreams": [{"name": "hf", "source": str(tiny_speech_dirs["layer"]), "layers": "weighted",
                       "layer_norm": True, "freeze": "all"}],
        "aggregators": [{"name": "stats"}], "classifier": {"dropout": 0.3, "norm": True}}})
    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes=len(LABELS))
    model.train()
    with torch.no_grad():  # running statistics away from their initial 0 / 1
        for seed in range(3):
            model(*noise_batch([16000, 9000, 12000], seed=seed))
    model.eval()
    result = onnx_export.export_onnx(model, tmp_path / "stats.onnx", labels=LABELS)
    assert result.padding_invariant and result.max_abs_diff <= ATOL
    wavs, lens = noise_batch([20000, 5000, 9100], seed=7)
    got = onnx_export.onnx_session(result.path).run(None, {"wavs": wavs.numpy(), "wav_lens": lens.numpy()})[0]
    with torch.no_grad():
        expected = torch.softmax(model(wavs, lens), -1).numpy()
    np.testing.assert_allclose(got, expected, atol=ATOL)
