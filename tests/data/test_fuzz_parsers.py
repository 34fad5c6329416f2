"""Fuzzing the parsers of files that come from elsewhere (hypothesis): IEMOCAP label and transcription lines,
RAVDESS file names, manifest CSV/JSONL rows, config YAML and key=value overrides.

Whatever the input, a parser either returns or raises one of our own errors (a SerkitError subclass naming the
file, line or key); never a bare Python exception (UnicodeDecodeError, csv.Error, RecursionError, ...)."""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from serkit.config import load_config
from serkit.data.corpora.iemocap import Iemocap, read_label_file, read_transcripts, speaker_of
from serkit.data.corpora.manifest import Manifest
from serkit.data.corpora.ravdess import _utterance as ravdess_utterance
from serkit.data.utterance import Utterance, write_jsonl
from serkit.errors import SerkitError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Text near the formats' grammar finds more than uniform noise: their own punctuation, digits, tabs, odd
# unicode digits and separators, NUL, and long runs.
GRAMMAR_CHARS = "[]-_:.,\t ;/\\\"'#%\r0123456789FMSesimprocriptneuhapangsad" + "\x00\u0663\u00a0\u2028"
near_text = st.text(alphabet=st.sampled_from(GRAMMAR_CHARS), max_size=80) | st.text(max_size=80)


def nearly_label_line() -> st.SearchStrategy[str]:
    number = st.sampled_from(["0", "1.5", "12.3400", "", "-1", "1e9", "\u0663.5", "nan", "9" * 400])
    ident = st.sampled_from(["Ses01F_impro01_F000", "Ses01F_impro01_M012", "../../etc/passwd",
                             "Ses01F_impro01_../../x", "Ses01F_impro01_", "_F000",
                             "Ses01F_impro01_F\u0663"]) | near_text
    label = st.sampled_from(["neu", "hap", "exc", "xxx", "joy", "", "neu neu"]) | near_text
    return st.builds(lambda a, b, i, lab, tail: f"[{a} - {b}]\t{i}\t{lab}\t{tail}",
                     number, number, ident, label, st.sampled_from(["[2.5, 2.5, 2.5]", "[", "", "[]x"]))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def only_our_errors(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except SerkitError:
        return None


# ------------------------------------------------------------------------------------------------ IEMOCAP


@FUZZ
@given(lines=st.lists(nearly_label_line() | near_text, max_size=6))
@example(lines=["[0 - 1]\t../../etc/passwd\tneu\t[1, 2, 3]"])
def test_iemocap_label_lines(scratch, lines):
    path = scratch / "Ses01F_impro01.txt"
    path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    rows = only_our_errors(read_label_file, path)
    for _line, utt_id, _label, start, end in rows or []:
        # an id that made it through can only name a wav inside this dialog's folder
        assert utt_id.startswith("Ses01F_impro01_") and "/" not in utt_id and "\\" not in utt_id
        assert speaker_of(utt_id) in ("Ses01F", "Ses01M")
        assert start >= 0 and end >= 0


@FUZZ
@given(data=st.binary(max_size=300))
def test_iemocap_label_and_transcript_files_as_raw_bytes(scratch, data):
    path = scratch / "Ses01F_impro01.txt"
    path.write_bytes(data)
    only_our_errors(read_label_file, path)
    texts = read_transcripts(path)  # ignores what it does not understand; never raises on content
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in texts.items())


@pytest.fixture(scope="module")
def mini_release(tmp_path_factory) -> Path:
    """5 sessions, one dialog each, two utterances each, audio and transcripts."""
    root = tmp_path_factory.mktemp("mini") / "IEMOCAP_full_release"
    for s in range(1, 6):
        dialog = f"Ses0{s}F_impro01"
        base = root / f"Session{s}"
        for sub in ("dialog/EmoEvaluation", "dialog/transcriptions", f"sentences/wav/{dialog}"):
            (base / sub).mkdir(parents=True)
        labels, texts = [], []
        for i, (suffix, label) in enumerate([("F000", "neu"), ("M000", "ang")]):
            labels.append(f"[{i}.0 - {i}.5]\t{dialog}_{suffix}\t{label}\t[2.5, 2.5, 2.5]")
            texts.append(f"{dialog}_{suffix} [{i}.0-{i}.5]: words {i}")
            sf.write(base / f"sentences/wav/{dialog}/{dialog}_{suffix}.wav", np.zeros(800, np.float32), 16000)
        (base / "dialog/EmoEvaluation" / f"{dialog}.txt").write_text("\n".join(labels) + "\n")
        (base / "dialog/transcriptions" / f"{dialog}.txt").write_text("\n".join(texts) + "\n")
    return root


