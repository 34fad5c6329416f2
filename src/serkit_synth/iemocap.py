"""A synthetic IEMOCAP: the release's exact folder layout and file formats, with made-up voices.

Two kinds (both deterministic for a seed: two builds are byte-identical):

- `build_synthetic_iemocap(out, seed, size)`: 5 sessions x 2 actors (F, M), a few dialogs each; every label line
  has a wav synthesised by `voice.py` (speakers differ in f0 and formant scale, emotions in prosody and partly
  in transcript wording, with per-utterance variation so the classes overlap), and ~15 % of the lines carry labels
  the 4-class set leaves out (fru, sur, xxx, ...). `small`: ~40 kept utterances of 1-3 s per session (seconds to
  build); `medium`: ~150 of 1-4 s per session.
- `build_superb_id_iemocap(out, superb_dir)`: the real utterance ids and labels from SUPERB's fold lists
  (5531 utterances, SUPERB's dialog and line order, some hap written as exc, extra fru/xxx/... lines at gaps in the
  numbering) with tiny identical-length clips, so loader and folds can be checked against SUPERB end to end.

Files written per session N (as in IEMOCAP_full_release):
    SessionN/dialog/EmoEvaluation/<dialog>.txt, SessionN/dialog/transcriptions/<dialog>.txt,
    SessionN/sentences/wav/<dialog>/<utterance id>.wav  (16 kHz mono 16-bit)
"""

from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile

from serkit.errors import ConfigError, DataError

from .voice import SAMPLE_RATE, Prosody, Voice, synthesize

SESSIONS = (1, 2, 3, 4, 5)
KEPT_LABELS = ("neu", "hap", "exc", "ang", "sad")
FILTERED_LABELS = ("fru", "xxx", "sur", "fru", "xxx", "fea", "dis", "oth")  # repeats: fru/xxx are the common ones
KEPT_SHARE = {"neu": 0.30, "hap": 0.16, "exc": 0.12, "ang": 0.21, "sad": 0.21}
FILTERED_SHARE = 0.15

# Relative to the speaker: pitch factor, pitch range, syllables/s, level dB, brightness, breathiness.
EMOTIONS: dict[str, Prosody] = {
    "neu": Prosody(pitch=1.00, pitch_range=0.10, rate=4.0, energy_db=0.0, tilt=0.35, breath=0.12),
    "hap": Prosody(pitch=1.18, pitch_range=0.22, rate=4.6, energy_db=3.0, tilt=0.50, breath=0.08),
    "exc": Prosody(pitch=1.25, pitch_range=0.26, rate=5.0, energy_db=4.5, tilt=0.55, breath=0.08),
    "ang": Prosody(pitch=1.10, pitch_range=0.15, rate=4.8, energy_db=6.0, tilt=0.75, breath=0.05),
    "sad": Prosody(pitch=0.88, pitch_range=0.06, rate=3.0, energy_db=-4.0, tilt=0.20, breath=0.30),
    "fru": Prosody(pitch=1.05, pitch_range=0.12, rate=4.4, energy_db=3.0, tilt=0.60, breath=0.12),
    "sur": Prosody(pitch=1.30, pitch_range=0.30, rate=4.4, energy_db=2.0, tilt=0.45, breath=0.10),
    "fea": Prosody(pitch=1.20, pitch_range=0.10, rate=5.0, energy_db=-1.0, tilt=0.30, breath=0.30),
    "dis": Prosody(pitch=0.95, pitch_range=0.12, rate=3.6, energy_db=1.0, tilt=0.50, breath=0.15),
    "oth": Prosody(pitch=1.00, pitch_range=0.14, rate=4.2, energy_db=0.0, tilt=0.40, breath=0.12),
    "xxx": Prosody(pitch=1.05, pitch_range=0.15, rate=4.2, energy_db=1.5, tilt=0.45, breath=0.12),
}
CATEGORY_NAMES = {"neu": "Neutral state", "hap": "Happiness", "exc": "Excited", "ang": "Anger", "sad": "Sadness",
                  "fru": "Frustration", "sur": "Surprise", "fea": "Fear", "dis": "Disgust", "oth": "Other"}
# Mean (valence, activation, dominance) on IEMOCAP's 1..5 scale.
VAD = {"neu": (3.0, 2.5, 2.5), "hap": (4.0, 3.0, 3.0), "exc": (4.0, 3.5, 3.5), "ang": (1.5, 4.0, 4.0),
       "sad": (1.5, 2.0, 2.0), "fru": (2.0, 3.5, 3.0), "sur": (3.5, 4.0, 3.0), "fea": (2.0, 3.5, 2.0),
       "dis": (2.0, 3.0, 3.5), "oth": (3.0, 3.0, 3.0), "xxx": (2.5, 3.0, 3.0)}

