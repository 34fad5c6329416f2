"""`serkit predict` against inputs built to hurt (issue 14, section 5, items 1, 2, 7, 12): each case once
failed. Memory is measured with tracemalloc (numpy's buffers), never with wall-clock time."""

from __future__ import annotations

import csv
import errno
import json
import os
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from serkit.cli import main
from serkit.data.audio import audio_info
from serkit.inference.inputs import open_source, read_span

LABELS = ["neu", "hap", "ang", "sad"]
MiB = 1024 * 1024


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def tone(seconds: float, rate: int = 16000) -> np.ndarray:
    return (0.2 * np.sin(np.arange(round(seconds * rate)) * 0.07)).astype(np.float32)


# -- item 1: many channels --------------------------------------------------------------------------------


def test_a_window_of_a_many_channel_file_costs_mono_memory(tmp_path):
    """predict reads a file window by window; each window was decoded with all its channels as float32 and
    copied again by clipping (32 channels: 2 x 32 x the mono window)."""
    rate, channels = 48000, 32
    path = tmp_path / "32ch.ogg"
    with sf.SoundFile(path, "w", samplerate=rate, channels=channels, format="OGG", subtype="VORBIS") as f:
        for second in range(4):
            f.write(np.tile(tone(1.0, rate)[:, None], (1, channels)) * (second + 1) / 5)
    source = open_source(str(path))
    window = 3 * rate  # a 3 s window: 0.55 MiB mono, 17.6 MiB with every channel
    tracemalloc.start()
    try:
        samples = read_span(source, 0, window)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert samples.shape == (3 * 16000,)
    assert peak < 3 * window * 4 + 2 * MiB < window * channels * 4, f"peak {peak / MiB:.1f} MiB"


def test_predict_refuses_a_file_with_too_many_channels_and_goes_on(tiny_bundle, tmp_path, capsys):
    hostile = tmp_path / "255ch.ogg"
    sf.write(hostile, np.zeros((24000, 255), np.float32), 48000, format="OGG", subtype="VORBIS")
    good = tmp_path / "good.wav"
    sf.write(good, tone(1.0), 16000)
    assert main(["predict", str(tiny_bundle), str(good), str(hostile), str(good), "--skip-errors"]) == 0
    rows = jsonl(capsys.readouterr().out)
    assert [("label" in r, "error" in r) for r in rows] == [(True, False), (False, True), (True, False)]
    assert rows[1]["error"].startswith(f"{hostile}: 255 channels at 48000 Hz are 12,240,000 samples per second")


# -- item 2: a FLAC of unknown length ----------------------------------------------------------------------


def test_predict_on_a_flac_of_unknown_length_keeps_the_batch(tiny_bundle, tmp_path, capsys, unknown_length_flac):
    """STREAMINFO total_samples = 0 made soundfile report 2**63 - 1 frames: predict planned windows until
    memory ran out (MemoryError, which --skip-errors did not catch: the whole batch was lost)."""
    rate, seconds = 16000, 12.5
    path = tmp_path / "unknown.flac"
    path.write_bytes(unknown_length_flac(tone(seconds), rate))
    # checked first, so that on code without the fix this fails here instead of filling the memory
    assert audio_info(path).frames == seconds * rate

    good = tmp_path / "good.wav"
    sf.write(good, tone(1.0), rate)
    assert main(["predict", str(tiny_bundle), str(good), str(path), str(good), "--skip-errors"]) == 0
    rows = jsonl(capsys.readouterr().out)
    assert [(r["file"], r["window"]) for r in rows] == [
        (str(good), None), (str(path), None), (str(path), 0), (str(path), 1), (str(good), None)]
    assert rows[1]["duration"] == seconds and rows[3]["end"] == seconds and "error" not in rows[1]


# -- item 7: file names that are not UTF-8 -------------------------------------------------------------------


def non_utf8_file(folder) -> str:
    name = os.fsdecode(b"bad\xff\xfe.wav")  # 'bad\udcff\udcfe.wav'
    with open(os.fsencode(folder / name), "wb") as f:
        sf.write(f, tone(1.0), 16000, format="WAV", subtype="PCM_16")
    return str(folder / name)


def test_predict_reads_names_that_are_not_utf8_and_writes_them_escaped(tiny_bundle, tmp_path, capsys):
    """Refused as "cannot decode audio (surrogates not allowed)"; the name is written with its bytes that
    are not UTF-8 as \\xNN, so the output stays valid UTF-8."""
    path = non_utf8_file(tmp_path)
    written = str(tmp_path / "bad\\xff\\xfe.wav")
    assert main(["predict", str(tiny_bundle), path]) == 0
    rows = jsonl(capsys.readouterr().out)
    assert rows[0]["file"] == written and "error" not in rows[0]

    # with an error row after it, in CSV to a file: a UnicodeEncodeError traceback lost the files after it
    good = tmp_path / "good.wav"
    sf.write(good, tone(1.0), 16000)
    missing = os.fsdecode(os.fsencode(str(tmp_path)) + b"/gone\xff.wav")
    out = tmp_path / "out.csv"
    args = ["predict", str(tiny_bundle), str(good), missing, path, str(good), "--skip-errors", "--format", "csv",
            "--out", str(out)]
    assert main(args) == 0
    assert "Traceback" not in capsys.readouterr().err
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["file"] for r in rows] == [str(good), str(tmp_path / "gone\\xff.wav"), written, str(good)]
    assert rows[1]["error"] == f"{tmp_path}/gone\\xff.wav: audio file not found"
    assert rows[2]["label"] in LABELS and rows[2]["error"] == ""


