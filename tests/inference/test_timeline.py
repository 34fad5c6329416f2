"""Speech-segmented timelines: the VAD stream, segment shaping, segment files, EmotionRecognizer.timeline and
`serkit predict --segments`, with their error paths. Speech is serkit's source-filter voice (serkit_synth.voice),
which Silero VAD takes for speech, placed between silences at known times."""

from __future__ import annotations

import csv
import doctest
import importlib
import json
import sys

import numpy as np
import pytest
import soundfile as sf

from serkit.cli import main
from serkit_synth.montage import synthetic_talk
from serkit.errors import ConfigError, DataError
from serkit.inference.inputs import ArraySource, FileSource
from serkit.inference.segment_files import SegmentTable
from serkit.inference.segments import (Region, VadSettings, bridge_pauses, hysteresis, region_spans,
                                       speech_regions, split_long)
from serkit.inference.timeline import Segment, Timeline

pytest.importorskip("silero_vad", reason="the vad extra (pip install 'serkit[vad]') is not installed")

LABELS = ["neu", "hap", "ang", "sad"]
# (seconds of silence before, seconds of speech): speech at 1.0-3.0, 4.0-7.0, 8.5-10.0; 11 s in all
TALK = [(1.0, 2.0), (1.0, 3.0), (1.5, 1.5)]
TALK_SPEECH = [(1.0, 3.0), (4.0, 7.0), (8.5, 10.0)]
TALK_SECONDS = 11.0


def talk(sample_rate: int = 16000) -> np.ndarray:
    """[S] float32: three utterances of different voices between silences (TALK), then 1 s of silence."""
    samples, spans = synthetic_talk(TALK, seed=0, sample_rate=sample_rate)
    assert spans == TALK_SPEECH
    return samples


@pytest.fixture(scope="module")
def talk_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("timeline") / "talk.wav"
    sf.write(path, talk(), 16000)
    return path


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# -- the detector ----------------------------------------------------------------------------------------------

def test_streamed_probabilities_equal_silero_on_the_whole_array(monkeypatch):
    """Blocks of 0.7 s (state and context carried across) give silero's own probabilities on the whole array."""
    from silero_vad import load_silero_vad

    from serkit.inference import vad

    samples = talk()
    whole = load_silero_vad(sequence=True).audio_forward(samples)
    monkeypatch.setattr(vad, "BLOCK_SECONDS", 0.7)
    monkeypatch.setattr(vad, "MAX_FRAMES_PER_CALL", 7)  # several model calls per block too
    streamed = vad.load_vad().probabilities(ArraySource(samples, 16000))
    assert streamed.shape == whole.shape == (int(np.ceil(samples.size / 512)),)
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


def test_any_rate_and_channels_find_the_same_speech(tmp_path):
    """A 44.1 kHz stereo file (resampled by one soxr stream, block by block) finds the 16 kHz mono regions."""
    from serkit.inference.segments import VadSegmenter

    path = tmp_path / "talk_44k_stereo.flac"
    samples = talk(44100)
    sf.write(path, np.stack([samples, 0.5 * samples], axis=1), 44100)
    segmenter = VadSegmenter()
    here = segmenter(FileSource.open(path))
    reference = segmenter(ArraySource(talk(), 16000))
    assert len(here) == len(reference) == 3
    for a, b in zip(here, reference):
        assert a.start == pytest.approx(b.start, abs=0.07) and a.end == pytest.approx(b.end, abs=0.07)


def test_vad_finds_each_utterance(talk_file):
    from serkit.inference.segments import VadSegmenter

    regions = VadSegmenter()(FileSource.open(talk_file))
    assert len(regions) == 3
    for region, (start, end) in zip(regions, TALK_SPEECH):
        assert abs(region.start - start) <= 0.25 and abs(region.end - end) <= 0.25
        assert region.speaker is None


def test_missing_extra_says_how_to_install(monkeypatch, tiny_bundle, talk_file, capsys):
    from serkit.inference import vad

    vad.load_vad.cache_clear()
    monkeypatch.setitem(sys.modules, "silero_vad", None)  # import silero_vad -> ImportError
    try:
        with pytest.raises(ConfigError, match=r"pip install 'serkit\[vad\]'"):
            vad.load_vad()
        assert main(["predict", str(tiny_bundle), str(talk_file), "--segments", "vad"]) == 1
        assert "pip install 'serkit[vad]'" in capsys.readouterr().err
    finally:
        vad.load_vad.cache_clear()


