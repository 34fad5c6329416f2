"""`serkit predict` through serkit.cli.main: inputs (files, folders, stdin), formats, windows, errors, transcripts."""

from __future__ import annotations

import csv
import io
import json
import os
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from serkit.cli import main

LABELS = ["neu", "hap", "ang", "sad"]


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_folder_of_odd_files_and_a_long_one(tiny_bundle, odd_audio_dir, odd_files, long_audio_file, capsys):
    assert main(["predict", str(tiny_bundle), str(odd_audio_dir), str(long_audio_file)]) == 0
    rows = jsonl(capsys.readouterr().out)
    file_rows = [r for r in rows if r["window"] is None]
    # the folder is searched recursively, README.txt skipped, files sorted; then the long file
    expected = sorted(str(odd_audio_dir / name) for name in odd_files) + [str(long_audio_file)]
    assert [r["file"] for r in file_rows] == expected
    for row in rows:
        assert list(row["probabilities"]) == LABELS
        assert abs(sum(row["probabilities"].values()) - 1) <= 1e-5
        assert row["label"] == max(row["probabilities"], key=row["probabilities"].get)
        assert row["duration"] == pytest.approx(row["end"] - row["start"])
    window_rows = [r for r in rows if r["window"] is not None]
    assert {r["file"] for r in window_rows} == {str(long_audio_file)}  # only the 10-minute file is windowed
    assert [r["window"] for r in window_rows] == list(range(119))
    assert window_rows[1]["start"] == 5.0 and window_rows[1]["end"] == 15.0 and window_rows[-1]["end"] == 600.0
    # a file's row comes first, then its windows
    long_index = next(i for i, r in enumerate(rows) if r["file"] == str(long_audio_file))
    assert rows[long_index]["window"] is None and rows[long_index]["duration"] == 600.0


def test_csv_has_one_column_per_class(tiny_bundle, odd_audio_dir, tmp_path, capsys):
    out = tmp_path / "predictions.csv"
    paths = [str(odd_audio_dir / "phone_8k.wav"), str(odd_audio_dir / "stereo_44k1.wav")]
    args = ["predict", str(tiny_bundle), *paths, "--format", "csv", "--out", str(out), "--window", "2", "--hop", "1"]
    assert main(args) == 0
    assert capsys.readouterr().out == ""  # everything went to --out
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["file", "window", "start", "end", "duration", "label", *LABELS, "error"]
    # 3 s at window 2 / hop 1: the file row and 2 windows; 1.5 s: one row
    assert [(r["file"], r["window"]) for r in rows] == [(paths[0], ""), (paths[0], "0"), (paths[0], "1"), (paths[1], "")]
    for row in rows:
        assert sum(float(row[label]) for label in LABELS) == pytest.approx(1.0, abs=1e-5)
        assert row["error"] == ""


def test_paths_from_stdin(tiny_bundle, odd_audio_dir, monkeypatch, capsys):
    names = ["tiny_0.1s.wav", "nested/voice_22k.flac"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(f"{odd_audio_dir / n}\n\n" for n in names)))
    assert main(["predict", str(tiny_bundle), "-"]) == 0
    assert [r["file"] for r in jsonl(capsys.readouterr().out)] == [str(odd_audio_dir / n) for n in names]


