"""The IEMOCAP corpus: reading the release's files, label filtering, errors, and SUPERB's exact folds."""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from torch.utils.data import random_split

from serkit.data.corpora import CORPORA
from serkit.data.corpora.iemocap import (
    Iemocap,
    load_superb_split,
    speaker_valid_speaker,
    superb_random_split,
    superb_train_pool,
)
from serkit.errors import ConfigError, DataError

# README of ../shared/data/superb_iemocap_split: fold -> (test, train, valid, test neu/hap/ang/sad)
SUPERB_TABLE = {
    1: (1085, 3556, 890, (384, 278, 229, 194)),
    2: (1023, 3606, 902, (362, 327, 137, 197)),
    3: (1151, 3504, 876, (320, 286, 240, 305)),
    4: (1031, 3600, 900, (258, 303, 327, 143)),
    5: (1241, 3432, 858, (384, 442, 170, 245)),
}
REPO = Path(__file__).resolve().parents[2]
VAD = "[2.5000, 2.5000, 2.5000]"


def ids(utterances) -> list[str]:
    return [u.id for u in utterances]


def s3prl_split(items: list) -> tuple[list, list]:
    """What s3prl's emotion expert does, verbatim, without leaving the global RNG changed for other tests."""
    with torch.random.fork_rng(devices=[]):
        trainlen = int((1 - 0.2) * len(items))
        torch.manual_seed(0)
        train, dev = random_split(items, [trainlen, len(items) - trainlen])
        return [items[i] for i in train.indices], [items[i] for i in dev.indices]


# ------------------------------------------------------------------------- a hand-written mini release


def write_mini_release(root: Path, dialog_suffix: str = "impro01") -> dict[int, Path]:
    """5 sessions, one dialog each: F000 neu, F001 fru, M000 exc, M001 sad (+ evaluator lines), wav + transcript.

    Returns session -> its label file. Written by hand (not by the generator) so the loader is checked against
    the README's formats independently.
    """
    rows = [("F000", "neu"), ("F001", "fru"), ("M000", "exc"), ("M001", "sad")]
    clip = np.zeros(1600, dtype=np.float32)  # 0.1 s
    label_files = {}
    for s in range(1, 6):
        dialog = f"Ses0{s}F_{dialog_suffix}"
        base = root / f"Session{s}"
        for sub in ("dialog/EmoEvaluation", "dialog/transcriptions", f"sentences/wav/{dialog}"):
            (base / sub).mkdir(parents=True)
        label_lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        text_lines = []
        for i, (suffix, label) in enumerate(rows):
            utt = f"{dialog}_{suffix}"
            start, end = 2.0 * i + 0.5, 2.0 * i + 1.5
            label_lines += [f"[{start:.4f} - {end:.4f}]\t{utt}\t{label}\t[2.5000, 2.5000, 2.5000]",
                            "C-E1:\tNeutral state;\t()", "A-E1:\tval 3; act 2; dom  2;\t()", ""]
            text_lines.append(f"{utt} [{start:08.4f}-{end:08.4f}]: Words number {i}.")
            soundfile.write(base / f"sentences/wav/{dialog}/{utt}.wav", clip, 16000, subtype="PCM_16")
        (base / "dialog/transcriptions" / f"{dialog}.txt").write_text("\n".join(text_lines) + "\n")
        label_files[s] = base / "dialog/EmoEvaluation" / f"{dialog}.txt"
        label_files[s].write_text("\n".join(label_lines) + "\n")
    return label_files


def replace_line(path: Path, old: str, new: str) -> int:
    """Replace the line containing `old`; returns its 1-based number."""
    lines = path.read_text().split("\n")
    n = next(i for i, line in enumerate(lines) if old in line)
    lines[n] = new
    path.write_text("\n".join(lines))
    return n + 1