def test_importing_silero_keeps_torchs_thread_count(monkeypatch):
    import torch

    from serkit.inference import vad

    vad.load_vad.cache_clear()
    monkeypatch.delitem(sys.modules, "silero_vad", raising=False)
    monkeypatch.delitem(sys.modules, "silero_vad.model", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        vad.load_vad()
        assert torch.get_num_threads() == 2  # silero_vad's import sets 1 for the whole process
    finally:
        torch.set_num_threads(before)
        vad.load_vad.cache_clear()


# -- shaping frame probabilities into segments ---------------------------------------------------------------

def test_hysteresis_keeps_a_doubtful_frame_inside_speech():
    p = np.array([0.0, 0.6, 0.4, 0.6, 0.2, 0.0], np.float32)  # 0.4 is above the release (0.35)
    assert hysteresis(p, 0.5, 0.35) == [(1, 4)]


def test_pauses_shorter_than_the_limit_are_bridged():
    assert bridge_pauses([(0, 10), (14, 20), (30, 35)], max_gap=5) == [(0, 20), (30, 35)]


def test_long_regions_are_cut_at_their_quietest_frame_and_none_stays_too_long():
    p = np.ones(100, np.float32)
    p[40] = 0.2  # a breath at frame 40, inside the middle third
    pieces = split_long((0, 100), p, limit=60)
    assert pieces == [(0, 40), (40, 100)]
    pieces = split_long((0, 1000), np.ones(1000, np.float32), limit=100)
    assert all(b - a <= 100 for a, b in pieces) and pieces[0][0] == 0 and pieces[-1][1] == 1000
    assert all(b - a >= 100 / 3 for a, b in pieces) and all(x[1] == y[0] for x, y in zip(pieces, pieces[1:]))


def test_speech_regions_drop_blips_and_pad_without_overlap():
    frame = 0.1
    p = np.zeros(100, np.float32)
    p[10:30] = 1.0  # 1.0-3.0 s
    p[31:40] = 1.0  # after a 0.1 s pause: bridged
    p[50:51] = 1.0  # a 0.1 s blip: dropped
    p[60:80] = 1.0
    regions = speech_regions(p, frame, 10.0, VadSettings(pad_seconds=0.3, min_speech_seconds=0.25))
    assert regions == [Region(0.7, 4.3), Region(5.7, 8.3)]
    close = np.zeros(20, np.float32)
    close[2:8] = close[9:15] = 1.0  # a 0.1 s gap with no bridging: padding stops halfway
    regions = speech_regions(close, frame, 2.0, VadSettings(pad_seconds=0.3, max_pause_seconds=0.0))
    assert regions[0].end == pytest.approx(0.85) and regions[1].start == pytest.approx(0.85)


@pytest.mark.parametrize("field, value", [("threshold", 1.5), ("max_pause_seconds", -1), ("pad_seconds", float("nan")),
                                          ("max_segment_seconds", 0.5), ("min_speech_seconds", "1")])
def test_vad_settings_name_the_bad_field(field, value):
    with pytest.raises(ConfigError, match=field):
        VadSettings(**{field: value})


def test_a_region_longer_than_a_window_is_predicted_in_windows():
    spans, owners = region_spans([Region(1.0, 2.0), Region(3.0, 28.0)], 100, window_seconds=10, hop_seconds=5)
    assert spans[0] == (100, 200) and owners[0] == 0
    assert spans[1:] == [(300, 1300), (800, 1800), (1300, 2300), (1800, 2800)] and owners[1:] == [1] * 4


# -- segment files ------------------------------------------------------------------------------------------------

def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_rttm_turns_belong_to_the_file_named_by_their_file_id(tmp_path):
    table = SegmentTable.from_file(write(tmp_path, "all.rttm", (
        ";; a comment\n"
        "SPKR-INFO talk 1 <NA> <NA> <NA> unknown alice <NA> <NA>\n"
        "SPEAKER talk 1 4.0 3.0 <NA> <NA> bob <NA> <NA>\n"
        "SPEAKER other 1 0.0 1.0 <NA> <NA> carol <NA> <NA>\n"
        "\n"
        "SPEAKER talk 1 1.0 2.0 <NA> <NA> alice <NA> <NA>\n")))
    regions = table(ArraySource(np.zeros(16000 * 8, np.float32), 16000, name="/data/talk.flac"))
    assert regions == [Region(1.0, 3.0, "alice"), Region(4.0, 7.0, "bob")]
    with pytest.raises(DataError, match=r"all.rttm: no segments for /data/missing.wav \(the table names: other, talk"):
        table(ArraySource(np.zeros(16000, np.float32), 16000, name="/data/missing.wav"))


def test_csv_rows_with_and_without_a_file_column(tmp_path):
    table = SegmentTable.from_file(write(tmp_path, "turns.csv", "start,end,speaker\n0.5,1.5,ann\n2,3,\n"))
    assert table(ArraySource(np.zeros(16000 * 4, np.float32), 16000)) == [Region(0.5, 1.5, "ann"), Region(2.0, 3.0)]
    table = SegmentTable.from_file(write(tmp_path, "files.csv", "file,start,end\na.wav,0,1\nb,1,2\n"))
    assert table(ArraySource(np.zeros(48000, np.float32), 16000, name="x/a.wav")) == [Region(0.0, 1.0)]
    assert table(ArraySource(np.zeros(48000, np.float32), 16000, name="y/b.wav")) == [Region(1.0, 2.0)]


@pytest.mark.parametrize("name, text, message", [
    ("cols.csv", "begin,stop\n0,1\n", r"cols.csv:1: expected columns start,end .*missing start, end"),
    ("order.csv", "start,end\n0,1\n2,1.5\n", r"order.csv:3: end 1.5 s is not after start 2 s"),
    ("word.csv", "start,end\n0,1\nzero,1\n", r"word.csv:3: start 'zero' is not a number of seconds"),
    ("empty.csv", "start,end\n0,\n", r"empty.csv:2: end is missing"),
    ("negative.csv", "start,end\n-1,1\n", r"negative.csv:2: start -1 s is negative"),
    ("short.rttm", "SPEAKER talk 1 0.0\n", r"short.rttm:1: a SPEAKER line needs 8 fields"),
    ("zero.rttm", "SPEAKER talk 1 0.0 0 <NA> <NA> a\n", r"zero.rttm:1: duration 0 is not positive"),
    ("nan.rttm", "SPEAKER talk 1 nan 1 <NA> <NA> a\n", r"nan.rttm:1: onset 'nan' is not a number"),
    ("none.csv", "start,end\n", r"none.csv: holds no segments"),
])
def test_bad_segment_files_name_the_file_and_line(tmp_path, name, text, message):
    with pytest.raises(DataError, match=message):
        SegmentTable.from_file(write(tmp_path, name, text))


def test_a_segment_past_the_end_of_the_audio_names_its_line(tmp_path):
    table = SegmentTable.from_file(write(tmp_path, "late.csv", "start,end\n0,1\n1,2.04\n3,4.5\n"))
    source = ArraySource(np.zeros(16000 * 4, np.float32), 16000, name="a.wav")  # 4 s
    with pytest.raises(DataError, match=r"late.csv:4: segment 3-4.5 s is past the end of a.wav \(4.000 s\)"):
        table(source)
    ok = SegmentTable.from_file(write(tmp_path, "hair.csv", "start,end\n3,4.04\n"))(source)
    assert ok == [Region(3.0, 4.0)]  # a rounded end a hair past the last sample is clamped


def test_a_segments_file_of_another_kind_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"expected a .rttm .* or .csv"):
        SegmentTable.from_file(write(tmp_path, "turns.txt", "0 1\n"))
    with pytest.raises(DataError, match="segments file not found"):
        SegmentTable.from_file(tmp_path / "absent.rttm")