def test_an_empty_folder_or_an_empty_stdin_list_is_an_error_not_silence(tiny_bundle, tmp_path, monkeypatch, capsys):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no audio here")
    assert main(["predict", str(tiny_bundle), str(tmp_path / "empty")]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and f"{tmp_path / 'empty'}: no audio files in it or its sub-folders" in captured.err
    assert main(["predict", str(tiny_bundle), str(tmp_path / "empty"), "--skip-errors"]) == 1
    assert "1 folders could not be listed or held no audio" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    assert main(["predict", str(tiny_bundle), "-"]) == 1
    assert "no paths on standard input" in capsys.readouterr().err


def test_manifests_give_their_files_relative_to_their_folder(tiny_bundle, odd_audio_dir, tmp_path, capsys):
    names = ["tiny_0.1s.wav", "nested/voice_22k.flac"]
    (odd_audio_dir / "list.csv").write_text("id,path,speaker\n" + "".join(f"u{k},{n},x\n" for k, n in enumerate(names)))
    jsonl_manifest = tmp_path / "list.jsonl"
    jsonl_manifest.write_text(json.dumps({"path": str(odd_audio_dir / names[0])}) + "\n")
    try:
        assert main(["predict", str(tiny_bundle), str(odd_audio_dir / "list.csv"), str(jsonl_manifest)]) == 0
    finally:
        (odd_audio_dir / "list.csv").unlink()  # the folder is shared by the module's other tests
    assert [r["file"] for r in jsonl(capsys.readouterr().out)] == [str(odd_audio_dir / n) for n in [*names, names[0]]]
    no_path = tmp_path / "bad.csv"
    no_path.write_text("id,file\nu0,a.wav\n")
    assert main(["predict", str(tiny_bundle), str(no_path)]) != 0
    assert "bad.csv:1: missing columns ['path']" in capsys.readouterr().err


def test_batch_seconds_changes_nothing_but_speed(tiny_bundle, odd_audio_dir, capsys):
    outputs = []
    for budget in ("0.5", "500"):
        assert main(["predict", str(tiny_bundle), str(odd_audio_dir), "--batch-seconds", budget]) == 0
        outputs.append(jsonl(capsys.readouterr().out))
    for small, large in zip(*outputs):
        assert small["file"] == large["file"]
        np.testing.assert_allclose(list(small["probabilities"].values()), list(large["probabilities"].values()),
                                   atol=1e-5)


def test_bad_file_stops_with_its_name_or_becomes_an_error_row(tiny_bundle, odd_audio_dir, tmp_path, capsys):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio at all")
    good = str(odd_audio_dir / "mono_16k.wav")
    assert main(["predict", str(tiny_bundle), good, str(broken)]) == 1
    assert "broken.wav" in capsys.readouterr().err

    assert main(["predict", str(tiny_bundle), good, str(broken), good, "--skip-errors"]) == 0
    captured = capsys.readouterr()
    rows = jsonl(captured.out)
    assert [r["file"] for r in rows] == [good, str(broken), good]
    assert "error" in rows[1] and "broken.wav" in rows[1]["error"] and "label" not in rows[1]
    assert "1 of 3 files failed" in captured.err


@pytest.fixture(scope="module")
def text_only_bundle(tmp_path_factory):
    """A tiny BERT -> mean pooling model: audio gives only the duration, the transcript decides."""
    from serkit.bundle import save_bundle
    from serkit.config import load_config
    from serkit.model import build_model
    from serkit.upstream.tiny import save_tiny_bert

    root = tmp_path_factory.mktemp("text_only_bundle")
    bert = save_tiny_bert(root / "bert", "i am so happy angry sad today".split())
    cfg = load_config({"model": {"upstreams": [{"name": "text", "source": str(bert), "layers": "last", "freeze": "all"}],
                                 "aggregators": [{"name": "mean"}]}})
    torch.manual_seed(0)
    return save_bundle(root / "model", build_model(cfg.model, num_classes=4).eval(), cfg, LABELS)


def test_text_models_read_sidecars_or_a_transcripts_table(text_only_bundle, tmp_path, capsys):
    a, b = tmp_path / "a.wav", tmp_path / "b.flac"
    for path in (a, b):
        sf.write(path, np.zeros(8000, dtype=np.float32), 16000)
    assert main(["predict", str(text_only_bundle), str(a)]) == 1
    assert "needs the transcript" in capsys.readouterr().err  # says what is missing, names the file

    (tmp_path / "a.txt").write_text("i am so happy today\n")  # sidecar
    table = tmp_path / "texts.jsonl"
    table.write_text(json.dumps({"audio": "b.flac", "words": "i am so angry"}) + "\n")
    assert main(["predict", str(text_only_bundle), str(a), str(b), "--transcripts", str(table),
                 "--path-column", "audio", "--text-column", "words"]) == 0
    by_table = {r["file"]: r["probabilities"] for r in jsonl(capsys.readouterr().out)}

    csv_table = tmp_path / "texts.csv"
    csv_table.write_text(f"path,text\n{a},i am so angry\n{b},i am so angry\n")
    assert main(["predict", str(text_only_bundle), str(a), str(b), "--transcripts", str(csv_table)]) == 0
    by_csv = {r["file"]: r["probabilities"] for r in jsonl(capsys.readouterr().out)}
    # the same transcript gives the same answer whichever file it came from; another transcript another one
    np.testing.assert_allclose(list(by_table[str(b)].values()), list(by_csv[str(a)].values()), atol=1e-6)
    assert np.abs(np.subtract(list(by_table[str(a)].values()), list(by_csv[str(a)].values()))).max() > 1e-4


def test_transcripts_table_errors_name_file_and_line(text_only_bundle, tmp_path, capsys):
    table = tmp_path / "texts.jsonl"
    table.write_text('{"path": "a.wav", "text": "hi"}\n{"path": "b.wav"}\n')
    assert main(["predict", str(text_only_bundle), str(tmp_path / "a.wav"), "--transcripts", str(table)]) == 1
    assert f"{table}:2:" in capsys.readouterr().err


def test_predict_caps_onednn_primitive_cache_unless_the_user_set_it(tiny_bundle, odd_audio_dir, monkeypatch, capsys):
    from serkit.util.onednn import ENV, LEGACY_ENV, CACHE_CAPACITY

    path = str(odd_audio_dir / "phone_8k.wav")
    monkeypatch.delenv(ENV, raising=False)  # conftest restores it after the test
    monkeypatch.delenv(LEGACY_ENV, raising=False)
    assert main(["predict", str(tiny_bundle), path]) == 0
    assert os.environ[ENV] == str(CACHE_CAPACITY)  # without a cap, memory grows with the file count
    monkeypatch.setenv(ENV, "512")
    assert main(["predict", str(tiny_bundle), path]) == 0
    assert os.environ[ENV] == "512"  # the user's own setting wins
    monkeypatch.delenv(ENV)
    monkeypatch.setenv(LEGACY_ENV, "256")
    assert main(["predict", str(tiny_bundle), path]) == 0
    assert ENV not in os.environ  # oneDNN's older name counts as the user's setting too
    assert len(jsonl(capsys.readouterr().out)) == 3