def test_mini_release_reads_ids_labels_speakers_text(tmp_path):
    write_mini_release(tmp_path)
    prepared = Iemocap.prepare(tmp_path)
    utts = prepared.utterances
    assert ids(utts)[:3] == ["Ses01F_impro01_F000", "Ses01F_impro01_M000", "Ses01F_impro01_M001"]
    assert [u.label for u in utts[:3]] == ["neu", "hap", "sad"]  # exc merged into hap
    assert [u.speaker for u in utts[:3]] == ["Ses01F", "Ses01M", "Ses01M"]  # from the id, not the dialog prefix
    assert [u.group for u in utts] == [str(s) for s in range(1, 6) for _ in range(3)]
    assert utts[1].text == "Words number 2."
    assert (utts[0].start, utts[0].end, utts[0].duration) == (0.0, None, pytest.approx(0.1))
    assert prepared.skipped == Counter({"label fru not in class set": 5})


def test_root_may_be_the_folder_above_the_release(tmp_path):
    write_mini_release(tmp_path / "IEMOCAP_full_release")
    assert len(Iemocap.prepare(tmp_path).utterances) == 15


def test_unknown_dialogs_are_sorted_and_lines_keep_file_order(tmp_path):
    write_mini_release(tmp_path, dialog_suffix="zz_unknown")
    label_file = tmp_path / "Session1/dialog/EmoEvaluation/Ses01F_zz_unknown.txt"
    # A second dialog, not in SUPERB's list, whose name sorts first; its lines are written M before F.
    extra = "Ses01F_aa_unknown"
    (tmp_path / f"Session1/sentences/wav/{extra}").mkdir()
    lines = []
    for i, suffix in enumerate(["M003", "F000"]):
        lines.append(f"[{i}.0000 - {i}.5000]\t{extra}_{suffix}\tang\t[2.5000, 2.5000, 2.5000]")
        soundfile.write(tmp_path / f"Session1/sentences/wav/{extra}/{extra}_{suffix}.wav",
                        np.zeros(800, np.float32), 16000, subtype="PCM_16")
    label_file.with_name(f"{extra}.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / f"Session1/dialog/transcriptions/{extra}.txt").write_text(
        f"{extra}_F000 [000.0000-000.5000]: Hi.\n{extra}_M003 [001.0000-001.5000]: Bye.\n")
    utts = Iemocap.prepare(tmp_path).utterances
    assert ids(utts)[:3] == [f"{extra}_M003", f"{extra}_F000", "Ses01F_zz_unknown_F000"]


def test_label_set_and_map_are_options(tmp_path):
    write_mini_release(tmp_path)
    five = Iemocap.prepare(tmp_path, labels=["neu", "hap", "exc", "ang", "sad"], label_map={"exc": "exc"})
    assert Counter(u.label for u in five.utterances) == {"neu": 5, "exc": 5, "sad": 5}
    with_fru = Iemocap.prepare(tmp_path, labels="neu,fru")  # a command-line override arrives as a string
    assert Counter(u.label for u in with_fru.utterances) == {"neu": 5, "fru": 5}
    assert with_fru.skipped == Counter({"label hap not in class set": 5, "label sad not in class set": 5})
    assert Iemocap.prepare(tmp_path, labels=[], label_map={}).skipped == Counter({"label fru not in class set": 5})
    as_text = Iemocap.prepare(tmp_path, labels="neu,hap,exc,ang,sad", label_map="exc:exc")
    assert [u.label for u in as_text.utterances] == [u.label for u in five.utterances]


@pytest.mark.parametrize(
    "options, key",
    [({"labels": ["neu", "joy"]}, "labels"), ({"label_map": {"happy": "hap"}}, "label_map")],
)
def test_bad_options_are_config_errors(tmp_path, options, key):
    write_mini_release(tmp_path)
    with pytest.raises(ConfigError, match=key):
        Iemocap.prepare(tmp_path, **options)


