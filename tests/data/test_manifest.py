"""Manifest corpora (CSV / JSONL): columns, paths, segments, folds, and errors naming file and line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from serkit.data.corpora import CORPORA
from serkit.data.corpora.manifest import Manifest
from serkit.data.utterance import write_jsonl
from serkit.errors import ConfigError, DataError


def wav(path: Path, seconds: float = 0.5, sr: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.full(round(seconds * sr), 0.1, np.float32), sr)
    return path


def csv_manifest(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_registered():
    assert CORPORA.get("manifest") is Manifest


def test_csv_with_relative_absolute_paths_and_segments(tmp_path):
    wav(tmp_path / "wavs" / "a.wav", 1.0)
    wav(tmp_path / "wavs" / "b.wav", 0.5, sr=8000)
    outside = wav(tmp_path.parent / f"{tmp_path.name}_outside" / "c.wav", 0.25)
    manifest = csv_manifest(
        tmp_path / "corpus.csv",
        "path,label,speaker,text,start,end,extra",
        [
            "wavs/a.wav,hap,s1,hello there,0.2,0.7,x",
            "wavs/b.wav,sad,s2,,,,y",
            f"{outside},hap,s3,,,,z",
        ],
    )
    utts = Manifest.prepare(manifest).utterances
    assert [u.id for u in utts] == ["wavs/a@0.2-0.7", "wavs/b", str(outside.with_suffix(""))]
    assert utts[0].path == str(tmp_path / "wavs" / "a.wav")
    assert (utts[0].start, utts[0].end, utts[0].text) == (0.2, 0.7, "hello there")
    assert utts[0].duration == pytest.approx(0.5)
    assert utts[1].duration == pytest.approx(0.5) and utts[1].text is None and utts[1].end is None
    assert utts[2].path == str(outside)


def test_jsonl_and_round_trip_of_written_manifests(tmp_path):
    wav(tmp_path / "a.wav")
    wav(tmp_path / "b.wav")
    manifest = tmp_path / "m.jsonl"
    rows = [
        {"id": "u1", "path": "a.wav", "label": "ang", "speaker": "s1", "fold": 1, "duration": 0.5},
        {"id": "u2", "path": "b.wav", "label": "neu", "speaker": "s2", "fold": 2, "start": 0.1},
    ]
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    utts = Manifest.prepare(manifest).utterances
    assert [(u.id, u.group, u.start) for u in utts] == [("u1", "1", 0.0), ("u2", "2", 0.1)]
    assert utts[1].duration == pytest.approx(0.4)
    again = tmp_path / "again.jsonl"
    write_jsonl(utts, again)
    assert Manifest.prepare(again).utterances == utts


def test_folds_from_a_column_in_natural_order(tmp_path):
    wav(tmp_path / "a.wav")
    groups = ["2", "10", "1", "2", "10", "1"]
    manifest = csv_manifest(
        tmp_path / "m.csv", "path,label,speaker,group,id", [f"a.wav,x,s{i},{g},u{i}" for i, g in enumerate(groups)]
    )
    utts = Manifest.prepare(manifest).utterances
    assert Manifest.fold_count(utts) == 3
    assert [{u.group for u in Manifest.split(utts, k).test} for k in (1, 2, 3)] == [{"1"}, {"2"}, {"10"}]
    split = Manifest.split(utts, 3)
    assert {u.group for u in split.valid} == {"1"} and {u.group for u in split.train} == {"2"}
    assert Manifest.split(utts, 1, valid="none").valid == []
    assert Manifest.fold_count(utts, num_folds="2") == 2
    with pytest.raises(ConfigError, match="num_folds"):
        Manifest.fold_count(utts, num_folds="4")


def test_folds_from_speakers_are_dealt_deterministically(tmp_path):
    wav(tmp_path / "a.wav")
    speakers = [f"spk{i}" for i in range(7)]
    rows = [f"a.wav,x,{s},{s}_{k}" for s in speakers for k in range(3)]
    manifest = csv_manifest(tmp_path / "m.csv", "path,label,speaker,id", rows)
    utts = Manifest.prepare(manifest, num_folds="3").utterances
    assert Manifest.fold_count(utts, num_folds="3") == 3
    tests = [Manifest.split(utts, k, num_folds="3").test for k in (1, 2, 3)]
    speaker_sets = [{u.speaker for u in t} for t in tests]
    assert set().union(*speaker_sets) == set(speakers)
    assert sum(len(s) for s in speaker_sets) == 7  # each speaker in exactly one fold
    assert sorted(len(s) for s in speaker_sets) == [2, 2, 3]
    assert Manifest.prepare(manifest, num_folds="3").utterances == utts  # deterministic
    default = Manifest.prepare(manifest).utterances
    assert Manifest.fold_count(default) == 5


def test_labels_filter_and_map(tmp_path):
    wav(tmp_path / "a.wav")
    labels = ["hap", "exc", "sad", "fru", "fru"]
    manifest = csv_manifest(
        tmp_path / "m.csv", "path,label,speaker,id", [f"a.wav,{lab},s{i % 2},u{i}" for i, lab in enumerate(labels)]
    )
    prepared = Manifest.prepare(manifest, labels="hap,sad", label_map={"exc": "hap"})
    assert [u.label for u in prepared.utterances] == ["hap", "hap", "sad"]
    assert prepared.skipped == {"label fru not in class set": 2}
    with pytest.raises(ConfigError, match="ang"):
        Manifest.prepare(manifest, labels=["hap", "ang"])


def _error(manifest: Path, match: str, line: int | None):
    with pytest.raises(DataError, match=match) as info:
        Manifest.prepare(manifest)
    where = f"{manifest}:{line}:" if line is not None else f"{manifest}:"
    assert str(info.value).startswith(where), str(info.value)


def test_missing_columns(tmp_path):
    _error(csv_manifest(tmp_path / "m.csv", "path,label", ["a.wav,x"]), r"missing columns \['speaker'\]", 1)
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text('{"path": "a.wav", "label": "x", "speaker": "s"}\n{"path": "a.wav", "speaker": "s"}\n')
    wav(tmp_path / "a.wav")
    _error(jsonl, r"missing columns \['label'\]", 2)


def test_empty_label(tmp_path):
    wav(tmp_path / "a.wav")
    _error(csv_manifest(tmp_path / "m.csv", "path,label,speaker,id", ["a.wav,x,s,1", "a.wav, ,s,2"]), "empty label", 3)


@pytest.mark.parametrize(
    ("start", "end", "match"),
    [("abc", "", "start: expected a number"), ("-1", "", "start: expected"), ("0.2", "nan", "end: expected"),
     ("0.2", "0.1", "end 0.1 s is not after start 0.2 s")],
)
def test_bad_numbers_in_start_end(tmp_path, start, end, match):
    wav(tmp_path / "a.wav")
    rows = ["a.wav,x,s,,", f"a.wav,x,s,{start},{end}"]
    manifest = csv_manifest(tmp_path / "m.csv", "path,label,speaker,start,end", rows)
    _error(manifest, match, 3)


def test_segment_beyond_the_audio(tmp_path):
    wav(tmp_path / "a.wav", 0.5)
    _error(csv_manifest(tmp_path / "m.csv", "path,label,speaker,start,end", ["a.wav,x,s,0.1,0.9"]), "outside", 2)


def test_missing_audio_file(tmp_path):
    wav(tmp_path / "a.wav")
    manifest = csv_manifest(tmp_path / "m.csv", "path,label,speaker", ["a.wav,x,s", "b.wav,x,s"])
    _error(manifest, "b.wav not found", 3)


def test_a_path_too_long_for_the_file_system_is_a_row_error_not_an_oserror(tmp_path):
    """Found by the fuzz test: stat() of a 300-character file name raises ENAMETOOLONG; the row is refused, named."""
    wav(tmp_path / "a.wav")
    manifest = csv_manifest(tmp_path / "m.csv", "path,label,speaker", ["a.wav,x,s", f"{'x' * 300}.wav,x,s"])
    _error(manifest, "cannot be looked up: File name too long", 3)


def test_unreadable_audio_names_the_manifest_line(tmp_path):
    (tmp_path / "fake.wav").write_bytes(b"not audio" * 50)
    _error(csv_manifest(tmp_path / "m.csv", "path,label,speaker", ["fake.wav,x,s"]), "fake.wav.*cannot decode", 2)


def test_duplicate_id(tmp_path):
    wav(tmp_path / "a.wav")
    rows = ["u1,a.wav,x,s", "u2,a.wav,x,s", "u1,a.wav,y,t"]
    manifest = csv_manifest(tmp_path / "m.csv", "id,path,label,speaker", rows)
    _error(manifest, "duplicate id 'u1' \\(first on line 2\\)", 4)


def test_relative_path_may_not_leave_the_folder(tmp_path):
    wav(tmp_path / "a.wav")
    (tmp_path / "sub").mkdir()
    manifest = csv_manifest(tmp_path / "sub" / "m.csv", "path,label,speaker", ["../a.wav,x,s"])
    _error(manifest, "leaves the manifest's folder", 2)


def test_missing_manifest_and_unknown_format(tmp_path):
    _error(tmp_path / "absent.csv", "not found", None)
    other = tmp_path / "m.txt"
    other.write_text("path,label,speaker\n")
    _error(other, "expected .csv or .jsonl", None)


def test_bad_json_line(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"path": "a.wav"\n')
    _error(manifest, "not valid JSON", 1)