# -- EmotionRecognizer.timeline ----------------------------------------------------------------------------------

def test_timeline_has_a_segment_per_utterance_each_predicted_alone(recognizer, talk_file):
    segments = recognizer.timeline(talk_file)
    assert [s.speaker for s in segments] == [None] * 3
    for segment in segments:
        assert isinstance(segment, Segment) and segment.label == max(segment.probabilities,
                                                                     key=segment.probabilities.get)
        alone = recognizer.predict(sf.read(talk_file, dtype="float32", start=round(segment.start * 16000),
                                           stop=round(segment.end * 16000))[0], sample_rate=16000)
        for label in LABELS:  # the segment is what the model saw: exactly that span, alone
            assert segment.probabilities[label] == pytest.approx(alone.probabilities[label], abs=1e-5)


def test_whole_file_summary_is_the_duration_weighted_mean_of_the_segments(recognizer, talk_file):
    result = recognizer.predict(talk_file, segments="vad")
    assert isinstance(result, Timeline) and result.duration == TALK_SECONDS
    weights = np.array([s.end - s.start for s in result.segments])
    assert result.speech_seconds == pytest.approx(weights.sum())
    for label in LABELS:
        mean = sum(w * s.probabilities[label] for w, s in zip(weights, result.segments)) / weights.sum()
        assert result.probabilities[label] == pytest.approx(mean)
    assert result.to_dict()["segments"][0]["start"] == result.segments[0].start