def test_an_unknown_option_is_refused_on_the_way_in(tmp_path):
    """data.options is checked against IemocapOptions by read_corpus, the one way into a corpus."""
    from serkit.data.config import DataConfig
    from serkit.data.prepare import read_corpus

    write_mini_release(tmp_path)
    with pytest.raises(ConfigError, match=r"key 'data\.options\.lables' is not an option of corpus 'iemocap'; "
                                          r"valid keys: valid$"):
        read_corpus(DataConfig(corpus="iemocap", root=str(tmp_path), options={"lables": "neu"}))


# ---------------------------------------------------------------------------------------- error cases


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "nowhere"))):
        Iemocap.prepare(tmp_path / "nowhere")


def test_missing_session_folder(tmp_path):
    write_mini_release(tmp_path)
    (tmp_path / "Session3").rename(tmp_path / "Session3_old")
    with pytest.raises(DataError, match="missing Session3"):
        Iemocap.prepare(tmp_path)


def test_malformed_label_line_names_file_and_line(tmp_path):
    label_file = write_mini_release(tmp_path)[2]
    lineno = replace_line(label_file, "_M000\t", "[4.5000 - ]\tSes02F_impro01_M000\texc\t[2.5000, 2.5000, 2.5000]")
    with pytest.raises(DataError, match="malformed label line") as info:
        Iemocap.prepare(tmp_path)
    assert (info.value.path, info.value.line) == (str(label_file), lineno)
    assert f"{label_file}:{lineno}:" in str(info.value)


def test_unknown_label_names_file_and_line(tmp_path):
    label_file = write_mini_release(tmp_path)[4]
    lineno = replace_line(label_file, "_F000\t", f"[0.5000 - 1.5000]\tSes04F_impro01_F000\tjoy\t{VAD}")
    with pytest.raises(DataError, match="unknown label 'joy'") as info:
        Iemocap.prepare(tmp_path)
    assert (info.value.path, info.value.line) == (str(label_file), lineno)


def test_missing_wav_of_a_kept_utterance(tmp_path):
    label_files = write_mini_release(tmp_path)
    wav = tmp_path / "Session5/sentences/wav/Ses05F_impro01/Ses05F_impro01_M001.wav"
    wav.unlink()
    with pytest.raises(DataError, match=re.escape(f"missing audio {wav}")) as info:
        Iemocap.prepare(tmp_path)
    assert info.value.path == str(label_files[5]) and info.value.line is not None
    # The wav of a left-out (fru) line is not needed.
    wav.parent.joinpath("Ses05F_impro01_F001.wav").unlink()
    soundfile.write(wav, np.zeros(160, np.float32), 16000)
    assert len(Iemocap.prepare(tmp_path).utterances) == 15


def test_missing_transcript_line(tmp_path):
    write_mini_release(tmp_path)
    text_file = tmp_path / "Session1/dialog/transcriptions/Ses01F_impro01.txt"
    text_file.write_text("".join(ln + "\n" for ln in text_file.read_text().splitlines() if "_M001" not in ln))
    with pytest.raises(DataError, match="no transcript line for Ses01F_impro01_M001") as info:
        Iemocap.prepare(tmp_path)
    assert info.value.path == str(text_file)


def test_utterance_id_of_another_dialog_is_an_error(tmp_path):
    label_file = write_mini_release(tmp_path)[1]
    lineno = replace_line(label_file, "_F000\t", f"[0.5000 - 1.5000]\tSes01F_impro02_F000\tneu\t{VAD}")
    with pytest.raises(DataError, match="does not look like") as info:
        Iemocap.prepare(tmp_path)
    assert info.value.line == lineno


# ------------------------------------------------------------------------------- the synthetic corpus


def test_registered():
    assert CORPORA.get("iemocap") is Iemocap
    assert Iemocap.labels == ("neu", "hap", "ang", "sad") and Iemocap.num_folds == 5


