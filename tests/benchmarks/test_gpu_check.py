"""The GPU check's two scripts at a tiny size on the CPU: benchmarks/gpu_pack.py (Whisper weights to 16 bit,
RAVDESS to Ogg/Opus) and benchmarks/gpu_check.py end to end (a tiny random Whisper-shaped encoder fine-tuned
on a synthetic RAVDESS tree over EmoBox's folds, then the throughput part with a tiny wav2vec2). Synthetic
inputs only, so these run without ../shared; what the real check measures needs a GPU (docs/benchmarks.md)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / "benchmarks"
SR = 16000
TINY_WINDOW_SECONDS = 2  # the tiny Whisper's window (its feature extractor's chunk_length), as in tests/upstream

torch.set_num_threads(1)


def _load_packer():
    spec = importlib.util.spec_from_file_location("gpu_pack", BENCHMARKS / "gpu_pack.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_pack = _load_packer()


def voiced(seconds: float, seed: int, rate: int = SR) -> np.ndarray:
    """[S] float32: a few harmonics of a gliding pitch plus a little noise (speech-like enough for Opus)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    f0 = 120 + 40 * rng.random() + 20 * np.sin(2 * np.pi * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 5))
    return (0.2 * wave + 0.005 * rng.standard_normal(t.size)).astype(np.float32)


def ravdess_tree(root: Path, files_per_actor: int = 2) -> Path:
    """RAVDESS's official layout with short synthetic FLAC clips: 24 actors, emotions cycling over all 8."""
    for actor in range(1, 25):
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir(parents=True)
        for j in range(files_per_actor):
            emotion = (actor + j) % 8 + 1
            name = f"03-01-{emotion:02d}-01-{j % 2 + 1:02d}-01-{actor:02d}.flac"
            sf.write(folder / name, voiced(0.8 + 0.1 * (actor % 5), seed=100 * actor + j), SR)
    return root


def tiny_whisper(directory: Path) -> Path:
    """A random Whisper-shaped checkpoint (hidden 32, 2 encoder layers, a 2 s window), saved float32."""
    from serkit.upstream.tiny import save_tiny_whisper

    return save_tiny_whisper(directory, window_seconds=TINY_WINDOW_SECONDS)


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


# -- the packer ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate, channels", [(16000, 1), (44100, 2)])
def test_opus_round_trip_keeps_the_length_at_16k_mono(tmp_path, rate, channels):
    from serkit.data.audio import load_audio

    wave = voiced(1.3, seed=1, rate=rate)
    source = tmp_path / "clip.flac"
    sf.write(source, np.stack([wave] * channels, axis=1) if channels > 1 else wave, rate)
    expected = load_audio(source)  # what serkit trains on: 16 kHz mono

    written = gpu_pack.encode_opus(source, tmp_path / "out" / "clip.ogg")

    info = sf.info(tmp_path / "out" / "clip.ogg")
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("OGG", "OPUS", SR, 1)
    decoded, decoded_rate = sf.read(tmp_path / "out" / "clip.ogg", dtype="float32")
    assert decoded_rate == SR and written == len(expected) == len(decoded)
    assert np.corrcoef(expected, decoded)[0, 1] > 0.9  # lossy, but the same signal
    assert not list((tmp_path / "out").glob(".*.tmp"))  # written atomically, nothing left behind


def test_whisper_weights_are_packed_in_16_bit_and_load_back_as_float32(tmp_path):
    from safetensors import safe_open

    from serkit.upstream import build_upstream
    from serkit.upstream.whisper import WhisperConfig

    source = tiny_whisper(tmp_path / "whisper")
    facts = gpu_pack.pack_whisper(source, tmp_path / "pack" / "whisper-base-encoder")

    assert facts["weights"].startswith("cast to float16")
    with safe_open(str(tmp_path / "pack" / "whisper-base-encoder" / "model.safetensors"), framework="pt") as f:
        assert {str(f.get_slice(key).get_dtype()) for key in f.keys()} == {"F16"}
    built = {}
    for name, folder in (("original", source), ("packed", tmp_path / "pack" / "whisper-base-encoder")):
        upstream = build_upstream(WhisperConfig(source=str(folder), freeze="all"))
        built[name] = dict(upstream.named_parameters())
    assert {p.dtype for p in built["packed"].values()} == {torch.float32}
    for key, original in built["original"].items():
        torch.testing.assert_close(built["packed"][key], original, atol=1e-3, rtol=1e-3)


def test_pack_writes_the_folders_and_refuses_a_pack_over_the_limit(tmp_path, capsys):
    ravdess = ravdess_tree(tmp_path / "ravdess", files_per_actor=1)
    whisper = tiny_whisper(tmp_path / "whisper")
    out = tmp_path / "pack"
    args = ["--out", str(out), "--whisper", str(whisper), "--ravdess", str(ravdess), "--no-wheels"]

    assert gpu_pack.main(args) == 0
    oggs = sorted(out.glob("ravdess/Actor_*/*.ogg"))
    assert len(oggs) == 24 and {p.stem for p in oggs} == {p.stem for p in ravdess.glob("Actor_*/*.flac")}
    facts = json.loads((out / "pack.json").read_text())
    assert facts["ravdess"]["files"] == 24 and facts["wheels"] is None and facts["pack_bytes"] > 0
    assert "MiB of 64 MiB" in capsys.readouterr().out

    assert gpu_pack.main([*args, "--limit-mib", "0.01"]) == 1  # repacking keeps the files, the size check fails


# -- the check, end to end -------------------------------------------------------------------------------


