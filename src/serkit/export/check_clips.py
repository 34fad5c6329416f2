"""Compare two runs of one model on audio clips: what a quantized (or exported) graph changes, and how much
faster it is. Used by export/onnx.py's check; printed by `serkit export`.

    clips = load_check_clips(["recordings/"], labels)        # or a labelled manifest, or None: synthetic speech
    compare_on_clips(reference, "float32 ONNX", candidate, "int8 ONNX", clips, threads) -> ClipComparison

Clips (CheckClips): none given -> SYNTHETIC_SECONDS clips of synthetic speech (serkit_synth/voice.py, a
different prosody each; 1-8 s), so that a check never needs data; audio files and folders (as `serkit predict`
takes them) -> those, unlabelled; one .csv / .jsonl manifest, read as `serkit cv` reads a corpus manifest
(data/corpora/manifest.py: path, label, speaker, ...; start/end honoured; its rules hold, e.g. two speakers or
a fold column) -> its rows whose label the model has, labelled, and the rest counted.

Agreement: the share of clips whose predicted label is the same on both sides; the largest probability
difference over every clip and class; with labels, both sides' WA (accuracy) and UA (mean per-class recall).
Speed: each side predicts the clips through EmotionRecognizer.predict_batch (`serkit predict`'s batching) in
groups of GROUP_SIZE, the two sides taking turns group by group (a shared CPU's load hits both alike); the
seconds of a pass are summed over groups; REPEATS passes when the clips hold at most REPEAT_SECONDS of audio
(one otherwise), median reported, after one untimed call per side.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..inference.recognizer import EmotionRecognizer

SAMPLE_RATE = 16000
SYNTHETIC_SECONDS = (1.0, 2.5, 4.0, 5.5, 7.0, 8.0)
GROUP_SIZE = 8
REPEATS, REPEAT_SECONDS = 3, 120.0
MANIFEST_SUFFIXES = (".csv", ".jsonl")


@dataclass
class CheckClips:
    waves: list[np.ndarray]  # [S_i] float32, 16 kHz mono
    description: str  # what they are, after their count ("synthetic speech clips ...")
    labels: list[str] | None = None  # true labels (a manifest), else None
    left_out: dict[str, int] = field(default_factory=dict)  # manifest rows whose label the model lacks

    @property
    def seconds(self) -> float:
        return sum(w.shape[0] for w in self.waves) / SAMPLE_RATE


@dataclass
class ClipComparison:
    reference: str  # e.g. "float32 ONNX"
    candidate: str  # e.g. "int8 ONNX"
    clips: CheckClips
    agreement: float  # share of clips with the same label on both sides
    max_probability_diff: float
    reference_seconds: float  # one pass over the clips (median)
    candidate_seconds: float
    threads: int
    passes: int
    reference_accuracy: tuple[float, float] | None = None  # (WA, UA) with labelled clips
    candidate_accuracy: tuple[float, float] | None = None

    @property
    def speedup(self) -> float:
        return self.reference_seconds / self.candidate_seconds

    def summary(self) -> str:
        clips = self.clips
        lines = [(f"{self.candidate} vs {self.reference} on {len(clips.waves)} {clips.description} "
                  f"({clips.seconds:.0f} s of audio): labels agree on {self.agreement:.1%}, probabilities differ by "
                  f"at most {self.max_probability_diff:.1e}; {self.speedup:.2f}x the speed "
                  f"({self.candidate_seconds:.2f} s vs {self.reference_seconds:.2f} s per pass, {self.threads} "
                  f"thread(s), median of {self.passes})")]
        if self.reference_accuracy and self.candidate_accuracy:
            (wa_ref, ua_ref), (wa_new, ua_new) = self.reference_accuracy, self.candidate_accuracy
            lines.append(f"accuracy on the labelled clips: WA {wa_ref:.1%} -> {wa_new:.1%} "
                         f"({100 * (wa_new - wa_ref):+.1f} points), UA {ua_ref:.1%} -> {ua_new:.1%} "
                         f"({100 * (ua_new - ua_ref):+.1f} points)")
        if clips.left_out:
            lines.append("left out of the check (labels the model does not have): "
                         + ", ".join(f"{label} {n}" for label, n in sorted(clips.left_out.items())))
        return "\n".join(lines)


def load_check_clips(arguments: Sequence[str] | None, model_labels: Sequence[str]) -> CheckClips:
    """None / [] -> synthetic speech; one .csv / .jsonl -> a labelled manifest; else audio files and folders.
    ConfigError / DataError naming what is wrong (a missing path, a manifest without usable rows)."""
    if not arguments:
        return _synthetic_clips()
    manifests = [a for a in arguments if Path(a).suffix.lower() in MANIFEST_SUFFIXES]
    if manifests:
        if len(arguments) > 1:
            raise ConfigError(f"--check-audio: a manifest ({manifests[0]}) must be given alone, not with other "
                              f"paths ({len(arguments) - 1} more given)")
        return _manifest_clips(Path(manifests[0]), model_labels)
    return _file_clips(arguments)


def compare_on_clips(reference: EmotionRecognizer, reference_name: str, candidate: EmotionRecognizer,
                     candidate_name: str, clips: CheckClips, threads: int) -> ClipComparison:
    """Both recognizers on `clips` (the module docstring says how they are timed); the labels and
    probabilities compared are the first pass's. ConfigError if the candidate gives non-finite probabilities."""
    groups = [clips.waves[i : i + GROUP_SIZE] for i in range(0, len(clips.waves), GROUP_SIZE)]
    sides = (reference, candidate)
    for side in sides:  # session set-up, first-call allocations
        side.predict_batch(groups[0][:1], sample_rate=SAMPLE_RATE)
    passes = REPEATS if clips.seconds <= REPEAT_SECONDS else 1
    seconds = [[0.0] * passes, [0.0] * passes]
    predictions: list[list] = [[], []]
    for run in range(passes):
        for index, group in enumerate(groups):
            order = (0, 1) if (run + index) % 2 == 0 else (1, 0)
            for side in order:
                start = time.perf_counter()
                result = sides[side].predict_batch(group, sample_rate=SAMPLE_RATE)
                seconds[side][run] += time.perf_counter() - start
                if run == 0:
                    predictions[side] += result
    labels = reference.labels
    probabilities = [np.array([[p.probabilities[label] for label in labels] for p in side]) for side in predictions]
    if not np.isfinite(probabilities[1]).all():
        raise ConfigError(f"the {candidate_name} graph gives non-finite probabilities on the check clips")
    chosen = [probabilities[side].argmax(axis=1) for side in (0, 1)]
    comparison = ClipComparison(
        reference_name, candidate_name, clips, agreement=float((chosen[0] == chosen[1]).mean()),
        max_probability_diff=float(np.abs(probabilities[0] - probabilities[1]).max()),
        reference_seconds=statistics.median(seconds[0]), candidate_seconds=statistics.median(seconds[1]),
        threads=threads, passes=passes,
    )
    if clips.labels is not None:
        from ..evaluation.metrics import compute_metrics

        targets = [labels.index(label) for label in clips.labels]
        comparison.reference_accuracy, comparison.candidate_accuracy = (
            (metrics.wa, metrics.ua) for metrics in (compute_metrics(c, targets, labels) for c in chosen))
    return comparison