def test_synthetic_corpus_loads_with_merge_and_skips(synth_iemocap):
    prepared = Iemocap.prepare(synth_iemocap.root)
    utts = prepared.utterances
    raw = synth_iemocap.labels
    assert Counter(u.label for u in utts) == {"neu": raw["neu"], "hap": raw["hap"] + raw["exc"],
                                              "ang": raw["ang"], "sad": raw["sad"]}
    left_out = {label: n for label, n in raw.items() if label not in {"neu", "hap", "exc", "ang", "sad"}}
    assert left_out and prepared.skipped == Counter({f"label {k} not in class set": n for k, n in left_out.items()})
    assert {u.speaker for u in utts} == {f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"}
    for u in utts:
        assert u.speaker == u.id[:5] + u.id.rsplit("_", 1)[1][0] and u.group == u.id[4]
        info = soundfile.info(u.path)
        assert u.duration == pytest.approx(info.frames / 16000) and info.samplerate == 16000
        assert u.text and u.start == 0.0 and u.end is None
    assert [int(u.group) for u in utts] == sorted(int(u.group) for u in utts)


def test_superb_fallback_rule_on_a_corpus_superb_does_not_list(synth_iemocap_root):
    utts = Iemocap.prepare(synth_iemocap_root).utterances
    for fold in range(1, 6):
        split = Iemocap.split(utts, fold)
        pool = [u for s in range(1, 6) if s != fold for u in utts if u.group == str(s)]
        train, valid = s3prl_split(pool)
        assert ids(split.train) == ids(train) and ids(split.valid) == ids(valid)
        assert ids(split.test) == [u.id for u in utts if u.group == str(fold)]
        assert len(split.train) == int(0.8 * len(pool))
    # The pool follows ascending sessions even when the caller's list is not in that order.
    shuffled = [utts[i] for i in np.random.default_rng(0).permutation(len(utts))]
    assert {g for g in (u.group for u in superb_train_pool(shuffled, 2))} == {"1", "3", "4", "5"}
    assert [u.group for u in superb_train_pool(shuffled, 2)] == sorted(u.group for u in shuffled if u.group != "2")


def test_private_generator_matches_seeding_the_global_one():
    for n in (7, 4446, 4290):
        train, valid = s3prl_split(list(range(n)))
        assert superb_random_split(n) == (train, valid)


def test_speaker_validation_holds_out_one_training_speaker(synth_iemocap_root):
    utts = Iemocap.prepare(synth_iemocap_root).utterances
    held_out = set()
    for fold in range(1, 6):
        split = Iemocap.split(utts, fold, valid="speaker")
        speaker = speaker_valid_speaker(utts, fold)
        held_out.add(speaker)
        assert {u.speaker for u in split.valid} == {speaker} and speaker[4] != str(fold)
        assert speaker not in {u.speaker for u in split.train}
        assert sorted(ids(split.train + split.valid)) == sorted(u.id for u in utts if u.group != str(fold))
        assert ids(Iemocap.split(utts, fold, valid="speaker").valid) == ids(split.valid)  # deterministic
    assert len(held_out) == 5


@pytest.mark.parametrize("fold, options, error", [(0, {}, ConfigError), (6, {}, ConfigError),
                                                  (1, {"valid": "random"}, ConfigError)])
def test_bad_fold_or_rule(synth_iemocap_root, fold, options, error):
    utts = Iemocap.prepare(synth_iemocap_root).utterances
    with pytest.raises(error):
        Iemocap.split(utts, fold, **options)


def test_shipped_split_is_consistent():
    split = load_superb_split()
    sessions = {int(s): rows for s, rows in split["sessions"].items()}
    assert sum(len(rows) for rows in sessions.values()) == 5531
    for fold, (n_test, n_train, n_valid, per_class) in SUPERB_TABLE.items():
        assert len(sessions[fold]) == n_test
        test_counts = Counter(label for _, label in sessions[fold])
        assert tuple(test_counts[c] for c in ("neu", "hap", "ang", "sad")) == per_class
        entry = split["folds"][str(fold)]
        assert (len(entry["train"]), len(entry["valid"])) == (n_train, n_valid)
        assert sorted(entry["train"] + entry["valid"]) == list(range(n_train + n_valid))


# ------------------------------------------------------------------------ SUPERB's exact folds (../shared)


def test_shipped_split_rebuilds_from_the_superb_lists(superb_split_session_dir):
    spec = importlib.util.spec_from_file_location("build_superb_split", REPO / "scripts" / "build_superb_split.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with torch.random.fork_rng(devices=[]):
        rebuilt = script.build(superb_split_session_dir)
    shipped = load_superb_split()
    assert rebuilt["sessions"] == shipped["sessions"] and rebuilt["folds"] == shipped["folds"]


def test_superb_id_tree_gives_5531_utterances(superb_id_iemocap, superb_lists):
    prepared = Iemocap.prepare(superb_id_iemocap.root)
    utts = prepared.utterances
    assert len(utts) == 5531
    assert Counter(u.label for u in utts) == {"neu": 1708, "hap": 1636, "ang": 1103, "sad": 1084}
    assert superb_id_iemocap.labels["exc"] > 0  # some hap were written as exc and merged back
    assert sum(prepared.skipped.values()) == superb_id_iemocap.utterances - 5531 > 0
    # SUPERB's order: sessions ascending, their dialog order, label-file line order.
    assert [(u.id, u.label) for u in utts] == [row for fold in range(1, 6) for row in superb_lists["test"][fold]]


@pytest.fixture(scope="module")
def superb_id_utterances(superb_id_root):
    return Iemocap.prepare(superb_id_root).utterances


@pytest.mark.parametrize("fold", [1, 2, 3, 4, 5])
def test_folds_equal_superb(superb_id_utterances, superb_lists, fold):
    utts = superb_id_utterances
    split = Iemocap.split(utts, fold)
    n_test, n_train, n_valid, per_class = SUPERB_TABLE[fold]
    test_ids = [i for i, _ in superb_lists["test"][fold]]
    train_meta = [i for i, _ in superb_lists["train"][fold]]
    assert ids(split.test) == test_ids
    assert ids(superb_train_pool(utts, fold)) == train_meta  # the list SUPERB splits, in its order
    want_train, want_valid = s3prl_split(train_meta)
    assert ids(split.train) == want_train and ids(split.valid) == want_valid
    assert (len(split.test), len(split.train), len(split.valid)) == (n_test, n_train, n_valid)
    assert tuple(Counter(u.label for u in split.test)[c] for c in ("neu", "hap", "ang", "sad")) == per_class
    speaker_split = Iemocap.split(utts, fold, valid="speaker")
    assert not {u.speaker for u in speaker_split.valid} & {u.speaker for u in speaker_split.train}


def test_subset_of_superb_ids_keeps_superb_membership(superb_id_utterances, superb_lists):
    # e.g. after a later filter: the known ids keep their SUPERB train/valid side and order
    subset = superb_id_utterances[::3]
    split = Iemocap.split(subset, 1)
    keep = {u.id for u in subset}
    want_train, want_valid = s3prl_split([i for i, _ in superb_lists["train"][1]])
    assert ids(split.train) == [i for i in want_train if i in keep]
    assert ids(split.valid) == [i for i in want_valid if i in keep]


@pytest.mark.parametrize("text", ["calm:neutral:x", "exc", ":hap", "exc:"])
def test_a_label_map_pair_that_is_not_from_to_is_refused(text):
    from serkit.data.labels import parse_label_map
    from serkit.errors import ConfigError

    with pytest.raises(ConfigError, match="expected 'from:to' pairs"):
        parse_label_map(f"sur:hap,{text}")
    assert parse_label_map("exc:hap, sur:hap") == {"exc": "hap", "sur": "hap"}
