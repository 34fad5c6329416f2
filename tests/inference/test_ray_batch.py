"""`serkit predict --engine ray`: the same rows as the local engine (windows, VAD and file segments), Parquet
parts that survive a killed job and resume with every row once, error rows, manifests, and the messages for a
missing extra or a mismatched restart.

One local Ray (2 CPUs) serves the whole module: starting Ray costs seconds. Tests that do not run a job need
no Ray and run without the extra."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from serkit.cli import main
from serkit_synth.montage import synthetic_talk
from serkit.errors import DataError
from serkit.inference.ray_inputs import archive_inputs

LABELS = ["neu", "hap", "ang", "sad"]
# Ray Data's own DataContext warns about its deprecated fields whenever it copies itself: not ours to fix
# one xdist worker runs the whole module (Makefile: --dist loadgroup), so the module-scoped Ray starts once
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context"), pytest.mark.xdist_group("ray")]


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray", reason="the ray extra (pip install 'serkit[ray]') is not installed")
    pytest.importorskip("ray.data", reason="the ray extra (pip install 'serkit[ray]') is not installed")
    started = not ray.is_initialized()
    if started:
        # address="local": a new Ray of 2 CPUs, even where `ray start` left one running on this machine
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray
    if started:
        ray.shutdown()


def local_rows(args: list[str], capsys) -> dict[tuple, dict]:
    """`serkit predict ARGS --skip-errors` (the local engine) -> {(file, window or segment): row}."""
    assert main(["predict", *args, "--skip-errors"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    return {(row["file"], row.get("window", row.get("segment"))): row for row in rows}


def ray_rows(out: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(out).to_pylist()  # the folder as one table: hidden and `_` files are skipped


def assert_same_rows(local: dict[tuple, dict], parts: list[dict], index: str) -> None:
    """Every local row has one Parquet row with the same label, times, and probabilities within 1e-5."""
    keyed = {(row["path"], row[index]): row for row in parts}
    assert len(keyed) == len(parts), "a (path, index) pair appears twice"
    assert keyed.keys() == local.keys()
    for key, expected in local.items():
        got = keyed[key]
        assert got["error"] == expected.get("error")
        assert got["label"] == expected.get("label"), key
        for name in ("start", "end", "duration", "speech_seconds", "speaker"):
            if name in expected:
                assert got[name] == pytest.approx(expected[name]), (key, name)
        probabilities = expected.get("probabilities") or {}
        if probabilities:
            np.testing.assert_allclose([got[label] for label in LABELS], [probabilities[label] for label in LABELS],
                                       atol=1e-5, rtol=0)
        else:
            assert all(got[label] is None for label in LABELS)


@pytest.fixture
def archive(tmp_path, odd_audio_dir) -> Path:
    """The odd files (every rate, channel count and format), a long-enough file for windows, a corrupt file."""
    folder = tmp_path / "archive"
    folder.mkdir()
    for path in odd_audio_dir.rglob("*"):
        if path.is_file() and path.suffix != ".txt":
            (folder / path.name).write_bytes(path.read_bytes())
    (folder / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt not really")
    return folder


def test_windows_give_the_local_engines_rows_and_a_corrupt_file_an_error_row(ray_session, tiny_bundle, archive,
                                                                            tmp_path, recognizer, monkeypatch,
                                                                            capsys):
    # relative paths: Ray's workers run in another folder (where the module's Ray started), so this checks that
    # they find the files from the driver's folder, and that rows and errors show the paths as given
    monkeypatch.chdir(tmp_path)
    settings = ["--window", "1", "--hop", "0.5"]
    local = local_rows([str(tiny_bundle), "archive", *settings], capsys)
    out = tmp_path / "results.parquet"
    # 2 files per batch: other batches, and other padding, than the local run's
    assert main(["predict", str(tiny_bundle), "archive", *settings, "--engine", "ray", "--out", "results.parquet",
                 "--ray-batch-size", "2", "--embeddings"]) == 0
    assert "7 files predicted (1 of them error rows), 0 already" in capsys.readouterr().err
    parts = ray_rows(out)
    assert_same_rows(local, parts, "window")
    assert sum(row["window"] is not None for row in parts) > 6  # the windows of the 1.2-3 s files are compared
    errors = [row for row in parts if row["error"]]
    assert [row["id"] for row in errors] == ["archive/corrupt.wav"]
    assert errors[0]["error"].startswith("archive/corrupt.wav: ")
    assert len(list(out.glob("part-*.parquet"))) == 4
    # the whole-file embedding is EmotionRecognizer.embed's (duration-weighted over the windows)
    phone = next(row for row in parts if row["path"].endswith("phone_8k.wav") and row["window"] is None)
    expected = recognizer.embed(phone["path"], window_seconds=1.0, hop_seconds=0.5)
    np.testing.assert_allclose(phone["embedding"], expected, atol=1e-5, rtol=0)

    # a restart finds everything written: no Ray job, nothing rewritten
    before = {part.name: part.stat().st_mtime_ns for part in out.glob("part-*")}
    assert main(["predict", str(tiny_bundle), "archive", *settings, "--engine", "ray", "--out", str(out),
                 "--embeddings"]) == 0
    assert "0 files predicted (0 of them error rows), 7 already" in capsys.readouterr().err
    assert {part.name: part.stat().st_mtime_ns for part in out.glob("part-*")} == before
    # a restart with other settings would mix rows: refused, naming the setting
    assert main(["predict", str(tiny_bundle), "archive", "--window", "2", "--hop", "0.5", "--engine", "ray",
                 "--out", str(out), "--embeddings"]) == 1
    assert "window_seconds = 1.0; this run has 2.0" in capsys.readouterr().err


def test_vad_and_file_segments_give_the_local_engines_rows(ray_session, tiny_bundle, tmp_path, capsys):
    pytest.importorskip("silero_vad", reason="the vad extra (pip install 'serkit[vad]') is not installed")
    folder = tmp_path / "talks"
    folder.mkdir()
    for seed, rate in enumerate((16000, 22050)):
        samples, _ = synthetic_talk([(0.6, 1.5), (0.8, 2.0)], seed=seed, sample_rate=rate)
        sf.write(folder / f"talk_{rate}.wav", samples, rate)
    turns = tmp_path / "turns.csv"
    turns.write_text("file,start,end,speaker\ntalk_16000.wav,0.5,2.2,ann\ntalk_16000.wav,2.5,4.9,bob\n"
                     "talk_22050.wav,0.1,3.0,ann\n")
    # a Parquet manifest with ids: ids key the rows, paths are relative to the manifest
    import pyarrow as pa
    import pyarrow.parquet as pq

    manifest = folder / "talks.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "path": ["talk_16000.wav", "talk_22050.wav"]}), manifest)
    paths = [str(folder / "talk_16000.wav"), str(folder / "talk_22050.wav")]
    for segments, extra in (("vad", ["--max-segment", "1.5"]), (str(turns), ["--window", "1", "--hop", "0.5"])):
        local = local_rows([str(tiny_bundle), *paths, "--segments", segments, *extra], capsys)
        out = tmp_path / f"{Path(segments).stem}.parquet"
        # decoding in CPU tasks of their own, as beside GPU actors: the pieces travel through Ray's object store
        assert main(["predict", str(tiny_bundle), str(manifest), "--segments", segments, *extra, "--engine", "ray",
                     "--out", str(out), "--ray-actors", "1", "--ray-decode-cpus", "0.5"]) == 0
        parts = ray_rows(out)
        assert_same_rows(local, parts, "segment")
        assert sorted({row["id"] for row in parts}) == ["a", "b"]
        assert sum(row["segment"] is not None for row in parts) >= 3, segments


def test_a_killed_job_resumes_with_every_row_once(ray_session, tiny_bundle, tmp_path, voice, capsys):
    folder = tmp_path / "many"
    folder.mkdir()
    for k in range(30):
        sf.write(folder / f"clip_{k:02d}.wav", voice(2.0, 16000, 1, seed=k), 16000)
    out = tmp_path / "results.parquet"
    # one file per part, and one 0.2 s window per forward pass: a few seconds of work to kill in the middle of
    args = [str(tiny_bundle), str(folder), "--engine", "ray", "--out", str(out), "--ray-batch-size", "1",
            "--ray-actors", "1", "--window", "0.2", "--hop", "0.1", "--batch-seconds", "0.2"]
    address = ray_session.get_runtime_context().gcs_address
    with open(tmp_path / "killed.log", "wb") as log:
        job = subprocess.Popen([sys.executable, "-m", "serkit", "predict", *args, "--address", address],
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
        try:
            deadline = time.monotonic() + 180
            while len(list(out.glob("part-*.parquet"))) < 3:
                assert job.poll() is None, f"the job ended before it was killed: {(tmp_path / 'killed.log').read_text()}"
                assert time.monotonic() < deadline, "no parts after 180 s"
                time.sleep(0.02)
        finally:
            os.killpg(job.pid, signal.SIGKILL)  # the driver, as a node failure or `kill -9` would
            job.wait()
    # Ray ends the job's actors once it sees the driver gone; wait until no part has appeared for 2 s
    count, still = -1, time.monotonic()
    while time.monotonic() - still < 2.0:
        if len(list(out.glob("part-*.parquet"))) != count:
            count, still = len(list(out.glob("part-*.parquet"))), time.monotonic()
        time.sleep(0.1)
    written = {row["id"] for row in ray_rows(out)}  # every part is readable: none was left half-written
    assert 3 <= len(written) < 30, "the kill should leave the job half done"

    # the rest, in bigger batches (they change how fast, not what: they are not part of the run record)
    assert main(["predict", *args, "--ray-batch-size", "8", "--batch-seconds", "10"]) == 0
    assert f"{30 - len(written)} files predicted (0 of them error rows), {len(written)} already" \
        in capsys.readouterr().err
    rows = ray_rows(out)
    assert not list(out.glob(".*.tmp"))
    assert sorted({row["id"] for row in rows}) == sorted(str(path) for path in folder.glob("*.wav"))
    keys = [(row["id"], row["window"]) for row in rows]
    assert len(keys) == len(set(keys)) == 30 * 20  # each file once: its whole-file row and 19 windows


def test_missing_extra_says_how_to_install(monkeypatch, tiny_bundle, odd_audio_dir, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as without the extra
    monkeypatch.setitem(sys.modules, "ray.data", None)
    assert main(["predict", str(tiny_bundle), str(odd_audio_dir), "--engine", "ray",
                 "--out", str(tmp_path / "r.parquet")]) == 1
    assert "pip install 'serkit[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "r.parquet").exists()


@pytest.mark.parametrize("args, message", [
    (["--engine", "ray"], "--engine ray needs --out FOLDER"),
    (["--engine", "ray", "--out", "x.parquet", "--format", "csv"], "--format applies to the local engine"),
    (["--engine", "ray", "--out", "x.parquet", "--device", "cuda:1"], "use cpu or cuda"),
    (["--embeddings"], "--embeddings apply to --engine ray"),
    (["--ray-actors", "2", "--address", "auto"], "--address, --ray-actors apply to --engine ray"),
    (["--engine", "ray", "--out", "x.parquet", "--ray-batch-size", "0"], "--ray-batch-size is 0; expected files"),
    (["--engine", "ray", "--out", "x.parquet", "--ray-gpus", "1"], "--ray-gpus applies to --device cuda"),
])
def test_options_that_do_not_fit_are_refused(args, message, tiny_bundle, odd_audio_dir, capsys):
    assert main(["predict", str(tiny_bundle), str(odd_audio_dir), *args]) == 1
    assert message in capsys.readouterr().err


def test_cuda_on_a_cluster_without_gpus_is_refused(ray_session, tiny_bundle, odd_audio_dir, tmp_path, capsys):
    assert main(["predict", str(tiny_bundle), str(odd_audio_dir), "--engine", "ray", "--device", "cuda",
                 "--out", str(tmp_path / "r.parquet")]) == 1
    assert "--device cuda, but the Ray cluster has no GPU (it has 2 CPUs)" in capsys.readouterr().err


def test_an_error_in_a_worker_reaches_the_caller_as_serkits_own(ray_session, odd_audio_dir, tmp_path):
    """The actors load the model themselves: a bundle they cannot read stops the job with the bundle's own
    DataError (naming it), not with Ray's wrapping of it."""
    from serkit.inference.ray_batch import ArchiveJob, RayOptions, predict_archive

    job = ArchiveJob(model=str(tmp_path / "gone"), out=str(tmp_path / "r.parquet"), labels=tuple(LABELS))
    with pytest.raises(DataError, match=r"gone: no such file or folder.* \(in a model actor on "):
        predict_archive(job, archive_inputs([str(odd_audio_dir)]), RayOptions(actors=1), progress=False)


