"""RAVDESS, speech part, audio only (Livingstone & Russo 2018): 24 actors x 60 files, 8 emotions.

Layout `ROOT/Actor_XX/03-01-EE-II-SS-RR-AA.(wav|flac)`:
modality (03 audio-only) - vocal channel (01 speech, 02 song) - emotion - intensity (01 normal, 02 strong)
- statement (01, 02) - repetition (01, 02) - actor (01..24; odd male, even female).
Emotions: 01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust, 08 surprised.

Utterance: id = file stem, speaker = group = "Actor_XX", text = the statement, duration from the header.
Song files (vocal channel 02) are skipped and counted; any other file with an audio suffix that does not
follow the scheme, or whose actor disagrees with its folder, is a DataError naming the file.

Options (RavdessOptions; read_corpus refuses an unknown key or a wrong type, naming data.options.KEY):
- labels, label_map: class set / renaming (e.g. labels=neutral,happy,sad,angry: the 4-class subset);
- num_folds (default 5, 2..24) and folds="balanced" (default): the 24 actors are dealt to folds back and
  forth in actor order (see folds.deal), so each fold's gender mix is within one actor of even:

      fold  test actors          male/female       (num_folds=5)
      1     1, 10, 11, 20, 21    3/2
      2     2, 9, 12, 19, 22     2/3
      3     3, 8, 13, 18, 23     3/2
      4     4, 7, 14, 17, 24     2/3
      5     5, 6, 15, 16         2/2

- folds="emobox": EmoBox's six published folds (Interspeech 2024), so results compare with its table;
- valid="next_fold" (default): validation = the next fold's actors (fold 1 after the last), training = the
  remaining actors; valid="none": no validation set. Folds are always actor-independent.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ...errors import AudioError, ConfigError, DataError
from ..audio import audio_info
from ..labels import apply_labels, check_vocabulary, parse_label_map, parse_labels
from ..utterance import Utterance
from .base import CORPORA, Corpus, FoldSplit, Prepared, Problems
from .folds import deal, parse_count, split_by_group

EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful", "07": "disgust",
            "08": "surprised"}
STATEMENTS = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}
NUM_ACTORS = 24
AUDIO_SUFFIXES = (".wav", ".flac")

# EmoBox (Ma et al., Interspeech 2024) test actors per fold; from its released RAVDESS split.
EMOBOX_FOLDS = ((1, 11, 20, 21), (4, 10, 12, 14), (8, 9, 19, 23), (3, 5, 7, 24), (2, 15, 16, 18), (6, 13, 17, 22))

_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_FOLDER = re.compile(r"^Actor_(\d\d)$")


@dataclass
class RavdessOptions:
    """See the module docstring: num_folds 2..24 (folds "balanced"), folds "balanced" | "emobox" (6 folds),
    valid "next_fold" | "none"."""

    num_folds: int = 5
    folds: str = "balanced"
    valid: str = "next_fold"


@CORPORA.register("ravdess")
class Ravdess(Corpus):
    Options = RavdessOptions
    name: ClassVar[str] = "ravdess"
    labels: ClassVar[tuple[str, ...]] = tuple(EMOTIONS.values())
    num_folds: ClassVar[int] = 5

    @classmethod
    def prepare(cls, root: str | Path, labels=None, label_map=None, *, keep_going: bool = False,
                **options) -> Prepared:
        labels, label_map = parse_labels(labels), parse_label_map(label_map)
        check_vocabulary(labels, label_map, cls.labels, cls.name)
        root = Path(root)
        if not root.is_dir():
            raise DataError("RAVDESS folder not found (expected Actor_01 ... Actor_24 inside)", root)
        utterances, skipped, problems = [], Counter(), Problems(keep_going)
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("Actor_")):
            folder_match = _FOLDER.match(folder.name)
            if folder_match is None:
                raise DataError("folder name does not follow Actor_XX (two digits)", folder)
            for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES):
                try:
                    utt = _utterance(path, folder_match.group(1))
                except AudioError as e:  # a well-named file whose header is unreadable
                    problems.add(path.absolute(), e)
                    continue
                if utt is None:
                    skipped["song file (vocal channel 02), not speech"] += 1
                else:
                    utterances.append(utt)
        if not utterances and not problems:
            raise DataError("no RAVDESS speech files found under Actor_XX/03-01-*.wav|flac", root)
        kept, label_skipped = apply_labels(utterances, labels, label_map)
        return Prepared(kept, skipped + label_skipped, list(problems))

    @classmethod
    def split(cls, utterances: list[Utterance], fold: int, **options) -> FoldSplit:
        num_folds = cls.fold_count(utterances, **options)
        fold_of_actor = _fold_of_actor(options.get("folds", "balanced"), num_folds)
        fold_of_group = {utt.group: fold_of_actor[_actor(utt)] for utt in utterances}
        return split_by_group(utterances, fold_of_group, fold, num_folds, options.get("valid", "next_fold"), cls.name)

    @classmethod
    def fold_count(cls, utterances: list[Utterance], **options) -> int:
        if options.get("folds", "balanced") == "emobox":
            if "num_folds" in options and str(options["num_folds"]) != str(len(EMOBOX_FOLDS)):
                raise ConfigError(f"num_folds: folds=emobox has {len(EMOBOX_FOLDS)} folds, got {options['num_folds']}")
            return len(EMOBOX_FOLDS)
        return parse_count(options.get("num_folds", cls.num_folds), "num_folds", 2, NUM_ACTORS)


def _utterance(path: Path, folder_actor: str) -> Utterance | None:
    """The Utterance for one file; None for a song file; DataError for a name outside the scheme."""
    match = _NAME.match(path.stem)
    if match is None:
        raise DataError("file name does not follow RAVDESS's 03-01-EE-II-SS-RR-AA scheme", path)
    modality, channel, emotion, intensity, statement, repetition, actor = match.groups()
    problems = [
        f"modality {modality} (expected 03, audio-only)" if modality != "03" else "",
        f"vocal channel {channel} (expected 01 speech or 02 song)" if channel not in ("01", "02") else "",
        f"emotion {emotion} (expected 01..08)" if emotion not in EMOTIONS else "",
        f"intensity {intensity} (expected 01 or 02)" if intensity not in ("01", "02") else "",
        f"statement {statement} (expected 01 or 02)" if statement not in STATEMENTS else "",
        f"repetition {repetition} (expected 01 or 02)" if repetition not in ("01", "02") else "",
        f"actor {actor} (expected 01..{NUM_ACTORS})" if not 1 <= int(actor) <= NUM_ACTORS else "",
        f"actor {actor} but the file is in folder Actor_{folder_actor}" if actor != folder_actor else "",
    ]
    problems = [p for p in problems if p]
    if problems:
        raise DataError(f"not a valid RAVDESS name: {'; '.join(problems)}", path)
    if channel == "02":
        return None
    speaker = f"Actor_{actor}"
    return Utterance(id=path.stem, path=str(path.absolute()), label=EMOTIONS[emotion], speaker=speaker, group=speaker,
                     duration=audio_info(path).duration, text=STATEMENTS[statement])


def _actor(utt: Utterance) -> int:
    match = _FOLDER.match(utt.group)
    if match is None:
        raise DataError(f"utterance {utt.id}: group {utt.group!r} is not a RAVDESS actor (Actor_XX)", utt.path)
    return int(match.group(1))


def _fold_of_actor(rule: str, num_folds: int) -> dict[int, int]:
    if rule == "emobox":
        return {actor: i + 1 for i, actors in enumerate(EMOBOX_FOLDS) for actor in actors}
    if rule != "balanced":
        raise ConfigError(f"folds: expected balanced or emobox, got {rule!r}")
    return deal(range(1, NUM_ACTORS + 1), num_folds)