COMMON_WORDS = ("I", "you", "we", "it", "is", "was", "the", "that", "know", "going", "to", "here", "now", "well",
                "so", "and", "about", "this", "what", "do", "there", "they", "just", "all", "right")
# Cue words: the transcript hints at the emotion now and then, and the hints overlap across classes.
CUE_WORDS = {
    "neu": ("okay", "maybe", "today", "think", "fine", "sure"),
    "hap": ("great", "wonderful", "love", "fun", "yeah", "sure"),
    "exc": ("amazing", "wow", "great", "yes", "love", "incredible"),
    "ang": ("never", "stop", "ridiculous", "hate", "damn", "enough"),
    "sad": ("sorry", "miss", "alone", "lost", "tired", "never"),
    "fru": ("again", "can't", "whatever", "enough", "why", "seriously"),
    "sur": ("really", "what", "wow", "seriously", "oh", "no"),
    "fea": ("scared", "please", "afraid", "careful", "no", "help"),
    "dis": ("gross", "awful", "ugh", "disgusting", "hate", "no"),
    "oth": ("hmm", "well", "maybe", "anyway", "okay", "so"),
    "xxx": ("well", "okay", "really", "never", "yeah", "maybe"),
}


@dataclass(frozen=True)
class SizePreset:
    kept_per_session: int
    dialogs: tuple[str, ...]  # dialog names without the "SesNN" prefix, e.g. "F_impro01"
    seconds: tuple[float, float]


SIZES = {
    "small": SizePreset(40, ("F_impro01", "M_impro02", "F_script01_1"), (1.0, 3.0)),
    "medium": SizePreset(150, ("F_impro01", "F_impro02", "M_impro03", "M_script01_1", "F_script02_2",
                               "M_impro05b"), (1.0, 4.0)),
}


@dataclass
class SynthReport:
    """What a build wrote: label lines (= wavs) by raw label, dialogs, and seconds of audio."""

    root: Path
    dialogs: int = 0
    labels: Counter = field(default_factory=Counter)
    audio_seconds: float = 0.0

    @property
    def utterances(self) -> int:
        return sum(self.labels.values())

    def summary(self) -> str:
        kept = sum(n for label, n in self.labels.items() if label in KEPT_LABELS)
        by_label = ", ".join(f"{label} {n}" for label, n in sorted(self.labels.items()))
        return (f"wrote a synthetic IEMOCAP to {self.root}: {len(SESSIONS)} sessions, {self.dialogs} dialogs, "
                f"{self.utterances} utterances ({kept} with neu/hap/exc/ang/sad labels, "
                f"{self.utterances - kept} with labels the 4-class set leaves out), "
                f"{self.audio_seconds / 60:.1f} min of 16 kHz audio; labels: {by_label}")


@dataclass(frozen=True)
class _Line:
    """One utterance of a dialog as the label and transcript files describe it."""

    utt_id: str
    label: str
    start: float
    end: float
    text: str


# --------------------------------------------------------------------------------------------- file formats


def _evaluator_lines(rng: np.random.Generator, line: _Line) -> list[str]:
    """Per-evaluator lines after a label line: categorical (C-) and dimensional (A-) ratings, then self-report."""
    names = list(CATEGORY_NAMES.values())
    majority = CATEGORY_NAMES.get(line.label)
    cats = []
    for e in range(3):
        if majority is None or (e == 2 and rng.random() < 0.4):  # xxx: no majority; else one may disagree
            cats.append(names[rng.integers(len(names))])
        else:
            cats.append(majority)
    speaker = line.utt_id.rpartition("_")[2]
    out = [f"C-E{e + 1}:\t{cat};\t()" for e, cat in enumerate(cats)]
    out.append(f"C-{speaker}:\t{cats[0]};\t()")
    v, a, d = VAD[line.label]
    for rater in ("E1", "E2", speaker):
        val, act, dom = (int(np.clip(round(x + rng.normal(0, 0.6)), 1, 5)) for x in (v, a, d))
        out.append(f"A-{rater}:\tval {val}; act {act}; dom  {dom};\t()")
    return out


def _vad_text(rng: np.random.Generator, label: str) -> str:
    values = (float(np.clip(x + rng.normal(0, 0.3), 1, 5)) for x in VAD[label])
    return "[" + ", ".join(f"{round(x * 2) / 2:.4f}" for x in values) + "]"