def test_given_segments_keep_their_speaker_and_silence_has_no_label(recognizer, tmp_path):
    rttm = write(tmp_path, "talk.rttm", "SPEAKER talk 1 4.0 3.0 <NA> <NA> bob <NA> <NA>\n"
                                        "SPEAKER talk 1 1.0 2.0 <NA> <NA> alice <NA> <NA>\n")
    path = tmp_path / "talk.wav"
    sf.write(path, talk(), 16000)
    segments = recognizer.timeline(path, segments=rttm)
    assert [(s.start, s.end, s.speaker) for s in segments] == [(1.0, 3.0, "alice"), (4.0, 7.0, "bob")]
    silent = recognizer.predict(np.zeros(16000 * 3, np.float32), sample_rate=16000, segments="vad")
    assert silent.segments == [] and silent.label is None and silent.probabilities == {}
    assert silent.speech_seconds == 0.0 and silent.duration == 3.0


def test_windows_stay_the_default(recognizer, talk_file):
    assert recognizer.predict(talk_file, window_seconds=4, hop_seconds=2).to_dict() == \
        recognizer.predict(talk_file, window_seconds=4, hop_seconds=2, segments="windows").to_dict()


def test_bad_given_segments_and_segments_argument(recognizer):
    audio = np.zeros(16000, np.float32)
    with pytest.raises(ConfigError, match=r"segment 0 \(0.5, 0.2\) of <array>: expected 0 <= start < end"):
        recognizer.timeline(audio, sample_rate=16000, segments=[(0.5, 0.2)])
    with pytest.raises(ConfigError, match=r"segment 0 of <array>: end 3 s is past the end of the audio"):
        recognizer.timeline(audio, sample_rate=16000, segments=[(0.5, 3.0)])
    with pytest.raises(ConfigError, match=r"segments is 7; expected 'vad'"):
        recognizer.timeline(audio, sample_rate=16000, segments=7)


def test_a_bad_file_among_others_becomes_an_error_row(recognizer, talk_file, tmp_path):
    broken = write(tmp_path, "broken.wav", "not audio")
    results = recognizer.predict_batch([talk_file, broken], segments="vad", skip_errors=True)
    assert isinstance(results[0], Timeline) and len(results[0].segments) == 3
    assert "broken.wav" in results[1].error


# -- serkit predict --segments ----------------------------------------------------------------------------------

def test_cli_vad_jsonl_rows(tiny_bundle, talk_file, capsys):
    assert main(["predict", str(tiny_bundle), str(talk_file), "--segments", "vad"]) == 0
    rows = jsonl(capsys.readouterr().out)
    assert [row["segment"] for row in rows] == [None, 0, 1, 2]
    whole, segments = rows[0], rows[1:]
    assert whole["start"] == 0.0 and whole["end"] == whole["duration"] == TALK_SECONDS
    assert whole["speech_seconds"] == pytest.approx(sum(row["duration"] for row in segments))
    for row, (start, end) in zip(segments, TALK_SPEECH):
        assert abs(row["start"] - start) <= 0.25 and abs(row["end"] - end) <= 0.25
        assert row["speaker"] is None and list(row["probabilities"]) == LABELS
        assert row["label"] == max(row["probabilities"], key=row["probabilities"].get)


