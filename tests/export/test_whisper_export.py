"""Whisper as ONNX (issue 13, section 3): the torch log-mel equals WhisperFeatureExtractor's, the export twin
equals WhisperUpstream (pad and crop, chunks, a frozen bottom), and ONNX Runtime gives the bundle's
probabilities and embeddings on padded batches, on clips longer than a window, and on real speech with the
real Whisper base encoder (skipped without ../shared)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import WhisperFeatureExtractor

from serkit.bundle import load_bundle
from serkit.data.audio import load_audio
from serkit.errors import ConfigError
from serkit.export import onnx as onnx_export
from serkit.export.graph import ExportGraph
from serkit.inference import EmotionRecognizer
from serkit.upstream import build_upstream
from serkit.upstream.whisper import WhisperConfig
from serkit.upstream.whisper_export import WhisperExport, WhisperLogMel

ATOL = 1e-4  # probabilities, as every export check
WINDOW = 32000  # the tiny Whisper's 2 s window (conftest.TINY_WINDOW_SECONDS)
# padded batches: one clip per window count, a clip of a window exactly, one under one mel hop
BATCHES = [[5000], [WINDOW, 300], [int(1.5 * WINDOW), 13100], [2 * WINDOW + 7, WINDOW + 1, 100], [1000, 999, 3]]


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def speech(seconds: float, seed: int) -> np.ndarray:
    """[S] float32 16 kHz: harmonics of a gliding f0 under a syllable envelope, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * 16000)) / 16000
    phase = 2 * np.pi * np.cumsum(120 + 40 * np.sin(2 * np.pi * 0.7 * t + seed)) / 16000
    voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t + seed) ** 2
    return (0.2 * envelope * voiced + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def padded(waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lens = torch.tensor([w.shape[0] for w in waves])
    wavs = torch.zeros(len(waves), int(lens.max()))
    for i, w in enumerate(waves):
        wavs[i, : w.shape[0]] = torch.from_numpy(w)
    return wavs, lens


def speech_batch(lens: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return padded([speech(n / 16000, seed + i) for i, n in enumerate(lens)])


def load_upstream(directory, mode: str, freeze: str = "all"):
    return build_upstream(WhisperConfig(source=str(directory), freeze=freeze,
                                         whisper_input=mode)).eval()


# -- the log-mel front end ---------------------------------------------------------------------------------


def window_of(wave: np.ndarray, window: int) -> torch.Tensor:
    chunk = torch.zeros(1, window)
    chunk[0, : wave.shape[0]] = torch.from_numpy(wave)
    return chunk


@pytest.mark.parametrize("seconds", [0.004, 0.7, 1.99, 2.0])
def test_log_mel_equals_the_feature_extractor(tiny_whisper_dir, seconds):
    """Whole windows (3000 frames for Whisper, 200 here), and the first frames only as crop mode computes them:
    the same values, the floor (max - 8) included. 1.99 s: the window's end is reflected into the last frame."""
    extractor = WhisperFeatureExtractor.from_pretrained(tiny_whisper_dir)
    wave = speech(seconds, seed=1)
    expected = extractor([wave], sampling_rate=16000, return_tensors="pt").input_features[0]
    log_mel = WhisperLogMel(extractor)
    chunk = window_of(wave, extractor.n_samples)
    frames = min(extractor.nb_max_frames, -(-(wave.shape[0] + 200) // 160))  # those that read a real sample
    with torch.no_grad():
        whole, first = log_mel(chunk, extractor.nb_max_frames)[0], log_mel(chunk, frames)[0]
    assert whole.shape == expected.shape == (80, 200)
    torch.testing.assert_close(whole, expected, atol=5e-5, rtol=0)
    torch.testing.assert_close(first, expected[:, :frames], atol=5e-5, rtol=0)
    assert float(expected.max() - expected.min()) > 1.0  # speech, not a constant: the comparison bites


def test_log_mel_on_real_speech_with_whisper_defaults(ravdess_dir):
    """Whisper's own front end (30 s, 3000 frames; the extractor's defaults, the real checkpoints' settings)
    on real recordings, one of them tiled to fill the window."""
    extractor = WhisperFeatureExtractor()
    log_mel = WhisperLogMel(extractor)
    files = sorted(ravdess_dir.glob("Actor_0[1-4]/*.flac"))[::50][:4]
    waves = [load_audio(path) for path in files]
    waves.append(np.tile(waves[0], 10)[: extractor.n_samples])
    for wave in waves:
        expected = extractor([wave], sampling_rate=16000, return_tensors="pt").input_features[0]
        with torch.no_grad():
            got = log_mel(window_of(wave, extractor.n_samples), extractor.nb_max_frames)[0]
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_a_dithering_preprocessor_is_refused(tiny_whisper_dir):
    extractor = WhisperFeatureExtractor.from_pretrained(tiny_whisper_dir, dither=0.01)
    with pytest.raises(ConfigError, match=r"model.upstreams\[0\]: its preprocessor_config.json has dither=0.01"):
        WhisperLogMel(extractor, "model.upstreams[0]")


# -- the export twin in PyTorch: the same function as the upstream ---------------------------------------


@pytest.mark.parametrize("mode", ["pad", "crop"])
@pytest.mark.parametrize("freeze", ["all", "bottom:1"])
def test_twin_equals_the_upstream_on_every_layer(tiny_whisper_dir, mode, freeze):
    upstream = load_upstream(tiny_whisper_dir, mode, freeze)
    twin = WhisperExport(upstream).eval()
    for lens in BATCHES:
        wavs, wav_lens = speech_batch(lens)
        with torch.no_grad():
            expected, (hidden, frame_lens) = upstream(wavs, wav_lens), twin(wavs, wav_lens)
        assert frame_lens.tolist() == expected.frame_lens.tolist() == [-(-n // 320) for n in lens]
        assert len(hidden) == len(expected.hidden) == 3
        for layer, (mine, theirs) in enumerate(zip(hidden, expected.hidden)):
            assert mine.shape == theirs.shape, (lens, layer)
            real = torch.arange(mine.shape[1])[None, :] < frame_lens[:, None]
            torch.testing.assert_close(mine[real], theirs[real], atol=2e-5, rtol=1e-5)
            assert not mine[~real].any() or freeze != "all"  # padding frames are zero, as repad leaves them


# -- the exported graph, run by ONNX Runtime -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["pad", "crop"])
def test_onnx_runtime_gives_the_bundles_outputs_on_padded_batches(whisper_bundles, whisper_onnx, mode):
    model, _, _ = load_bundle(whisper_bundles[mode])
    session = onnx_export.onnx_session(whisper_onnx[mode])
    spread = []
    for lens in BATCHES:
        wavs, wav_lens = speech_batch(lens, seed=len(lens))
        probabilities, embedding = session.run(None, {"wavs": wavs.numpy(), "wav_lens": wav_lens.numpy()})
        with torch.no_grad():
            expected_embedding = model.embed(wavs, wav_lens)
            expected = torch.softmax(model.classifier(expected_embedding), dim=-1).numpy()
        np.testing.assert_allclose(probabilities, expected, atol=ATOL)
        np.testing.assert_allclose(embedding, expected_embedding.numpy(), atol=1e-4, rtol=1e-4)
        spread.append(expected)
    spread = np.concatenate(spread)
    assert np.abs(spread - spread[0]).max() > 1e-2  # different clips, different answers: the check bites


def test_crop_and_pad_graphs_differ_on_short_clips(whisper_onnx):
    """The modes are different functions (attention over the 30 s window or over the clip), and each graph
    computes its own."""
    wavs, wav_lens = speech_batch([9000])
    got = {mode: onnx_export.onnx_session(path).run(None, {"wavs": wavs.numpy(), "wav_lens": wav_lens.numpy()})[1]
           for mode, path in whisper_onnx.items()}
    assert np.abs(got["pad"] - got["crop"]).max() > 1e-3


@pytest.mark.parametrize("mode", ["pad", "crop"])
def test_recognizer_on_the_onnx_file_equals_the_bundle(whisper_bundles, whisper_onnx, tmp_path, mode):
    """Through EmotionRecognizer (`serkit predict`'s path): files of several lengths, one past two windows."""
    import soundfile as sf

    paths = []
    for i, seconds in enumerate([0.3, 1.2, 2.0, 4.5]):
        paths.append(str(tmp_path / f"clip_{i}.wav"))
        sf.write(paths[-1], speech(seconds, seed=10 + i), 16000, subtype="FLOAT")
    ours = EmotionRecognizer.load(whisper_onnx[mode], threads=1).predict_batch(paths, window_seconds=30)
    theirs = EmotionRecognizer.load(whisper_bundles[mode]).predict_batch(paths, window_seconds=30)
    labels = list(theirs[0].probabilities)
    np.testing.assert_allclose([[p.probabilities[k] for k in labels] for p in ours],
                               [[p.probabilities[k] for k in labels] for p in theirs], atol=ATOL)
    meta = onnx_export.read_metadata(whisper_onnx[mode])
    assert meta["padding_invariant"] == "true" and json.loads(meta["labels"]) == labels


def test_export_traces_on_more_than_a_window_and_checks_a_short_batch(whisper_bundles):
    """A trace with one chunk per row would fix the chunk count at 1: the graph is traced on a longer batch
    and also checked on the usual short one."""
    model, _, _ = load_bundle(whisper_bundles["crop"])
    batches = onnx_export.check_batches(ExportGraph(model))
    assert [b[0].shape[1] for b in batches] == [int(1.5 * WINDOW), max(onnx_export.EXAMPLE_LENS)]


def test_frozen_bottom_bundle_exports(tiny_whisper_dir, make_whisper_bundle, tmp_path):
    """freeze "bottom:1" (partial fine-tuning): the top block sees only the real frames, as in training."""
    bundle = make_whisper_bundle(tmp_path / "partial", tiny_whisper_dir, "pad", freeze="bottom:1", aggregator="mean")
    result = onnx_export.export_onnx(bundle, tmp_path / "partial.onnx")
    assert result.max_abs_diff <= ATOL and result.embedding_rel_diff <= 1e-3


# -- the real Whisper base encoder on real speech (../shared) --------------------------------------------


@pytest.mark.parametrize("mode", ["pad", "crop"])
def test_real_whisper_base_export_on_real_recordings(whisper_base_dir, ravdess_dir, make_whisper_bundle, tmp_path,
                                                     mode):
    """The best RAVDESS recipe's shape (Whisper base, layer-normed weighted layers, statistics pooling)."""
    bundle = make_whisper_bundle(tmp_path / "base", whisper_base_dir, mode)
    result = onnx_export.export_onnx(bundle, tmp_path / "base.onnx")
    assert result.max_abs_diff <= ATOL
    paths = [str(sorted((ravdess_dir / f"Actor_{a:02d}").glob("*.flac"))[3 * a]) for a in (2, 7, 13, 19)]
    theirs = EmotionRecognizer.load(bundle)
    ours = EmotionRecognizer.load(result.path, threads=1)
    expected, got = theirs.predict_batch(paths), ours.predict_batch(paths)
    labels = list(expected[0].probabilities)
    expected_p = np.array([[p.probabilities[k] for k in labels] for p in expected])
    np.testing.assert_allclose([[p.probabilities[k] for k in labels] for p in got], expected_p, atol=ATOL)
    assert np.abs(expected_p - expected_p[0]).max() > 1e-2
    embedding, expected_embedding = ours.embed(paths[0]), theirs.embed(paths[0])
    np.testing.assert_allclose(embedding, expected_embedding, atol=1e-3 * max(1.0, np.abs(expected_embedding).max()))