def _synthetic_clips() -> CheckClips:
    from serkit_synth.iemocap import EMOTIONS
    from serkit_synth.voice import Voice, synthesize

    rng = np.random.default_rng(0)
    prosodies = list(EMOTIONS.values())
    voices = [Voice(120, 1.0), Voice(210, 1.15), Voice(100, 1.0), Voice(180, 1.1)]
    waves = [synthesize(rng, voices[i % len(voices)], prosodies[i % len(prosodies)], seconds)
             for i, seconds in enumerate(SYNTHETIC_SECONDS)]
    return CheckClips(waves, f"synthetic speech clips of {min(SYNTHETIC_SECONDS):g}-{max(SYNTHETIC_SECONDS):g} s "
                             "(real ones: --check-audio)")


def _file_clips(arguments: Sequence[str]) -> CheckClips:
    from ..data.audio import load_audio
    from ..inference.files import audio_paths

    for argument in arguments:
        if argument != "-" and not Path(argument).exists():
            raise ConfigError(f"--check-audio {argument}: no such file or folder")
    paths = audio_paths(arguments)
    if not paths:
        raise ConfigError(f"--check-audio {' '.join(arguments)}: no audio files found there")
    waves = [load_audio(path) for path in paths]
    return CheckClips(waves, f"unlabelled files from {_shown(arguments)}")


def _manifest_clips(manifest: Path, model_labels: Sequence[str]) -> CheckClips:
    from collections import Counter

    from ..data.audio import load_audio
    from ..data.corpora.manifest import Manifest

    try:
        everything = Manifest.prepare(manifest).utterances
    except ConfigError as error:  # the corpus rules (e.g. folds need 2 speakers or a fold column)
        raise ConfigError(f"--check-audio {manifest}: {error}") from None
    kept = [u for u in everything if u.label in model_labels]
    left_out = dict(Counter(u.label for u in everything if u.label not in model_labels))
    if not kept:
        raise ConfigError(f"{manifest}: none of its {len(everything)} rows has a label of this model "
                          f"({', '.join(model_labels)}); its labels: {', '.join(sorted(left_out))}")
    waves = [load_audio(u.path, u.start, u.end) for u in kept]  # paths as the manifest reader resolved them
    return CheckClips(waves, f"labelled clips of {manifest}", [u.label for u in kept], left_out)


def _shown(arguments: Sequence[str]) -> str:
    return " ".join(arguments) if len(arguments) <= 3 else f"{' '.join(arguments[:3])} and {len(arguments) - 3} more"