def write_label_file(path: Path, lines: list[_Line], rng: np.random.Generator) -> None:
    """`dialog/EmoEvaluation/<dialog>.txt`: header, then one block per utterance in the given order."""
    chunks = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"]
    for line in lines:
        head = f"[{line.start:.4f} - {line.end:.4f}]\t{line.utt_id}\t{line.label}\t{_vad_text(rng, line.label)}"
        chunks.append("\n".join([head, *_evaluator_lines(rng, line)]) + "\n\n")
    path.write_text("".join(chunks), encoding="utf-8")


def write_transcript_file(path: Path, lines: list[_Line]) -> None:
    """`dialog/transcriptions/<dialog>.txt`: `<id> [start-end]: text` in time order."""
    in_time_order = sorted(lines, key=lambda ln: ln.start)
    rows = [f"{ln.utt_id} [{ln.start:08.4f}-{ln.end:08.4f}]: {ln.text}\n" for ln in in_time_order]
    path.write_text("".join(rows), encoding="utf-8")


def sentence(rng: np.random.Generator, label: str) -> str:
    """A short transcript; about half the time it carries one of the label's cue words."""
    words = [COMMON_WORDS[i] for i in rng.integers(len(COMMON_WORDS), size=int(rng.integers(3, 9)))]
    if rng.random() < 0.5:
        cues = CUE_WORDS[label]
        words.insert(int(rng.integers(len(words) + 1)), cues[rng.integers(len(cues))])
    end = {"ang": "!", "exc": "!", "sur": "?"}.get(label, ".")
    text = " ".join(words)
    return text[0].upper() + text[1:] + end