@settings(FUZZ, max_examples=60)
@given(label_lines=st.lists(nearly_label_line(), max_size=4), text_lines=st.lists(near_text, max_size=4))
def test_iemocap_prepare_on_fuzzed_session_files(mini_release, label_lines, text_lines):
    label_file = mini_release / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"
    text_file = mini_release / "Session1/dialog/transcriptions/Ses01F_impro01.txt"
    original = label_file.read_text(), text_file.read_text()
    try:
        label_file.write_text(original[0] + "\n".join(label_lines), errors="surrogatepass")
        text_file.write_text(original[1] + "\n".join(text_lines), errors="surrogatepass")
        for keep_going in (False, True):
            prepared = only_our_errors(Iemocap.prepare, mini_release, keep_going=keep_going)
            for utt in prepared.utterances if prepared else []:
                assert Path(utt.path).is_relative_to(mini_release.resolve())
    finally:
        label_file.write_text(original[0])
        text_file.write_text(original[1])


# ------------------------------------------------------------------------------------------------ RAVDESS


@FUZZ
@given(stem=st.text(alphabet=st.sampled_from("0123456789-\u0663\u0661x"), max_size=24) | st.text(max_size=24),
       folder_actor=st.sampled_from(["01", "24", "\u0661\u0663", "99"]))
@example(stem="03-01-01-01-01-01-\u0661\u0663", folder_actor="\u0661\u0663")
def test_ravdess_file_names(scratch, stem, folder_actor):
    # The file is never created: a valid name then fails on its (missing) audio, itself an AudioError.
    only_our_errors(ravdess_utterance, scratch / f"{stem}.wav", folder_actor)


# ------------------------------------------------------------------------------------------------ manifests


@pytest.fixture(scope="module")
def manifest_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("manifest")
    for name in ("a.wav", "b.wav"):
        sf.write(folder / name, np.full(16000, 0.1, np.float32), 16000)
    return folder


cell = st.sampled_from(["a.wav", "b.wav", "../a.wav", "/etc/passwd", "", "neu", "s1", "1", "0.5", "-1", "nan",
                        "inf", "1e400", "x" * 300, "a\x00.wav", '"', "\u0663"]) | near_text
columns = st.sampled_from(["path", "label", "speaker", "id", "fold", "group", "start", "end", "duration", "text"])


@FUZZ
@given(header=st.lists(columns | near_text, min_size=1, max_size=6),
       rows=st.lists(st.lists(cell, max_size=7), max_size=4))
def test_manifest_csv(manifest_dir, header, rows):
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    path = manifest_dir / "m.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8", errors="surrogatepass")
    for keep_going in (False, True):
        only_our_errors(Manifest.prepare, path, keep_going=keep_going)


json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | cell,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)


@FUZZ
@given(rows=st.lists(st.dictionaries(columns | st.text(max_size=5), json_value, max_size=8) | json_value, max_size=4))
def test_manifest_jsonl(manifest_dir, rows):
    path = manifest_dir / "m.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    only_our_errors(Manifest.prepare, path)


@FUZZ
@given(data=st.binary(max_size=200))
@example(data=b"path,label,speaker\n" + b"x" * 200_000 + b",neu,s1\n")  # past csv's field size limit
@example(data=b"path,label,speaker\n\xff\xfe,neu,s1\n")  # not UTF-8
def test_manifest_raw_bytes(manifest_dir, data):
    for name in ("raw.csv", "raw.jsonl"):
        path = manifest_dir / name
        path.write_bytes(data)
        only_our_errors(Manifest.prepare, path)


