"""A study, not a serkit system: what speaker normalisation gives the linear probe, and how much of it survives
when each speaker's statistics come from fewer or one-sided clips (what a user has of a speaker).

    # POOLED.npz: `pooled_head_study.py extract`'s (each layer's mean and std of every clip and of its wave
    # copies, the folds, the speakers)
    python scripts/speaker_norm_study.py POOLED.npz --copies 2 --reference all      # = baseline probe --speaker-norm
    python scripts/speaker_norm_study.py POOLED.npz --copies 2 --reference random:8 --seed 0
    python scripts/speaker_norm_study.py POOLED.npz --copies 2 --reference labels:neutral,calm
    python scripts/speaker_norm_study.py POOLED.npz --copies 2 --reference none     # the probe without it
    python scripts/speaker_norm_study.py POOLED.npz --write NORMALISED.npz           # for pooled_head_study.py head

Per fold, serkit's own probe (`fit_probe`: layer view and C chosen on validation, the wave copies as training
rows) on the rows standardised per speaker by serkit's `speaker_standardise`, each speaker's statistics taken
from their reference clips (each wave copy's from the same clips' copies):
- all: every clip of the speaker, as `serkit baseline probe --speaker-norm`;
- random:K: K of the speaker's clips, drawn once per speaker (seeded): a short enrolment;
- labels:a,b: the speaker's clips of those classes (neutral, calm: an enrolment of calm speech, as Busso et al.
  2013 normalise). A user knows this of their enrolment clips; here the reference clips of a test speaker are
  also among the clips scored, so read it as an upper bound for such an enrolment;
- none: no normalisation.
--center-only subtracts each speaker's mean and keeps the scale (a std from a few clips is noisy).
Results: docs/results.md.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from serkit.baselines.probe import fit_probe
from serkit.data.speaker_norm import speaker_standardise

PARTS = ("train", "valid", "test")


def reference_rows(speakers: np.ndarray, labels: np.ndarray, reference: str, seed: int = 0) -> np.ndarray | None:
    """speakers, labels [N] (one per clip) -> bool [N]: the rows that give their speaker's statistics (None:
    "none", no normalisation)."""
    if reference == "none":
        return None
    if reference == "all":
        return np.ones(len(speakers), dtype=bool)
    kind, _, value = reference.partition(":")
    if kind == "random" and value.isdigit() and int(value) >= 2:
        rng = np.random.default_rng(seed)
        mask = np.zeros(len(speakers), dtype=bool)
        for speaker in sorted(set(speakers.tolist())):
            rows = np.flatnonzero(speakers == speaker)
            if len(rows) < int(value):
                raise SystemExit(f"--reference {reference}: speaker {speaker!r} has only {len(rows)} clips")
            mask[rng.choice(rows, int(value), replace=False)] = True
        return mask
    if kind == "labels" and value:
        wanted = value.split(",")
        unknown = sorted(set(wanted) - set(labels.tolist()))
        if unknown:
            raise SystemExit(f"--reference {reference}: no clip is labelled {', '.join(unknown)}")
        return np.isin(labels, wanted)
    raise SystemExit(f"--reference {reference!r}: expected all, none, random:K (K >= 2) or labels:a,b")


def normalised(pooled: dict, copies: int, reference: str, seed: int = 0, scale: bool = True) -> dict:
    """The file's arrays ("plain", "copy1".."copyK": [N, L, F]; "speakers", "labels": [N]) with every version
    standardised per speaker by its own reference rows (scale=False: centred only); the rest as they are."""
    if "speakers" not in pooled:
        raise SystemExit("the file has no speakers: write it again with pooled_head_study.py extract")
    versions = ["plain"] + [f"copy{k}" for k in range(1, copies + 1)]
    missing = [v for v in versions if v not in pooled]
    if missing:
        raise SystemExit(f"--copies {copies}: the file has no {', '.join(missing)} (extract with --copies {copies})")
    mask = reference_rows(np.asarray(pooled["speakers"]), np.asarray(pooled["labels"]), reference, seed)
    if mask is None:
        return dict(pooled)
    speakers = [str(s) for s in pooled["speakers"]]
    return {**pooled, **{v: speaker_standardise(pooled[v], speakers, v, reference=mask, scale=scale)
                         for v in versions}}


def run_folds(pooled: dict, copies: int) -> list[dict]:
    """Every fold of a file -> per fold {"fold", "view", "c", "valid", "test"} (UA, %) of serkit's probe."""
    classes = [str(c) for c in pooled["classes"]]
    row = {str(u): i for i, u in enumerate(pooled["ids"])}
    labels = np.array([classes.index(str(label)) for label in pooled["labels"]])
    folds = sorted({int(key[1:].split("_")[0]) for key in pooled if key.startswith("f") and key.endswith("_test")})
    results = []
    for fold in folds:
        at = {part: np.array([row[str(u)] for u in pooled[f"f{fold}_{part}"]]) for part in PARTS}
        features = {part: pooled["plain"][at[part]] for part in PARTS}
        targets = {part: labels[at[part]] for part in PARTS}
        extra = [{part: pooled[f"copy{k}"][at[part]] for part in ("train", "valid")} for k in range(1, copies + 1)]
        view, c, valid, test, _, _ = fit_probe(features, targets, classes, copies=extra)
        results.append({"fold": fold, "view": view, "c": c, "valid": 100 * valid.ua, "test": 100 * test.ua})
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pooled")
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--reference", default="all", help="all | none | random:K | labels:a,b (default all)")
    parser.add_argument("--seed", type=int, default=0, help="random:K's draw")
    parser.add_argument("--center-only", action="store_true", help="subtract each speaker's mean, do not divide by "
                                                                       "the std")
    parser.add_argument("--write", help="write the normalised arrays to this .npz instead of running the probe")
    args = parser.parse_args(argv)
    pooled = normalised(dict(np.load(args.pooled)), args.copies, args.reference, args.seed, not args.center_only)
    if args.write:
        np.savez(args.write, **pooled)
        print(f"wrote {args.write}")
        return 0
    results = run_folds(pooled, args.copies)
    for r in results:
        print(f"fold {r['fold']}: valid UA {r['valid']:.1f}, test UA {r['test']:.1f} ({r['view']}, C={r['c']:g})")
    valid, test = (np.array([r[k] for r in results]) for k in ("valid", "test"))
    centred = " centred only" if args.center_only else ""
    spread = test.std(ddof=1) if len(test) > 1 else 0
    print(f"reference {args.reference}{centred} copies {args.copies}: valid UA {valid.mean():.2f}, "
          f"test UA {test.mean():.2f} ± {spread:.2f} per fold {test.round(1).tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