def _wav_bytes(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def _prepare_out(out: str | Path) -> Path:
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError("output folder exists and is not empty; choose a new or empty folder", out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _session_dirs(root: Path, session: int, dialog: str) -> tuple[Path, Path, Path]:
    base = root / f"Session{session}"
    folders = (base / "dialog" / "EmoEvaluation", base / "dialog" / "transcriptions",
               base / "sentences" / "wav" / dialog)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    return folders


# ------------------------------------------------------------------------------------------ random corpus


def _label_plan(rng: np.random.Generator, kept: int) -> list[str]:
    """One session's labels: kept classes in fixed proportions (largest remainder) + ~15 % filtered, shuffled."""
    shares = np.array([KEPT_SHARE[label] for label in KEPT_LABELS]) * kept
    counts = np.floor(shares).astype(int)
    for i in np.argsort(-(shares - counts), kind="stable")[: kept - counts.sum()]:
        counts[i] += 1
    labels = [label for label, n in zip(KEPT_LABELS, counts) for _ in range(n)]
    n_filtered = int(round(kept * FILTERED_SHARE / (1 - FILTERED_SHARE)))
    labels += [FILTERED_LABELS[i % len(FILTERED_LABELS)] for i in range(n_filtered)]
    return [labels[i] for i in rng.permutation(len(labels))]


def _voices(seed: int, session: int) -> dict[str, Voice]:
    rng = np.random.default_rng([seed, session, 7])
    return {
        "F": Voice(f0=float(rng.uniform(185, 235)), formant_scale=float(rng.uniform(1.10, 1.22))),
        "M": Voice(f0=float(rng.uniform(100, 135)), formant_scale=float(rng.uniform(0.95, 1.04))),
    }


def _dialog_lines(rng: np.random.Generator, dialog: str, labels: list[str],
                  seconds: tuple[float, float]) -> list[_Line]:
    """Turns alternate at random between the two actors; ids count per actor; label-file order is F then M."""
    lines, clock, counters = [], float(rng.uniform(1, 5)), {"F": 0, "M": 0}
    for label in labels:
        gender = "F" if rng.random() < 0.5 else "M"
        duration = round(float(rng.uniform(*seconds)), 4)
        utt_id = f"{dialog}_{gender}{counters[gender]:03d}"
        counters[gender] += 1
        lines.append(_Line(utt_id, label, round(clock, 4), round(clock + duration, 4), sentence(rng, label)))
        clock += duration + float(rng.uniform(0.2, 1.5))
    return sorted(lines, key=lambda ln: (ln.utt_id.rpartition("_")[2][0], ln.start))


def build_synthetic_iemocap(out: str | Path, seed: int = 0, size: str = "small") -> SynthReport:
    """Write a random IEMOCAP-shaped corpus into `out` (new or empty folder); see the module docstring."""
    if size not in SIZES:
        raise ConfigError(f"synthetic IEMOCAP size {size!r}; expected one of {', '.join(SIZES)}")
    preset = SIZES[size]
    root = _prepare_out(out)
    report = SynthReport(root)
    for session in SESSIONS:
        rng = np.random.default_rng([seed, session])
        voices = _voices(seed, session)
        plan = _label_plan(rng, preset.kept_per_session)
        n_dialogs = len(preset.dialogs)
        for d, suffix in enumerate(preset.dialogs):
            dialog = f"Ses{session:02d}{suffix}"
            lines = _dialog_lines(rng, dialog, plan[d::n_dialogs], preset.seconds)
            label_dir, text_dir, wav_dir = _session_dirs(root, session, dialog)
            write_label_file(label_dir / f"{dialog}.txt", lines, rng)
            write_transcript_file(text_dir / f"{dialog}.txt", lines)
            for i, line in enumerate(lines):
                utt_rng = np.random.default_rng([seed, session, d, i])
                voice = voices[line.utt_id.rpartition("_")[2][0]]
                prosody = EMOTIONS[line.label].jittered(utt_rng, amount=1.0)
                samples = synthesize(utt_rng, voice, prosody, line.end - line.start)
                (wav_dir / f"{line.utt_id}.wav").write_bytes(_wav_bytes(samples))
                report.labels[line.label] += 1
                report.audio_seconds += len(samples) / SAMPLE_RATE
            report.dialogs += 1
    return report


# --------------------------------------------------------------------------------- SUPERB-id corpus


def _read_superb_session(superb_dir: Path, session: int) -> list[tuple[str, str]]:
    path = superb_dir / f"Session{session}" / "test_meta_data.json"
    if not path.is_file():
        raise DataError("missing SUPERB fold list (expected SessionN/test_meta_data.json)", path)
    try:
        meta = json.loads(path.read_text())["meta_data"]
        return [(Path(m["path"]).stem, m["label"]) for m in meta]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(f"not a SUPERB meta_data list ({e})", path) from None


def _superb_dialog_lines(rng: np.random.Generator, dialog: str, rows: list[tuple[str, str]]) -> list[_Line]:
    """SUPERB's rows in their order, hap sometimes written as exc, and a filtered line at some numbering gaps."""
    lines, last = [], {"F": -1, "M": -1}
    clock = 1.0

    def add(utt_id: str, label: str) -> None:
        nonlocal clock
        lines.append(_Line(utt_id, label, round(clock, 4), round(clock + 1.5, 4), sentence(rng, label)))
        clock += 2.0

    for utt_id, label in rows:
        suffix = utt_id.rpartition("_")[2]
        gender, number = suffix[0], int(suffix[1:])
        if number > last[gender] + 1 and rng.random() < 0.35:
            add(f"{dialog}_{gender}{last[gender] + 1:03d}", FILTERED_LABELS[rng.integers(len(FILTERED_LABELS))])
        add(utt_id, "exc" if label == "hap" and rng.random() < 0.4 else label)
        last[gender] = max(last[gender], number)
    return lines


def build_superb_id_iemocap(out: str | Path, superb_dir: str | Path, seed: int = 0,
                            clip_seconds: float = 0.1) -> SynthReport:
    """Write SUPERB's 5531 utterances (real ids and labels) as an IEMOCAP tree with `clip_seconds` clips."""
    superb_dir = Path(superb_dir)
    root = _prepare_out(out)
    report = SynthReport(root)
    clips: dict[tuple[str, str], bytes] = {}  # (actor, label) -> wav bytes: a handful of clips, written many times
    for session in SESSIONS:
        rng = np.random.default_rng([seed, session])
        voices = _voices(seed, session)
        by_dialog: dict[str, list[tuple[str, str]]] = {}
        for utt_id, label in _read_superb_session(superb_dir, session):
            by_dialog.setdefault(utt_id.rpartition("_")[0], []).append((utt_id, label))
        for dialog, rows in by_dialog.items():
            lines = _superb_dialog_lines(rng, dialog, rows)
            label_dir, text_dir, wav_dir = _session_dirs(root, session, dialog)
            write_label_file(label_dir / f"{dialog}.txt", lines, rng)
            write_transcript_file(text_dir / f"{dialog}.txt", lines)
            for line in lines:
                gender = line.utt_id.rpartition("_")[2][0]
                key = (f"{session}{gender}", line.label)
                if key not in clips:
                    clip_rng = np.random.default_rng([seed, session, ord(gender), len(clips)])
                    clips[key] = _wav_bytes(synthesize(clip_rng, voices[gender], EMOTIONS[line.label], clip_seconds))
                (wav_dir / f"{line.utt_id}.wav").write_bytes(clips[key])
                report.labels[line.label] += 1
                report.audio_seconds += clip_seconds
            report.dialogs += 1
    return report