def test_deeply_nested_json_line_is_a_clear_error(manifest_dir):
    path = manifest_dir / "deep.jsonl"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(SerkitError, match="deep.jsonl:1"):
        Manifest.prepare(path)


# ---------------------------------------------------------------------------------- our own JSONL manifests


def test_round_trip_of_written_manifests(manifest_dir):
    """write_jsonl writes a valid manifest: read as one, it gives the same utterances back."""
    utts = [Utterance("u1", str(manifest_dir / "a.wav"), "neu", "s1", "1", 1.0, 0.0, None, "hi"),
            Utterance("u2", str(manifest_dir / "b.wav"), "ang", "s2", "2", 0.5, 0.25, 0.75, None)]
    write_jsonl(utts, manifest_dir / "ours.jsonl")
    assert Manifest.prepare(manifest_dir / "ours.jsonl").utterances == utts


# ---------------------------------------------------------------------------------------------- configs

yaml_text = st.text(alphabet=st.sampled_from(string.printable + "\u0663\u00e9"), max_size=120) | st.sampled_from([
    "name: [unclosed", "- a\n- b\n", "train: 3\n", "train:\n  max_epochs: many\n", "data:\n  root: ${oc.env:HOME}\n",
    "!!python/object/apply:os.system ['echo pwned']\n", "a: &x [*x]\n", "model:\n  upstreams: 7\n", "\t- x", "{",
    "seed: 1e999\n", "folds: [1, two]\n", "train: {max_epochs: -1, top_k: 0}\n",
])


@settings(FUZZ, max_examples=60)  # OmegaConf's structured merge is slow; the grammar is small
@given(text=yaml_text)
@example(text="name: !!python/object/new:os.system [touch pwned]\n")
def test_config_yaml_files(scratch, text):
    path = scratch / "c.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    only_our_errors(load_config, path)
    assert not (scratch / "pwned").exists()


override_key = st.sampled_from(["name", "seed", "folds", "data.root", "data.labels", "train.max_epochs",
                                "model.aggregators.0.channels", "model.upstreams.5.name", "train", "",
                                "a..b", "data.options.valid", "[0]", "train.max_epochs.x"]) | near_text
override_value = st.sampled_from(["3", "-1", "x", "[1, 2]", "{a: 1}", "null", "", "[", "1e999", "${oc.env:HOME}",
                                  "!!python/name:os.system", "'", "{{", "true"]) | near_text


@settings(FUZZ, max_examples=60)
@given(overrides=st.lists(st.builds(lambda k, v: f"{k}={v}", override_key, override_value) | near_text, max_size=3))
def test_config_overrides(overrides):
    only_our_errors(load_config, overrides=overrides)


# ------------------------------------------------------------------ the crashes fuzzing found, pinned down


@pytest.mark.parametrize(("name", "data", "match"), [
    ("latin1.csv", b"path,label,speaker\nb\xe9.wav,neu,s1\n", r"latin1.csv:2: not UTF-8 text"),
    ("latin1.jsonl", b'{"path": "a.wav"}\n{"path": "\xe9"}\n', r"latin1.jsonl:2: not UTF-8 text"),
    ("huge.csv", b"path,label,speaker\n" + b"x" * 200_000 + b",neu,s1\n", r"huge.csv:2: not valid CSV"),
])
def test_unreadable_manifest_text_names_the_line(manifest_dir, name, data, match):
    path = manifest_dir / name
    path.write_bytes(data)
    with pytest.raises(SerkitError, match=match):
        Manifest.prepare(path)


@pytest.mark.parametrize(("text", "match"), [
    ("!!python/object/apply:os.system ['echo pwned']\n", "python/object/apply"),
    ("- a\n- b\n", "expected a mapping"),
    ("name: [unclosed\n", "c.yaml"),
])
def test_bad_config_files_are_config_errors(scratch, text, match):
    from serkit.errors import ConfigError

    path = scratch / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(path)