def test_out_must_be_a_new_folder_or_one_of_this_engine(ray_session, tiny_bundle, odd_audio_dir, tmp_path, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine\n")
    assert main(["predict", str(tiny_bundle), str(odd_audio_dir), "--engine", "ray", "--out", str(busy)]) == 1
    assert "no _serkit_run.json" in capsys.readouterr().err
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]


# -- inputs (no Ray needed) -----------------------------------------------------------------------------------

def test_manifests_give_ids_and_paths_relative_to_themselves(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.csv").write_text("path,id,label\nx/1.wav,one,neu\n/abs/2.wav,,hap\n")
    (tmp_path / "b.jsonl").write_text('{"path": "3.flac"}\n\n{"path": "4.flac", "id": 4}\n')
    pq.write_table(pa.table({"path": ["5.wav"], "id": ["five"]}), tmp_path / "c.parquet")
    inputs = archive_inputs([str(tmp_path / name) for name in ("a.csv", "b.jsonl", "c.parquet")])
    assert inputs.ids == ["one", "/abs/2.wav", str(tmp_path / "3.flac"), "4", "five"]
    assert inputs.paths == [str(tmp_path / "x/1.wav"), "/abs/2.wav", str(tmp_path / "3.flac"),
                            str(tmp_path / "4.flac"), str(tmp_path / "5.wav")]


@pytest.mark.parametrize("name, text, message", [
    ("dup.csv", "id,path\nu1,a.wav\nu2,b.wav\nu1,c.wav\n", r"dup.csv:4: id 'u1' is also given by .*dup.csv:2"),
    ("nopath.csv", "file,id\na.wav,u1\n", r"nopath.csv:1: missing columns \['path'\]"),
    ("nopath.parquet", None, r"nopath.parquet: missing columns \['path'\] \(columns: \['file'\]\)"),
    ("empty.jsonl", '{"path": "a.wav"}\n{"path": " "}\n', r"empty.jsonl:2: empty path"),
    ("list.jsonl", '["a.wav"]\n', r"list.jsonl:1: expected a JSON object"),
])
def test_bad_manifests_name_the_file_and_line(tmp_path, name, text, message):
    if name.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"file": ["a.wav"]}), tmp_path / name)
    else:
        (tmp_path / name).write_text(text)
    with pytest.raises(DataError, match=message):
        archive_inputs([str(tmp_path / name)])


def test_a_file_listed_twice_is_refused(odd_audio_dir):
    path = str(odd_audio_dir / "mono_16k.wav")
    with pytest.raises(DataError, match="mono_16k.wav' is also given by"):
        archive_inputs([str(odd_audio_dir), path])