# -- item 12: odd settings and outcomes ------------------------------------------------------------------------


TINY_WINDOWS = [
    (["--window", "1e-9", "--hop", "1e-9"], "--window is 1e-09; expected a number of seconds >= 0.1"),
    (["--window", "0.05", "--hop", "0.05"], "--window is 0.05"),
    (["--hop", "1e-9"], "--hop is 1e-09; expected a number of seconds >= 0.01"),
    (["--window", "2", "--hop", "3"], "--hop is 3.0; expected a number of seconds >= 0.01, at most --window (2.0)"),
    (["--batch-seconds", "0"], "--batch-seconds is 0.0; expected a positive number of seconds"),
]


@pytest.mark.parametrize("flags, refusal", TINY_WINDOWS)
def test_tiny_windows_are_refused(tiny_bundle, tmp_path, capsys, flags, refusal):
    """--window 1e-9 --hop 1e-9 made a window per sample (52,855 of them for one file)."""
    good = tmp_path / "good.wav"
    sf.write(good, tone(3.3), 16000)
    assert main(["predict", str(tiny_bundle), str(good), *flags]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and refusal in captured.err


def test_skip_errors_exits_1_when_every_file_failed(tiny_bundle, tmp_path, capsys):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    missing = tmp_path / "missing.wav"
    assert main(["predict", str(tiny_bundle), str(broken), str(missing), "--skip-errors"]) == 1
    captured = capsys.readouterr()
    assert len(jsonl(captured.out)) == 2 and "2 of 2 files failed" in captured.err
    good = tmp_path / "good.wav"
    sf.write(good, tone(1.0), 16000)
    assert main(["predict", str(tiny_bundle), str(broken), str(good), "--skip-errors"]) == 0  # some succeeded


def test_unreadable_file_is_permission_denied(tiny_bundle, tmp_path, capsys, refuse_to_open):
    """Said "cannot decode audio (System error.)". Tests run as root, who may read anything: os.open refuses
    the file as it would for another user."""
    locked = tmp_path / "locked.wav"
    sf.write(locked, tone(1.0), 16000)
    refuse_to_open(locked)
    assert main(["predict", str(tiny_bundle), str(locked)]) == 1
    assert f"{locked}: permission denied" in capsys.readouterr().err


def test_unreadable_subfolder_is_reported(tiny_bundle, tmp_path, capsys, monkeypatch):
    """Folders were searched with Path.rglob, which passes over a folder it may not list without a word.
    Simulated (tests run as root): os.scandir refuses the folder."""
    (tmp_path / "in" / "locked").mkdir(parents=True)
    sf.write(tmp_path / "in" / "a.wav", tone(1.0), 16000)
    sf.write(tmp_path / "in" / "locked" / "b.wav", tone(1.0), 16000)
    locked = str(tmp_path / "in" / "locked")
    real_scandir = os.scandir

    def fake_scandir(path="."):
        if os.fspath(path) == locked:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), locked)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", fake_scandir)
    folder = str(tmp_path / "in")
    assert main(["predict", str(tiny_bundle), folder]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and f"{locked}: cannot list folder (permission denied)" in captured.err

    assert main(["predict", str(tiny_bundle), folder, "--skip-errors"]) == 0
    captured = capsys.readouterr()
    assert [r["file"] for r in jsonl(captured.out)] == [str(tmp_path / "in" / "a.wav")]
    assert f"{locked}: cannot list folder (permission denied)" in captured.err
    assert "1 folders could not be listed or held no audio" in captured.err


def test_csv_cells_that_start_a_formula_are_quoted(tiny_bundle, tmp_path, capsys, monkeypatch):
    """A file named =HYPERLINK(...).wav was written as is: a spreadsheet opening the CSV runs it."""
    names = ["=HYPERLINK(evil).wav", "+1.wav", "-2.wav", "@SUM(A1).wav"]
    for name in names:
        sf.write(tmp_path / name, tone(1.0), 16000)
    missing = "=missing.wav"
    monkeypatch.chdir(tmp_path)  # relative names, so that the cells start with the hostile character
    assert main(["predict", "--skip-errors", "--format", "csv", "--", str(tiny_bundle), *names, missing]) == 0
    rows = list(csv.reader(capsys.readouterr().out.splitlines()))
    assert [row[0] for row in rows[1:]] == [f"'{name}" for name in [*names, missing]]
    assert rows[-1][-1] == "'=missing.wav: audio file not found"
    for row in rows[1:-1]:  # numbers are left alone
        assert abs(sum(float(row[6 + k]) for k in range(len(LABELS))) - 1) < 1e-5
