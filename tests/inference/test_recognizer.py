"""EmotionRecognizer on the untrained tiny bundle: behaviour (shapes, sums, invariances, errors), not accuracy."""

from __future__ import annotations

import io
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import torch

from serkit.errors import AudioError, ConfigError, DataError
from serkit.inference import EmotionRecognizer, Prediction, PredictionFailure
from serkit.inference import inputs as inputs_module
from serkit.inference import recognizer as recognizer_module
from serkit.inference.windows import plan_spans

LABELS = ["neu", "hap", "ang", "sad"]


def assert_distribution(probabilities: dict[str, float]) -> None:
    assert list(probabilities) == LABELS
    values = np.array(list(probabilities.values()))
    assert np.all(values >= 0) and abs(values.sum() - 1.0) <= 1e-5


def probs(prediction: Prediction) -> np.ndarray:
    return np.array([prediction.probabilities[label] for label in LABELS])


def test_every_odd_file_gives_one_prediction(recognizer, odd_audio_dir, odd_files):
    # stereo, 8 kHz, 22.05 / 44.1 / 48 kHz, 0.1 s, WAV float and 16-bit, FLAC, Ogg Vorbis
    for name, (seconds, rate, *_) in odd_files.items():
        path = odd_audio_dir / name
        p = recognizer.predict(str(path))
        assert p.source == str(path)
        assert p.duration == pytest.approx(seconds, abs=1.0 / rate), name
        assert p.windows == []  # shorter than the 10 s window
        assert_distribution(p.probabilities)
        assert p.label == max(p.probabilities, key=p.probabilities.get)


def test_inputs_that_differ_get_different_probabilities(recognizer, odd_audio_dir):
    # guards the tests above and below: an untrained model that answered a constant would pass them
    a, b = (recognizer.predict(str(odd_audio_dir / n)) for n in ("mono_16k.wav", "phone_8k.wav"))
    assert np.abs(probs(a) - probs(b)).max() > 1e-4


@pytest.fixture(scope="module")
def long_run(recognizer, long_audio_file, monkeypatch_module):
    """Predict the 10-minute file once, recording every read of the window reader (native frames) and the
    samples of every padded batch handed to the model."""
    reads, batch_samples = [], []
    original_read = inputs_module.FileSource.read
    original_pad = recognizer_module.pad_waves

    def recording_read(self, first, stop):
        block = original_read(self, first, stop)
        reads.append(block.shape[0])
        return block

    def recording_pad(waves):
        wavs, wav_lens = original_pad(waves)
        batch_samples.append(wavs.numel())
        return wavs, wav_lens

    monkeypatch_module.setattr(inputs_module.FileSource, "read", recording_read)
    monkeypatch_module.setattr(recognizer_module, "pad_waves", recording_pad)
    prediction = recognizer.predict(str(long_audio_file), batch_seconds=60.0)
    monkeypatch_module.undo()
    return prediction, reads, batch_samples


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_long_file_gets_a_prediction_per_window(long_run, long_file_spec):
    prediction, _, _ = long_run
    seconds, rate = long_file_spec
    assert prediction.duration == seconds
    expected = plan_spans(int(seconds * rate), rate, 10.0, 5.0)
    assert len(prediction.windows) == len(expected) == 119
    assert [(w.start, w.end) for w in prediction.windows] == [(a / rate, b / rate) for a, b in expected]
    for window in prediction.windows:
        assert_distribution(window.probabilities)
    assert_distribution(prediction.probabilities)
    # the whole-file result is the duration-weighted mean of the windows'
    weights = np.array([w.end - w.start for w in prediction.windows])
    window_probs = np.array([[w.probabilities[label] for label in LABELS] for w in prediction.windows])
    np.testing.assert_allclose(probs(prediction), weights @ window_probs / weights.sum(), atol=1e-9)


def test_long_file_is_read_window_by_window(long_run, long_file_spec):
    _, reads, batch_samples = long_run
    seconds, rate = long_file_spec
    window, hop = 10 * rate, 5 * rate
    assert len(reads) == 119  # one read per window, never the whole file
    assert max(reads) <= window <= window + hop
    # the model sees at most --batch-seconds (60 s) of padded 16 kHz audio at once, not the 600 s file
    assert max(batch_samples) <= 60 * 16000 < seconds * 16000
    assert sum(batch_samples) >= 119 * 10 * 16000 - 5 * 16000  # and every window went through it