def test_cli_rttm_csv_rows_keep_the_speaker(tiny_bundle, talk_file, tmp_path, capsys):
    rttm = write(tmp_path, "talk.rttm", "SPEAKER talk 1 1.0 2.0 <NA> <NA> alice <NA> <NA>\n"
                                        "SPEAKER talk 1 4.0 3.0 <NA> <NA> =bob <NA> <NA>\n")
    out = tmp_path / "rows.csv"
    assert main(["predict", str(tiny_bundle), str(talk_file), "--segments", str(rttm), "--format", "csv",
                 "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["file", "segment", "start", "end", "duration", "speech_seconds", "speaker", "label",
                             *LABELS, "error"]
    assert [(r["segment"], r["start"], r["end"], r["speaker"]) for r in rows] == [
        ("", "0.0", "11.0", ""), ("0", "1.0", "3.0", "alice"), ("1", "4.0", "7.0", "'=bob")]
    assert rows[0]["speech_seconds"] == "5.0"
    for row in rows:
        assert sum(float(row[label]) for label in LABELS) == pytest.approx(1.0, abs=1e-5)


def test_cli_vad_options_shape_the_segments(tiny_bundle, talk_file, capsys):
    # pauses of up to 1.5 s bridged: the three utterances become one segment, cut again at 4 s at most
    assert main(["predict", str(tiny_bundle), str(talk_file), "--segments", "vad", "--max-pause", "1.7",
                 "--max-segment", "4", "--vad-pad", "0", "--min-speech", "0.5", "--vad-threshold", "0.6"]) == 0
    segments = jsonl(capsys.readouterr().out)[1:]
    assert all(row["duration"] <= 4.0 + 1e-6 for row in segments)
    assert all(a["end"] == b["start"] for a, b in zip(segments, segments[1:]))  # cut pieces of one region
    assert segments[0]["start"] == pytest.approx(1.0, abs=0.25) and segments[-1]["end"] == pytest.approx(10.0, abs=0.25)


@pytest.mark.parametrize("args, message", [
    (["--segments", "notes.txt"], "expected windows, vad, or a .rttm / .csv file"),
    (["--max-pause", "1"], "--max-pause set how voice activity becomes segments: use them with --segments vad"),
    (["--segments", "{rttm}", "--vad-pad", "0.1"], "--vad-pad apply to --segments vad, not to segments read from"),
    (["--segments", "{bad}"], "bad.csv:2: end 0 s is not after start 1 s"),
])
def test_cli_refuses_bad_segment_options(tiny_bundle, talk_file, tmp_path, capsys, args, message):
    rttm = write(tmp_path, "talk.rttm", "SPEAKER talk 1 1.0 2.0 <NA> <NA> a <NA> <NA>\n")
    bad = write(tmp_path, "bad.csv", "start,end\n1,0\n")
    args = [arg.format(rttm=rttm, bad=bad) for arg in args]
    assert main(["predict", str(tiny_bundle), str(talk_file), *args]) == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("option, value", [("--vad-threshold", "2"), ("--max-pause", "soon"), ("--max-segment", "0")])
def test_cli_vad_option_out_of_range_names_the_option(tiny_bundle, talk_file, capsys, option, value):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(tiny_bundle), str(talk_file), "--segments", "vad", option, value])
    assert exit_info.value.code == 2
    assert f"argument {option}: '{value}': expected" in capsys.readouterr().err


def test_cli_segments_file_cannot_be_the_output(tiny_bundle, talk_file, tmp_path, capsys):
    table = write(tmp_path, "turns.csv", "start,end\n1,2\n")
    assert main(["predict", str(tiny_bundle), str(talk_file), "--segments", str(table), "--out", str(table)]) == 1
    assert "is also an input" in capsys.readouterr().err
    assert table.read_text() == "start,end\n1,2\n"


def test_cli_a_file_missing_from_the_rttm_is_an_error_row_with_skip_errors(tiny_bundle, talk_file, tmp_path, capsys):
    other = tmp_path / "other.wav"
    sf.write(other, talk()[:16000 * 4], 16000)
    rttm = write(tmp_path, "talk.rttm", "SPEAKER talk 1 1.0 2.0 <NA> <NA> a <NA> <NA>\n")
    assert main(["predict", str(tiny_bundle), str(talk_file), str(other), "--segments", str(rttm),
                 "--skip-errors"]) == 0
    rows = jsonl(capsys.readouterr().out)
    assert [row.get("segment") for row in rows[:2]] == [None, 0]
    assert rows[-1]["file"] == str(other) and "talk.rttm: no segments for" in rows[-1]["error"]


# -- the examples in the new modules' docstrings ------------------------------------------------------------------

@pytest.mark.parametrize("module", ["serkit.inference.segments", "serkit.inference.segment_files",
                                    "serkit.inference.timeline", "serkit.evaluation.segmentation"])
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
