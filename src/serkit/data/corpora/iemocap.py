"""IEMOCAP (`IEMOCAP_full_release`) and SUPERB's exact leave-one-session-out folds.

Layout read (the official release; `root` may also be the folder that holds `IEMOCAP_full_release/`):

    SessionN/dialog/EmoEvaluation/<dialog>.txt    label lines `[start - end]\\t<utt id>\\t<label>\\t[v, a, d]`
                                                  among per-evaluator lines (`C-E1: ...`, `A-E1: ...`), ignored
    SessionN/dialog/transcriptions/<dialog>.txt   `<utt id> [start-end]: text`
    SessionN/sentences/wav/<dialog>/<utt id>.wav  16 kHz mono, one file per utterance

Folds: fold k tests on session k. Validation (`valid=`):

- "superb" (default): exactly SUPERB's (s3prl `downstream/emotion`): the train list is the other four sessions'
  test lists joined in ascending session order, in SUPERB's file order; then `torch.manual_seed(0)` and
  `random_split(list, [int((1 - 0.2) * n), n - int((1 - 0.2) * n)])` -> train / valid. SUPERB's in-session
  order came from their file-system listing and cannot be rebuilt by sorting, so the package ships it
  (`resources/superb_iemocap_split.json.gz`, built by `scripts/build_superb_split.py`) with the resulting
  train/valid index lists. When every given utterance id is in that file (the real corpus, or a subset of it),
  the shipped membership and order are used. Otherwise (a corpus that is not the real one, e.g. the random
  synthetic IEMOCAP, or a different class set) the same rule is computed on the given order: the four other
  sessions in ascending session order, each in the order given, then the seed-0 random split.
- "speaker": speaker-independent validation: one speaker of the training sessions is held out (training
  session number `fold % 4` (0-based) among the four, its F speaker on even folds, M on odd folds), so no
  validation speaker is in train.
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ...errors import ConfigError, DataError
from ..audio import audio_info
from ..labels import check_vocabulary, parse_label_map, parse_labels
from ..utterance import Utterance
from .base import CORPORA, Corpus, FoldSplit, Prepared, Problems
from .folds import check_fold

log = logging.getLogger(__name__)

NUM_SESSIONS = 5
# Every majority label the release uses; anything else in a label line is a malformed file.
IEMOCAP_LABELS = ("neu", "hap", "exc", "ang", "sad", "fru", "sur", "fea", "dis", "oth", "xxx")
DEFAULT_LABELS = ("neu", "hap", "ang", "sad")
DEFAULT_LABEL_MAP = {"exc": "hap"}
SUPERB_VALID_RATIO = 0.2  # s3prl emotion config `valid_ratio`
SPLIT_RESOURCE = "superb_iemocap_split.json.gz"


_LABEL_LINE = re.compile(
    r"^\[\s*(?P<start>\d+(?:\.\d*)?)\s*-\s*(?P<end>\d+(?:\.\d*)?)\s*\]\s+(?P<id>\S+)\s+(?P<label>\S+)\s+\[[^\]]*\]\s*$"
)
_TRANSCRIPT_LINE = re.compile(r"^(?P<id>\S+?)\s*\[[^\]]*\]:\s?(?P<text>.*)$")
_UTT_SUFFIX = re.compile(r"^[FM]\d+$")
_DIALOG_FILE = re.compile(r"^Ses\d\d[FM]_.+\.txt$")


# ------------------------------------------------------------------------------------- the shipped split


@functools.lru_cache(maxsize=1)
def load_superb_split() -> dict:
    """The shipped SUPERB split: {"sessions": {"1": [[id, label], ...]}, "folds": {"1": {"train": [...],
    "valid": [...]}}} with train/valid = indices into the fold's train list (other sessions joined in order)."""
    blob = resources.files("serkit.data").joinpath("resources", SPLIT_RESOURCE).read_bytes()
    return json.loads(gzip.decompress(blob))


