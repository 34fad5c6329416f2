"""Speaker normalisation: each speaker's per-clip features standardised by that speaker's own statistics.

Why: much of what separates two clips in a frozen encoder's pooled features is who speaks, not how they feel.
Subtracting each speaker's mean and dividing by their standard deviation, feature by feature, over that
speaker's own clips (speaker-level z-normalisation, a classic of SER: Busso et al., "Iterative feature
normalization scheme for automatic emotion detection from speech", IEEE TAC 2013) leaves how a clip differs
from the speaker's usual voice.

It reads no labels, but it needs a set of clips of every speaker, test speakers included: a transductive
protocol (a batch of one speaker's recordings, a long recording's segments), reported apart from results on
single clips. The statistics are only as good as the speaker's reference clips: on RAVDESS every actor has
clips of every emotion in nearly equal numbers (8 of each, 4 neutral), so their mean is a class-balanced
average, the best case; fewer clips, or clips of one emotion, give less (docs/results.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError

# one clip would standardise to all zeros (its speaker's statistics are the clip itself); two give every feature
# +-1, its sign against the pair's mean: allowed, but the gain needs many clips (docs/results.md)
MIN_CLIPS = 2
EPS = 1e-5  # added to each std, so a feature constant over one speaker's clips maps to 0, not to inf


def speaker_standardise(features: np.ndarray, speakers: Sequence[str], what: str = "features",
                        reference: np.ndarray | None = None, scale: bool = True) -> np.ndarray:
    """features [N, ...] (row i: one clip of speakers[i]) -> [N, ...] float32: each speaker's rows minus the mean,
    divided by the std (+ EPS), of that speaker's reference rows, element by element. reference: bool [N], which
    rows give their speaker's statistics (None: all of them; a subset: an enrolment of a few clips). scale=False:
    subtract the mean only (a std from a few clips is noisy). what: how an error names the rows. Refuses a
    speaker with fewer than MIN_CLIPS reference rows, and a non-finite value, naming them."""
    if len(speakers) != len(features):
        raise ConfigError(f"speaker normalisation of {what}: {len(features)} rows but {len(speakers)} speakers")
    if reference is None:
        reference = np.ones(len(features), dtype=bool)
    reference = np.asarray(reference)
    if reference.dtype != bool or reference.shape != (len(features),):
        raise ConfigError(f"speaker normalisation of {what}: reference must be a bool mask of {len(features)} rows, "
                          f"got {reference.dtype} of shape {reference.shape}")
    bad = np.flatnonzero(~np.isfinite(features.reshape(len(features), -1)).all(axis=1))
    if len(bad):  # one NaN would spread to every clip of its speaker
        raise ConfigError(f"speaker normalisation of {what}: {len(bad)} row(s) hold NaN or inf values, the first "
                          f"row {bad[0]} (speaker {speakers[bad[0]]!r}); fix or drop those clips")
    counts = Counter(s for s, ref in zip(speakers, reference) if ref)
    counts.update({s: 0 for s in speakers if s not in counts})
    few = sorted(s for s, n in counts.items() if n < MIN_CLIPS)
    if few:
        shown = ", ".join(f"{s!r} ({counts[s]})" for s in few[:5])
        shown += f" and {len(few) - 5} more" if len(few) > 5 else ""
        raise ConfigError(f"speaker normalisation of {what} needs at least {MIN_CLIPS} reference clips of every "
                          f"speaker; {len(few)} speaker(s) have fewer: {shown}. Drop them, or run without speaker "
                          "normalisation")
    out = np.empty(features.shape, dtype=np.float32)
    speakers = np.asarray(speakers)
    for speaker in counts:
        rows = speakers == speaker
        ref = features[rows & reference].astype(np.float64)
        centred = features[rows] - ref.mean(axis=0)
        out[rows] = centred / (ref.std(axis=0) + EPS) if scale else centred
    return out
