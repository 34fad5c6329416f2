"""Speech-segmented timeline on real speech: detected segments vs each RAVDESS clip's speech span.

Usage: python benchmarks/timeline.py [--seeds 10] [--clips 32] [--bundle MODEL] [--out FILE]

Per seed, a 2-3 minute recording of `--clips` RAVDESS clips (labels and actors taking turns), random silences
of 0.3-2 s, pink noise at 10-20 dB SNR per clip (serkit_synth.montage, the recording of
tests/inference/test_timeline_ravdess.py for seed 0). Truth: each clip's speech span on the clean clip (an
energy rule, montage.speech_span). Detected: Silero VAD shaped by VadSettings' defaults. The table gives per
seed the onset and offset errors (median and 95th percentile of |error|), the share of clips with both within
0.25 s (goal: >= 90 %), merged segments (covering two clips; goal 0), missed clips (goal 0), false alarms and
the VAD's speed. The last rows pool all seeds and list the missed clips.

With --bundle MODEL (a bundle trained on RAVDESS, e.g. a results run's fold model), a second table: how often
a segment's label equals its clip's label predicted alone (the clip file, whole), and the whole-file summary
over segments vs over fixed windows (10 s, hop 5 s): label and the largest probability difference.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import _common

TOLERANCE_S = 0.25


def main() -> int:
    p = _common.parser(__doc__, repeats=1, warmup=None, repeats_help="(unused: each seed is one recording)")
    p.add_argument("--seeds", type=int, default=10, help="recordings (seeds 0 .. N-1)")
    p.add_argument("--clips", type=int, default=32, help="RAVDESS clips per recording")
    p.add_argument("--ravdess", type=Path, default=_common.RAVDESS, help="RAVDESS root (official layout)")
    p.add_argument("--bundle", type=Path, help="a model bundle trained on RAVDESS: label agreement table")
    args = p.parse_args()
    _common.setup(args)
    if not args.ravdess.is_dir():
        sys.exit(f"{args.ravdess} is absent: this benchmark needs RAVDESS (../shared/data/ravdess)")

    from serkit.data.corpora.ravdess import Ravdess
    from serkit_synth.montage import build_montage, pick_clips
    from serkit.evaluation.segmentation import score_segments
    from serkit.inference.inputs import ArraySource
    from serkit.inference.segments import VadSegmenter

    utterances = Ravdess.prepare(args.ravdess).utterances
    segmenter = VadSegmenter()
    recognizer = None
    if args.bundle:
        from serkit import EmotionRecognizer

        recognizer = EmotionRecognizer.load(args.bundle)

    table = _common.Table(
        f"Speech segments vs RAVDESS speech spans ({args.clips} clips per recording, silences 0.3-2 s, pink noise "
        "10-20 dB SNR; tolerance 0.25 s)",
        ["seed", "minutes", "onset error median / p95 |e|, s", "offset error median / p95 |e|, s",
         f"within {TOLERANCE_S} s", "merged", "missed", "split", "false alarms", "VAD x real time", "goal met"])
    agreement = _common.Table(
        "Labels per segment vs the clip alone; whole-file summary over segments vs fixed windows",
        ["seed", "segment label = clip alone", "summary label (segments / windows)", "max |p difference|"])
    onsets, offsets, missed_clips, scores = [], [], [], []
    for seed in range(args.seeds):
        montage = build_montage(pick_clips(utterances, args.clips, seed), seed)
        source = ArraySource(montage.samples, montage.sample_rate)
        began = time.perf_counter()
        regions = segmenter(source)
        seconds = time.perf_counter() - began
        truth = [(placed.start, placed.end) for placed in montage.clips]
        score = score_segments(truth, [(region.start, region.end) for region in regions])
        scores.append(score)
        onset, offset = score.errors("onset"), score.errors("offset")
        onsets.append(onset)
        offsets.append(offset)
        missed_clips += [placed.clip.path.name for placed, match in zip(montage.clips, score.spans) if not match.segments]
        within = score.within_fraction(TOLERANCE_S)
        met = within >= 0.9 and score.merged == 0 and score.missed == 0
        table.add(seed, f"{montage.duration / 60:.2f}", _errors(onset), _errors(offset), f"{within:.1%}",
                  score.merged, score.missed, score.split, score.false_alarms, f"{montage.duration / seconds:.0f}x",
                  _common.verdict(met))
        if recognizer is not None:
            agreement.add(seed, *_agreement(recognizer, montage, regions))
    pooled_within = np.mean([m.within(TOLERANCE_S) for s in scores for m in s.spans])
    table.add("all", f"{sum(len(s.spans) for s in scores)} clips", _errors(np.concatenate(onsets)),
              _errors(np.concatenate(offsets)), f"{pooled_within:.1%}", sum(s.merged for s in scores),
              sum(s.missed for s in scores), sum(s.split for s in scores), sum(s.false_alarms for s in scores), "",
              f"{sum(s.within_fraction(TOLERANCE_S) >= 0.9 and not s.merged and not s.missed for s in scores)}"
              f"/{len(scores)} seeds")
    table.notes += [
        "error = detected minus true time (negative: the segment starts or ends early); p95 of the absolute error",
        f"missed clips: {', '.join(missed_clips) or 'none'}",
        "VadSettings defaults: threshold 0.5, pauses < 0.5 s bridged, speech < 0.25 s dropped, segments <= 10 s, "
        "pad 0.05 s",
    ]
    _common.emit([table, agreement] if recognizer is not None else [table], args)
    return 0


def _errors(errors: np.ndarray) -> str:
    return f"{np.median(errors):+.3f} / {np.percentile(np.abs(errors), 95):.3f}" if errors.size else ""


def _agreement(recognizer, montage, regions) -> tuple[str, str, str]:
    """Each segment's label vs its clip's label predicted alone (clip file, whole), for segments overlapping one
    clip; the whole recording's summary over segments vs over fixed windows."""
    from serkit.inference.segments import GivenRegions

    source = (montage.samples, montage.sample_rate)
    timeline = recognizer.predict(*source[:1], sample_rate=source[1], segments=GivenRegions(regions))
    alone = {placed.clip.path: recognizer.predict(placed.clip.path).label for placed in montage.clips}
    same = total = 0
    for segment in timeline.segments:
        owners = [placed for placed in montage.clips if placed.start < segment.end and placed.end > segment.start]
        if len(owners) == 1:
            total += 1
            same += segment.label == alone[owners[0].clip.path]
    windows = recognizer.predict(montage.samples, sample_rate=montage.sample_rate)
    difference = max(abs(timeline.probabilities[label] - windows.probabilities[label]) for label in recognizer.labels)
    return f"{same}/{total} ({same / max(1, total):.0%})", f"{timeline.label} / {windows.label}", f"{difference:.3f}"


if __name__ == "__main__":
    sys.exit(main())