@functools.lru_cache(maxsize=1)
def _superb_index() -> tuple[frozenset[str], dict[str, int]]:
    """(SUPERB's utterance ids, dialog -> rank in SUPERB's order)."""
    sessions = load_superb_split()["sessions"]
    ids = [utt_id for session in sorted(sessions, key=int) for utt_id, _label in sessions[session]]
    dialogs = dict.fromkeys(utt_id.rsplit("_", 1)[0] for utt_id in ids)  # in order of first appearance
    return frozenset(ids), {dialog: rank for rank, dialog in enumerate(dialogs)}


def superb_random_split(n: int) -> tuple[list[int], list[int]]:
    """Indices (train, valid) that s3prl's `torch.manual_seed(0); random_split(ds, [int(0.8 n), rest])` picks.

    A private generator seeded 0 draws the same `randperm` as the freshly seeded global one (tested) without
    resetting the caller's global RNG.
    """
    import torch
    from torch.utils.data import random_split

    n_train = int((1 - SUPERB_VALID_RATIO) * n)
    train, valid = random_split(range(n), [n_train, n - n_train], generator=torch.Generator().manual_seed(0))
    return list(train.indices), list(valid.indices)


# ------------------------------------------------------------------------------------------- reading files


def _find_root(root: str | Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataError("IEMOCAP root folder not found (expected IEMOCAP_full_release with Session1..Session5)", root)
    if not (root / "Session1").is_dir() and (root / "IEMOCAP_full_release" / "Session1").is_dir():
        root = root / "IEMOCAP_full_release"
    missing = [f"Session{s}" for s in range(1, NUM_SESSIONS + 1) if not (root / f"Session{s}").is_dir()]
    if missing:
        raise DataError(f"not an IEMOCAP_full_release folder: missing {', '.join(missing)}", root)
    return root


def _dialog_files(session_dir: Path) -> list[Path]:
    """The session's label files, in reading order."""
    folder = session_dir / "dialog" / "EmoEvaluation"
    if not folder.is_dir():
        raise DataError("missing label folder dialog/EmoEvaluation", folder)
    # `_DIALOG_FILE` also skips macOS `._Ses...` shadow files that some copies of the release carry.
    files = [p for p in folder.iterdir() if p.is_file() and _DIALOG_FILE.match(p.name)]
    if not files:
        raise DataError("no <dialog>.txt label files", folder)
    _, rank = _superb_index()  # SUPERB's order for the dialogs it lists, then any others by name
    return sorted(files, key=lambda p: (p.stem not in rank, rank.get(p.stem, 0), p.stem))


def read_label_file(path: Path) -> list[tuple[int, str, str, float, float]]:
    """(line number, utterance id, raw label, start s, end s) for each `[start - end]` line, in file order."""
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.startswith("["):
                continue  # header (`% ...`), blank lines and per-evaluator lines (`C-E1:`, `A-E1:`)
            m = _LABEL_LINE.match(line.rstrip("\r\n"))
            if m is None:
                raise DataError(f"malformed label line {line.strip()!r}; expected '[start - end]<TAB>utterance id"
                                "<TAB>label<TAB>[v, a, d]'", path, lineno)
            label = m["label"]
            if label not in IEMOCAP_LABELS:
                raise DataError(f"unknown label {label!r}; IEMOCAP labels are {' '.join(IEMOCAP_LABELS)}", path, lineno)
            dialog, _, suffix = m["id"].rpartition("_")
            if dialog != path.stem or not _UTT_SUFFIX.match(suffix):
                raise DataError(
                    f"utterance id {m['id']!r} does not look like {path.stem}_F000 / {path.stem}_M000", path, lineno
                )
            rows.append((lineno, m["id"], label, float(m["start"]), float(m["end"])))
    return rows


def read_transcripts(path: Path) -> dict[str, str]:
    """utterance id -> text from `<id> [start-end]: text` lines; other lines (noise tags etc.) are ignored."""
    if not path.is_file():
        raise DataError("missing transcription file", path)
    texts = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = _TRANSCRIPT_LINE.match(line.strip())
            if m is not None:
                texts[m["id"]] = m["text"].strip()
    return texts


def speaker_of(utt_id: str) -> str:
    """The actor who speaks: `Ses01F_impro01_M003` -> `Ses01M` (the dialog prefix names the lead, not the speaker)."""
    return utt_id[:5] + utt_id.rpartition("_")[2][0]


# ------------------------------------------------------------------------------------------------ corpus


@dataclass
class IemocapOptions:
    """valid: how a fold's training sessions give up their validation set, "superb" (SUPERB's lists) or
    "speaker" (see split)."""

    valid: str = "superb"


@CORPORA.register("iemocap")
class Iemocap(Corpus):
    Options = IemocapOptions
    name = "iemocap"
    labels = DEFAULT_LABELS
    num_folds = NUM_SESSIONS

    @classmethod
    def prepare(cls, root: str | Path, *, keep_going: bool = False, **options) -> Prepared:
        """Read the release; keep the class set (`labels`, default neu hap ang sad) after `label_map`
        (default exc -> hap); both lists/dicts or text (`labels=neu,hap`, `label_map=exc:hap`). To keep exc as
        its own class, map it to itself: `label_map={"exc": "exc"}, labels=[..., "exc"]`.

        Returns utterances ordered by session, then dialog (SUPERB's order for dialogs it lists, else sorted),
        then label-file line order; `skipped` counts the label lines left out, by reason. Per utterance:
        speaker from the id (Ses01M), group = session ("1".."5"), text = its transcript line, path = its wav
        (start 0, end None, duration from the wav header).
        Errors (DataError, naming file and line): missing root or Session folders, a malformed label line, a
        label IEMOCAP does not have, a kept utterance without wav, and a kept utterance without transcript line
        (strict on purpose: every utterance of the release has one, so a missing line means a damaged copy).
        keep_going: a missing or unreadable wav is recorded in `problems` and its utterance left out instead.
        """
        classes = parse_labels(options.get("labels")) or DEFAULT_LABELS
        mapping = parse_label_map(options.get("label_map")) or DEFAULT_LABEL_MAP
        check_vocabulary(classes, mapping, IEMOCAP_LABELS, "iemocap")
        root = _find_root(root)
        utterances, skipped, seen = [], Counter(), {}  # seen: utterance id -> "label file:line"
        problems = Problems(keep_going)
        for session in range(1, NUM_SESSIONS + 1):
            session_dir = root / f"Session{session}"
            for label_file in _dialog_files(session_dir):
                dialog = label_file.stem
                if not dialog.startswith(f"Ses{session:02d}"):
                    raise DataError(f"dialog {dialog} does not belong to Session{session}", label_file)
                transcript_file = session_dir / "dialog" / "transcriptions" / label_file.name
                texts = None
                for lineno, utt_id, raw, _start, _end in read_label_file(label_file):
                    if utt_id in seen:
                        raise DataError(f"utterance {utt_id} is labelled twice (first at {seen[utt_id]})", label_file,
                                        lineno)
                    seen[utt_id] = f"{label_file}:{lineno}"
                    label = mapping.get(raw, raw)
                    if label not in classes:
                        skipped[f"label {label} not in class set"] += 1
                        continue
                    if texts is None:
                        texts = read_transcripts(transcript_file)
                    if utt_id not in texts:
                        raise DataError(f"no transcript line for {utt_id} (labelled at {label_file}:{lineno})",
                                        transcript_file)
                    wav = session_dir / "sentences" / "wav" / dialog / f"{utt_id}.wav"
                    try:
                        if not wav.is_file():
                            raise DataError(f"missing audio {wav} for the utterance labelled here", label_file, lineno)
                        duration = audio_info(wav).duration  # AudioError naming the wav if its header is unreadable
                    except DataError as e:
                        problems.add(wav.resolve(), e, f"labelled at {label_file}:{lineno}")
                        continue
                    utterances.append(Utterance(id=utt_id, path=str(wav.resolve()), label=label, group=str(session),
                                                speaker=speaker_of(utt_id), duration=duration, text=texts[utt_id]))
        return Prepared(utterances, skipped, list(problems))

    @classmethod
    def split(cls, utterances: list[Utterance], fold: int, **options) -> FoldSplit:
        """Fold `fold` (1..5): test = session `fold`; train/valid by `valid` ("superb" default, or "speaker")."""
        rule = options.get("valid") or "superb"
        valid_rules = {"superb": _superb_valid, "speaker": _speaker_valid}
        if rule not in valid_rules:
            raise ConfigError(f"iemocap option 'valid': {rule!r}; expected one of {', '.join(valid_rules)}")
        check_fold(fold, NUM_SESSIONS, "iemocap")
        bad = sorted({u.group for u in utterances} - {str(s) for s in range(1, NUM_SESSIONS + 1)})
        if bad:
            raise DataError(f"iemocap utterances with groups {bad}; expected sessions 1..{NUM_SESSIONS}")
        test = [u for u in utterances if u.group == str(fold)]
        if not test:
            raise DataError(f"fold {fold}: no utterance of session {fold} to test on")
        return FoldSplit(fold, *valid_rules[rule](utterances, fold), test)


# --------------------------------------------------------------------------------------- validation rules


def superb_train_pool(utterances: list[Utterance], fold: int) -> list[Utterance]:
    """The list SUPERB splits into train/valid: the four other sessions in ascending order, each in given order."""
    others = [u for u in utterances if u.group != str(fold)]
    return sorted(others, key=lambda u: int(u.group))  # stable: keeps the given order inside a session


def _superb_valid(utterances: list[Utterance], fold: int) -> tuple[list[Utterance], list[Utterance]]:
    superb_ids, _ = _superb_index()
    known = sum(u.id in superb_ids for u in utterances)
    if known == len(utterances):
        split = load_superb_split()
        pool_ids = [row[0] for s in range(1, NUM_SESSIONS + 1) if s != fold for row in split["sessions"][str(s)]]
        by_id = {u.id: u for u in utterances}  # an id of session `fold` is never among pool_ids
        entry = split["folds"][str(fold)]

        def pick(indices: list[int]) -> list[Utterance]:  # SUPERB's order; ids absent from `utterances` drop out
            return [by_id[pool_ids[i]] for i in indices if pool_ids[i] in by_id]

        return pick(entry["train"]), pick(entry["valid"])
    if known:
        log.warning("iemocap: %d of %d utterances are not in SUPERB's list; computing the SUPERB rule on the given "
                    "order", len(utterances) - known, len(utterances))
    pool = superb_train_pool(utterances, fold)
    train_idx, valid_idx = superb_random_split(len(pool))
    return [pool[i] for i in train_idx], [pool[i] for i in valid_idx]


def speaker_valid_speaker(utterances: list[Utterance], fold: int) -> str:
    """The held-out validation speaker for `fold` (see module docstring)."""
    train_sessions = [s for s in range(1, NUM_SESSIONS + 1) if s != fold]
    session = str(train_sessions[fold % len(train_sessions)])
    speakers = sorted({u.speaker for u in utterances if u.group == session})
    if not speakers:
        raise DataError(f"fold {fold}: session {session} has no utterances to pick a validation speaker from")
    return speakers[fold % 2] if len(speakers) > 1 else speakers[0]


def _speaker_valid(utterances: list[Utterance], fold: int) -> tuple[list[Utterance], list[Utterance]]:
    held_out = speaker_valid_speaker(utterances, fold)
    pool = superb_train_pool(utterances, fold)
    return [u for u in pool if u.speaker != held_out], [u for u in pool if u.speaker == held_out]