def test_window_reader_memory_stays_flat(long_audio_file, long_file_spec):
    """Python-tracked memory (numpy arrays register with tracemalloc) while reading every window of the
    10-minute file: a window or two, never the file (38 MB as float32 at 16 kHz)."""
    seconds, rate = long_file_spec
    source = inputs_module.FileSource.open(str(long_audio_file))
    one_window_bytes = 10 * 16000 * 4
    tracemalloc.start()
    try:
        for first, stop in plan_spans(source.frames, source.sample_rate, 10.0, 5.0):
            samples = inputs_module.read_span(source, first, stop)
            assert samples.shape == (round((stop - first) * 16000 / rate),)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * one_window_bytes < seconds * 16000 * 4, f"peak {peak / 1e6:.2f} MB"


def test_window_and_hop_can_be_set_per_call_and_on_load(tiny_bundle, odd_audio_dir):
    path = str(odd_audio_dir / "phone_8k.wav")  # 3 s
    rec = EmotionRecognizer.load(tiny_bundle, window_seconds=1.0, hop_seconds=0.5)
    assert [(w.start, w.end) for w in rec.predict(path).windows] == [(0.0, 1.0), (0.5, 1.5), (1.0, 2.0), (1.5, 2.5), (2.0, 3.0)]
    assert len(rec.predict(path, window_seconds=2.0, hop_seconds=2.0).windows) == 2
    assert rec.predict(path, window_seconds=5.0).windows == []


@pytest.mark.parametrize("settings", [dict(window_seconds=0), dict(hop_seconds=0), dict(hop_seconds=20.0),
                                      dict(batch_seconds=-1), dict(window_seconds=float("nan"))])
def test_bad_window_settings_are_config_errors(recognizer, odd_audio_dir, settings):
    with pytest.raises(ConfigError, match="seconds"):
        recognizer.predict(str(odd_audio_dir / "mono_16k.wav"), **settings)


def test_predict_batch_of_mixed_lengths_equals_one_by_one(recognizer, odd_audio_dir, odd_files, monkeypatch):
    paths = [str(odd_audio_dir / name) for name in odd_files]
    batch_sizes = []
    embed = recognizer.model.embed

    def counting_embed(wavs, wav_lens, texts=None):
        batch_sizes.append(wavs.shape[0])
        return embed(wavs, wav_lens, texts)

    monkeypatch.setattr(recognizer.model, "embed", counting_embed)
    together = recognizer.predict_batch(paths, batch_seconds=1000.0)
    monkeypatch.undo()
    assert batch_sizes == [len(paths)]  # really one padded batch of six lengths
    for path, batched in zip(paths, together):
        alone = recognizer.predict(path)
        assert batched.source == path
        np.testing.assert_allclose(probs(batched), probs(alone), atol=1e-5)


def test_batch_budget_does_not_change_results(recognizer, odd_audio_dir, odd_files):
    paths = [str(odd_audio_dir / name) for name in odd_files]
    small = recognizer.predict_batch(paths, batch_seconds=0.5)
    large = recognizer.predict_batch(paths, batch_seconds=1000.0)
    for a, b in zip(small, large):
        np.testing.assert_allclose(probs(a), probs(b), atol=1e-5)


def test_arrays_files_and_file_objects_agree(recognizer, odd_audio_dir):
    path = odd_audio_dir / "stereo_44k1.wav"
    samples, rate = sf.read(path, dtype="float32")  # [S, 2]
    from_path = recognizer.predict(str(path))
    from_numpy = recognizer.predict(samples, sample_rate=rate)
    from_torch = recognizer.predict(torch.from_numpy(samples), sample_rate=rate)
    from_int16 = recognizer.predict((samples * 32768).round().clip(-32768, 32767).astype(np.int16), sample_rate=rate)
    from_bytes = recognizer.predict(io.BytesIO(path.read_bytes()))
    assert from_numpy.source is None and from_numpy.duration == from_path.duration
    for other in (from_numpy, from_torch, from_int16, from_bytes):
        np.testing.assert_allclose(probs(other), probs(from_path), atol=1e-5)


def test_embed_is_the_classifier_input(recognizer, odd_audio_dir):
    path = str(odd_audio_dir / "mono_16k.wav")
    embedding = recognizer.embed(path)
    assert embedding.shape == (recognizer.model.embedding_dim,) and embedding.dtype == np.float32
    with torch.no_grad():
        logits = recognizer.model.classifier(torch.from_numpy(embedding)[None])
    np.testing.assert_allclose(torch.softmax(logits, -1)[0].numpy(), probs(recognizer.predict(path)), atol=1e-5)


