"""RAVDESS: the published facts on the real corpus, actor-independent folds, and naming errors."""

from __future__ import annotations

from collections import Counter
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from serkit.data.corpora import CORPORA
from serkit.data.corpora.ravdess import EMOBOX_FOLDS, Ravdess
from serkit.data.utterance import Utterance
from serkit.errors import ConfigError, DataError


@cache
def _prepared(root: Path, labels: tuple[str, ...] = ()):
    return Ravdess.prepare(root, labels=list(labels))


def _actor(utt) -> int:
    return int(utt.speaker.removeprefix("Actor_"))


def test_registered():
    assert CORPORA.get("ravdess") is Ravdess


def test_real_corpus_facts(ravdess_dir):
    prepared = _prepared(ravdess_dir)
    utts = prepared.utterances
    assert len(utts) == 1440 and not prepared.skipped
    assert len({u.id for u in utts}) == 1440
    per_actor = Counter(u.speaker for u in utts)
    assert len(per_actor) == 24 and set(per_actor.values()) == {60}
    labels = Counter(u.label for u in utts)
    assert labels["neutral"] == 96
    assert {label: n for label, n in labels.items() if label != "neutral"} == {
        label: 192 for label in ("calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    }
    assert all(u.group == u.speaker for u in utts)
    assert {u.text for u in utts} == {"Kids are talking by the door.", "Dogs are sitting by the door."}
    assert sum(u.duration for u in utts) / 3600 == pytest.approx(1.48, abs=0.01)
    assert 2.5 < min(u.duration for u in utts) and max(u.duration for u in utts) < 5.5
    assert all(Path(u.path).is_file() for u in utts[:: 100])


def test_four_class_subset_counts_what_it_skips(ravdess_dir):
    prepared = _prepared(ravdess_dir, ("neutral", "happy", "sad", "angry"))
    assert Counter(u.label for u in prepared.utterances) == {"neutral": 96, "happy": 192, "sad": 192, "angry": 192}
    assert prepared.skipped == {
        f"label {label} not in class set": 192 for label in ("calm", "fearful", "disgust", "surprised")
    }


def test_label_map_merges_before_filtering(ravdess_dir):
    prepared = Ravdess.prepare(ravdess_dir, labels=["neutral", "sad"], label_map={"calm": "neutral"})
    assert Counter(u.label for u in prepared.utterances) == {"neutral": 288, "sad": 192}


@pytest.mark.parametrize("num_folds", [5, 2, 6])
def test_folds_are_actor_independent_disjoint_and_covering(ravdess_dir, num_folds):
    utts = _prepared(ravdess_dir).utterances
    options = {"num_folds": str(num_folds)}
    assert Ravdess.fold_count(utts, **options) == num_folds
    test_ids = []
    for fold in range(1, num_folds + 1):
        split = Ravdess.split(utts, fold, **options)
        actors = [{_actor(u) for u in part} for part in (split.train, split.valid, split.test)]
        assert not (actors[0] & actors[1]) and not (actors[0] & actors[2]) and not (actors[1] & actors[2])
        assert len(split.train) + len(split.valid) + len(split.test) == 1440
        # Actors alternate male (odd) / female (even): every fold's test set is within one actor of even.
        males = sum(a % 2 for a in actors[2])
        assert abs(males - (len(actors[2]) - males)) <= 1
        # Validation is the next fold's test set.
        next_split = Ravdess.split(utts, fold % num_folds + 1, **options)
        assert {u.id for u in split.valid} == {u.id for u in next_split.test}
        test_ids += [u.id for u in split.test]
    assert sorted(test_ids) == sorted(u.id for u in utts)


def test_default_fold_assignment_is_the_documented_one(ravdess_dir):
    utts = _prepared(ravdess_dir).utterances
    documented = {
        1: {1, 10, 11, 20, 21},
        2: {2, 9, 12, 19, 22},
        3: {3, 8, 13, 18, 23},
        4: {4, 7, 14, 17, 24},
        5: {5, 6, 15, 16},
    }
    for fold, actors in documented.items():
        assert {_actor(u) for u in Ravdess.split(utts, fold).test} == actors
    assert Ravdess.split(utts, 1).test == Ravdess.split(list(utts), 1).test  # deterministic


def test_emobox_folds_and_no_validation(ravdess_dir):
    utts = _prepared(ravdess_dir).utterances
    options = {"folds": "emobox", "valid": "none"}
    assert Ravdess.fold_count(utts, **options) == 6
    for fold, actors in enumerate(EMOBOX_FOLDS, 1):
        split = Ravdess.split(utts, fold, **options)
        assert {_actor(u) for u in split.test} == set(actors) and len(split.test) == 240
        assert split.valid == [] and len(split.train) == 1200


@pytest.mark.parametrize(
    "options", [{"num_folds": "25"}, {"num_folds": "x"}, {"folds": "random"}, {"valid": "half"}]
)
def test_bad_options_are_config_errors(options):
    utts = [Utterance(f"u{a}", "x.wav", "sad", f"Actor_{a:02d}", f"Actor_{a:02d}", 1.0) for a in range(1, 25)]
    with pytest.raises(ConfigError):
        Ravdess.split(utts, 1, **options)


def test_unknown_class_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="joy"):
        Ravdess.prepare(tmp_path, labels=["neutral", "joy"])


# --- a tiny synthetic tree for the naming rules ---------------------------------------------------------


def _tree(root: Path, names: dict[str, list[str]]) -> Path:
    for folder, files in names.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name in files:
            sf.write(root / folder / name, np.full(1600, 0.1, np.float32), 16000)
    return root


def test_song_files_are_skipped_and_counted(tmp_path):
    root = _tree(tmp_path, {"Actor_03": ["03-01-05-02-01-01-03.wav", "03-02-05-02-01-01-03.wav"]})
    (root / "Actor_03" / ".DS_Store").write_bytes(b"\0")  # not audio: ignored
    prepared = Ravdess.prepare(root)
    assert [(u.id, u.label, u.speaker, u.text) for u in prepared.utterances] == [
        ("03-01-05-02-01-01-03", "angry", "Actor_03", "Kids are talking by the door.")
    ]
    assert prepared.utterances[0].duration == pytest.approx(0.1)
    assert prepared.skipped == {"song file (vocal channel 02), not speech": 1}


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("03-01-05-02-01-01-04.wav", "folder Actor_03"),
        ("03-01-09-01-01-01-03.flac", "emotion 09"),
        ("03-01-05-02-01-03.wav", "scheme"),
        ("angry_take2.wav", "scheme"),
        ("03-01-05-03-01-01-03.wav", "intensity 03"),
    ],
)
def test_bad_names_are_data_errors_naming_the_file(tmp_path, name, reason):
    root = _tree(tmp_path, {"Actor_03": ["03-01-01-01-01-01-03.wav", name]})
    with pytest.raises(DataError, match=reason) as info:
        Ravdess.prepare(root)
    assert name in str(info.value)


def test_missing_or_empty_root(tmp_path):
    with pytest.raises(DataError, match="not found"):
        Ravdess.prepare(tmp_path / "absent")
    with pytest.raises(DataError, match="no RAVDESS speech files"):
        Ravdess.prepare(tmp_path)


def test_corpus_options_are_checked_against_its_options_class(tmp_path):
    """data.options is checked against Ravdess.Options before any file is read: the key, and the valid ones."""
    from serkit.data.config import DataConfig
    from serkit.data.prepare import read_corpus

    with pytest.raises(ConfigError, match=r"^key 'data\.options\.fold' is not an option of corpus 'ravdess'; "
                                          r"valid keys: num_folds, folds, valid$"):
        read_corpus(DataConfig(corpus="ravdess", root=str(tmp_path), options={"fold": "emobox"}))
    with pytest.raises(ConfigError, match=r"data\.options\.num_folds.*could not be converted to Integer"):
        read_corpus(DataConfig(corpus="ravdess", root=str(tmp_path), options={"num_folds": "six"}))
    with pytest.raises(ConfigError, match=r"data\.options\.nfolds"):
        read_corpus(DataConfig(corpus="ravdess", root=str(tmp_path), options={"nfolds": "5"}))