def test_gpu_check_runs_end_to_end_on_the_cpu(tmp_path):
    ravdess = ravdess_tree(tmp_path / "ravdess")
    whisper = tiny_whisper(tmp_path / "whisper")
    pack = tmp_path / "pack"
    assert gpu_pack.main(["--out", str(pack), "--whisper", str(whisper), "--ravdess", str(ravdess),
                          "--no-wheels"]) == 0
    out = tmp_path / "result" / "gpu_check.json"
    command = [sys.executable, str(BENCHMARKS / "gpu_check.py"), "--pack", str(pack), "--out", str(out),
               "--threads", "1", "--num-workers", "0", "--precision", "bf16-mixed",
               # fold 1 runs, fold 2 does not fit the (zero) budget
               "--folds", "1,2", "--epochs", "2", "--budget-s", "0", "--max-batch-seconds", "8",
               "--w2v2-size", "tiny", "--w2v2-batch-seconds", "4,4/0.25", "--w2v2-steps", "2", "--w2v2-warmup", "1",
               "--w2v2-max-seconds", "1.5"]
    done = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    report = json.loads(out.read_text())
    whisper_part = report["whisper"]
    assert [row["fold"] for row in whisper_part["folds"]] == [1] and whisper_part["skipped_folds"] == [2]
    assert whisper_part["utterances"] == 48 and len(whisper_part["labels"]) == 8
    assert whisper_part["config"]["model"]["upstreams"][0]["freeze"] == "cnn"
    assert whisper_part["config"]["train"]["precision"] == "bf16-mixed"
    row = whisper_part["folds"][0]
    # EmoBox fold 1 tests on actors 1, 11, 20, 21 and validates on fold 2's (4, 10, 12, 14): 2 clips each
    assert (row["train_utterances"], row["valid_utterances"], row["test_utterances"]) == (32, 8, 8)
    assert row["epochs"] == 2 and row["checkpoints_averaged"] == 2 and row["timed_epochs"] == 1
    for key in ("test", "best_single_test"):
        assert 0 <= row[key]["ua"] <= 1 and 0 <= row[key]["wa"] <= 1
    assert row["train_utt_per_s"] > 0 and row["test_utt_per_s"] > 0 and row["train_audio_s_per_s"] > 0
    assert row["trainable_params"] > 0 and row["peak_gpu_bytes"] is None  # no GPU here
    assert whisper_part["summary"]["ua"]["mean"] == pytest.approx(row["test"]["ua"])

    w2v2 = report["w2v2"]
    assert w2v2["size"] == "tiny" and w2v2["aggregator"] == "ecapa" and w2v2["upstream"]["freeze"] == "cnn"
    assert 0 < w2v2["trainable_params"] < w2v2["params"]  # the conv feature encoder is frozen
    assert w2v2["durations"]["max_s"] == pytest.approx(1.5)
    plain, rounded = w2v2["runs"]
    for run in (plain, rounded):
        assert run["steps"] == 2 and run["utts_per_step"] >= 1 and run["utt_per_s"] > 0
        assert 0 < run["audio_s_per_step"] <= 4 + 1e-6  # within max_batch_seconds
        assert 1 <= run["distinct_widths"] <= 2 and 0 <= run["new_widths"] <= run["distinct_widths"]
    assert (plain["pad_multiple_s"], plain["sampler_seed"], rounded["pad_multiple_s"], rounded["sampler_seed"]) == (
        0, 0, 0.25, 1)
    assert w2v2["upstream"]["pad_multiple_s"] == "per run (runs[i])"

    table = out.with_suffix(".md").read_text()
    assert table in done.stdout
    assert "| fold | train / test utts |" in table and "mean ± std" in table
    assert "Training-step throughput: wav2vec2-tiny-shaped encoder" in table
    assert "folds 2 not run" in table
    assert "| 4 | 0.25 | 1 | 2 |" in table  # max_batch_seconds, pad_multiple_s, sampler seed, timed steps


@pytest.mark.parametrize("spec,message", [("60,6O/0.5", "'6O/0.5' is not SECONDS or SECONDS/PAD"),
                                          ("60/-0.5", "pad_multiple_s must be 0 (off) or"),
                                          ("60/nan", "pad_multiple_s must be 0 (off) or"),
                                          ("0/0.5", "max_batch_seconds must be a positive")])
def test_a_measurement_that_is_not_seconds_or_seconds_over_pad_is_refused(spec, message):
    command = [sys.executable, str(BENCHMARKS / "gpu_check.py"), "--skip-whisper", "--w2v2-batch-seconds", spec]
    done = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and message in done.stderr


def test_a_failing_part_is_reported_and_the_run_exits_non_zero(tmp_path, monkeypatch, capsys):
    # a part that breaks mid-run (on a GPU: an out-of-memory) must leave the others' figures and a non-zero exit
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # gpu_check imports _common and batching from beside it
    monkeypatch.setattr(os, "environ", dict(os.environ))  # the check sets thread and hub variables: undone after
    spec = importlib.util.spec_from_file_location("gpu_check_under_test", BENCHMARKS / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(gpu_check, "random_speech_loader", out_of_memory)
    out = tmp_path / "gpu_check.json"
    code = gpu_check.main(["--out", str(out), "--threads", "1", "--num-workers", "0", "--skip-whisper",
                           "--w2v2-size", "tiny", "--w2v2-batch-seconds", "4", "--w2v2-steps", "1",
                           "--w2v2-warmup", "1"])

    assert code == 1
    report = json.loads(out.read_text())
    assert report["whisper"] is None and [e["part"] for e in report["errors"]] == ["w2v2"]
    assert "CUDA out of memory (simulated)" in report["errors"][0]["traceback"]
    assert report["w2v2"]["runs"] == []  # built, then the first measurement broke
    assert "**Part w2v2 failed:**" in capsys.readouterr().out