def test_missing_and_broken_files_name_the_file(recognizer, odd_audio_dir, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wave file")
    for path in (tmp_path / "missing.wav", broken):
        with pytest.raises(AudioError, match=str(path.name)):
            recognizer.predict(str(path))


def test_skip_errors_gives_failures_in_place(recognizer, odd_audio_dir, tmp_path):
    good = str(odd_audio_dir / "mono_16k.wav")
    missing = str(tmp_path / "missing.wav")
    nan_samples = np.full(1600, np.nan, dtype=np.float32)
    with pytest.raises(AudioError, match="missing.wav"):
        recognizer.predict_batch([good, missing])
    results = recognizer.predict_batch([good, missing, nan_samples, good], sample_rate=16000, skip_errors=True)
    assert [type(r) for r in results] == [Prediction, PredictionFailure, PredictionFailure, Prediction]
    assert results[1].source == missing and "not found" in results[1].error
    assert "NaN" in results[2].error and results[2].source is None
    assert results[1].to_dict() == {"source": missing, "error": results[1].error}


def test_bad_arrays_are_refused_with_the_reason(recognizer):
    with pytest.raises(DataError, match="sample_rate"):
        recognizer.predict(np.zeros(16000, dtype=np.float32))
    with pytest.raises(DataError, match="transpose"):
        recognizer.predict(np.zeros((2, 16000), dtype=np.float32), sample_rate=16000)
    with pytest.raises(AudioError, match="no audio samples"):
        recognizer.predict(np.zeros(0, dtype=np.float32), sample_rate=16000)


def test_to_dict_is_json_safe(recognizer, odd_audio_dir):
    import json

    p = recognizer.predict(str(odd_audio_dir / "phone_8k.wav"), window_seconds=2.0, hop_seconds=1.0)
    round_trip = json.loads(json.dumps(p.to_dict()))
    assert round_trip["label"] == p.label and len(round_trip["windows"]) == 2
    assert round_trip["windows"][1]["start"] == 1.0 and round_trip["windows"][1]["end"] == 3.0


def test_real_recordings(recognizer, ravdess_files):
    results = recognizer.predict_batch([str(f) for f in ravdess_files])
    assert len(results) == 8
    for path, result in zip(ravdess_files, results):
        assert result.source == str(path) and 2.0 < result.duration < 6.0 and result.windows == []
        assert_distribution(result.probabilities)
        np.testing.assert_allclose(probs(result), probs(recognizer.predict(str(path))), atol=1e-5)


def test_import_serkit_stays_light_and_the_recognizer_is_lazy():
    code = "import sys, serkit; assert 'torch' not in sys.modules, 'torch imported'; print('ok')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    import serkit
    from serkit import EmotionRecognizer as via_from_import

    assert serkit.EmotionRecognizer is via_from_import is EmotionRecognizer
    with pytest.raises(AttributeError):
        serkit.NoSuchThing  # noqa: B018


@pytest.fixture(scope="module")
def text_bundle(tmp_path_factory):
    """fbank + tiny BERT, late fusion (the paper's experiment 11 shape), untrained. The fbank branch uses CMN
    and mean pooling, so its half of the embedding is ~0 and the (untrained) text half decides: the test can
    see the transcript's effect instead of a softmax saturated by raw filterbank energies."""
    from serkit.bundle import save_bundle
    from serkit.config import load_config
    from serkit.model import build_model
    from serkit.upstream.tiny import save_tiny_bert

    root = tmp_path_factory.mktemp("text_bundle")
    bert = save_tiny_bert(root / "bert", "i am so happy today the cat sat on a mat".split())
    cfg = load_config({"model": {
        "upstreams": [{"name": "fbank", "layers": "last", "freeze": "all", "cmn": True},
                      {"name": "text", "source": str(bert), "layers": "last", "freeze": "all"}],
        "fusion": "late", "aggregators": [{"name": "mean"}]}})
    torch.manual_seed(0)
    return save_bundle(root / "model", build_model(cfg.model, num_classes=4).eval(), cfg, LABELS)


def test_text_models_need_and_use_transcripts(text_bundle, odd_audio_dir):
    rec = EmotionRecognizer.load(text_bundle)
    path = str(odd_audio_dir / "mono_16k.wav")
    assert rec.needs_text
    with pytest.raises(ConfigError, match="text branch.*transcript"):
        rec.predict(path)
    happy, cat = rec.predict(path, text="i am so happy today"), rec.predict(path, text="the cat sat on a mat")
    assert_distribution(happy.probabilities)
    assert np.abs(probs(happy) - probs(cat)).max() > 1e-3  # the transcript reaches the model
    batched = rec.predict_batch([path, path], texts=["i am so happy today", "the cat sat on a mat"])
    np.testing.assert_allclose(probs(batched[0]), probs(happy), atol=1e-5)
    np.testing.assert_allclose(probs(batched[1]), probs(cat), atol=1e-5)

