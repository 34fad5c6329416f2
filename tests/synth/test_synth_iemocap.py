"""The synthetic IEMOCAP: the release's layout and formats, determinism, and learnable-but-overlapping classes."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from serkit.cli import main
from serkit.data.corpora.iemocap import Iemocap
from serkit.errors import ConfigError, DataError
from serkit_synth.iemocap import build_synthetic_iemocap

# Formats as ../shared/data/superb_iemocap_split/README.md gives them.
LABEL_LINE = re.compile(
    r"^\[\d+\.\d{4} - \d+\.\d{4}\]\t(Ses0\d[FM]_\S+_[FM]\d{3})\t([a-z]{3})\t\[\d\.\d{4}, \d\.\d{4}, \d\.\d{4}\]$"
)
TRANSCRIPT_LINE = re.compile(r"^(Ses0\d[FM]_\S+_[FM]\d{3}) \[\d{3}\.\d{4}-\d{3}\.\d{4}\]: \S.*$")
EVALUATOR_LINE = re.compile(
    r"^(C-(E\d|[FM]\d{3}):\t[A-Za-z ]+;\t\(\)|A-(E\d|[FM]\d{3}):\tval \d; act \d; dom  \d;\t\(\))$"
)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_corpus(synth_iemocap, tmp_path):
    again = build_synthetic_iemocap(tmp_path / "again", seed=0, size="small")
    first = tree_bytes(synth_iemocap.root)
    assert tree_bytes(again.root) == first
    other = tree_bytes(build_synthetic_iemocap(tmp_path / "other", seed=1, size="small").root)
    assert other != first


def test_layout_and_formats(synth_iemocap_root, synth_iemocap):
    sessions = sorted(p.name for p in synth_iemocap_root.iterdir())
    assert sessions == [f"Session{s}" for s in range(1, 6)]
    seen = Counter()
    for label_file in sorted(synth_iemocap_root.glob("Session*/dialog/EmoEvaluation/*.txt")):
        session = label_file.parents[2]
        text = label_file.read_text().splitlines()
        assert text[0].startswith("% [START_TIME - END_TIME]")
        label_rows = [LABEL_LINE.match(line) for line in text if line.startswith("[")]
        assert all(label_rows), label_file
        others = [line for line in text[1:] if line and not line.startswith("[")]
        assert others and all(EVALUATOR_LINE.match(line) for line in others), label_file
        transcripts = (session / "dialog/transcriptions" / label_file.name).read_text().splitlines()
        assert all(TRANSCRIPT_LINE.match(line) for line in transcripts)
        assert sorted(m[1] for m in map(TRANSCRIPT_LINE.match, transcripts)) == sorted(m[1] for m in label_rows)
        for m in label_rows:
            info = soundfile.info(session / "sentences/wav" / label_file.stem / f"{m[1]}.wav")
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            assert 1.0 <= info.duration <= 3.0
            seen[m[2]] += 1
    assert seen == synth_iemocap.labels
    filtered = sum(n for label, n in seen.items() if label not in {"neu", "hap", "exc", "ang", "sad"})
    assert {"fru", "xxx", "sur"} <= set(seen) and 0.1 < filtered / sum(seen.values()) < 0.2
    assert 35 <= sum(seen.values()) / 5 - filtered / 5 <= 45  # ~40 kept utterances per session


def test_five_sessions_two_speakers_each(synth_iemocap_root):
    utts = Iemocap.prepare(synth_iemocap_root).utterances
    by_session = defaultdict(set)
    for u in utts:
        by_session[u.group].add(u.speaker)
    assert by_session == {str(s): {f"Ses0{s}F", f"Ses0{s}M"} for s in range(1, 6)}
    for session in by_session:  # every class in every session, so every fold tests all four
        assert {u.label for u in utts if u.group == session} == {"neu", "hap", "ang", "sad"}


def _f0(x: np.ndarray, sr: int = 16000) -> float:
    """Median autocorrelation pitch (Hz) of the loudest 40 ms frames."""
    frames = np.lib.stride_tricks.sliding_window_view(x, 640)[::320]
    loud = frames[np.argsort(-(frames**2).sum(1))[: max(3, len(frames) // 4)]]
    f0s = []
    for frame in loud:
        frame = frame - frame.mean()
        ac = np.correlate(frame, frame, "full")[639:]
        lo, hi = sr // 400, sr // 70
        f0s.append(sr / (lo + int(np.argmax(ac[lo:hi]))))
    return float(np.median(f0s))


def test_voices_and_emotions_differ_acoustically(synth_iemocap_root):
    utts = Iemocap.prepare(synth_iemocap_root).utterances
    f0, level = defaultdict(list), defaultdict(list)
    for u in utts:
        x, _ = soundfile.read(u.path, dtype="float32")
        f0[(u.speaker[-1], u.label)].append(_f0(x))
        level[u.label].append(10 * np.log10(np.mean(x**2)))
    mean = {k: np.mean(v) for k, v in f0.items()}
    for label in ("neu", "hap", "ang", "sad"):
        assert mean[("F", label)] > 1.3 * mean[("M", label)]  # women's voices are higher
    for gender in "FM":
        assert mean[(gender, "hap")] > mean[(gender, "neu")] > mean[(gender, "sad")]
    assert np.mean(level["ang"]) > np.mean(level["neu"]) > np.mean(level["sad"])


def _band_features(path: str) -> np.ndarray:
    """Mean and std over frames of log energy in 16 linear bands: [32]."""
    x, _ = soundfile.read(path, dtype="float32")
    frames = np.lib.stride_tricks.sliding_window_view(x, 400)[::160] * np.hanning(400)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    bands = np.log(np.stack([b.sum(1) for b in np.array_split(power, 16, axis=1)], 1) + 1e-8)
    return np.concatenate([bands.mean(0), bands.std(0)])


def test_classes_are_learnable_but_overlap(synth_iemocap_root):
    utts = Iemocap.prepare(synth_iemocap_root).utterances
    features = np.stack([_band_features(u.path) for u in utts])
    labels = np.array([u.label for u in utts])
    groups = np.array([u.group for u in utts])
    accuracies = []
    for session in "12345":  # leave one session out, as the folds do
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
        clf.fit(features[groups != session], labels[groups != session])
        accuracies.append(np.mean(clf.predict(features[groups == session]) == labels[groups == session]))
    majority = max(Counter(labels).values()) / len(labels)
    assert majority + 0.1 < np.mean(accuracies) < 0.95


def test_cli_writes_and_reports(tmp_path, capsys):
    out = tmp_path / "corpus"
    assert main(["synth-iemocap", str(out), "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "5 sessions" in printed
    assert len(Iemocap.prepare(out).utterances) == 200
    assert main(["synth-iemocap", str(out)]) == 1  # refuses to write into a non-empty folder
    assert "not empty" in capsys.readouterr().err


def test_bad_size_and_non_empty_out(tmp_path):
    with pytest.raises(ConfigError, match="large"):
        build_synthetic_iemocap(tmp_path / "x", size="large")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        build_synthetic_iemocap(tmp_path / "full")


def test_superb_id_tree_follows_superb_lists(superb_id_iemocap, superb_lists):
    root = superb_id_iemocap.root
    kept, extra = [], 0
    for session in range(1, 6):
        dialogs = []
        for utt_id, _label in superb_lists["test"][session]:
            dialog = utt_id.rsplit("_", 1)[0]
            if dialog not in dialogs:
                dialogs.append(dialog)
        for dialog in dialogs:
            lines = (root / f"Session{session}/dialog/EmoEvaluation/{dialog}.txt").read_text().splitlines()
            for m in filter(None, (LABEL_LINE.match(line) for line in lines)):
                assert (root / f"Session{session}/sentences/wav/{dialog}/{m[1]}.wav").is_file()
                if m[2] in {"neu", "hap", "exc", "ang", "sad"}:
                    kept.append((m[1], "hap" if m[2] == "exc" else m[2]))
                else:
                    extra += 1
    assert kept == [row for s in range(1, 6) for row in superb_lists["test"][s]]
    assert extra == superb_id_iemocap.utterances - 5531 > 0
    assert superb_id_iemocap.labels["exc"] > 0 and superb_id_iemocap.labels["hap"] > 0
