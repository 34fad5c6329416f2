"""Batching efficiency: real audio seconds / padded seconds, DurationBatchSampler vs. random batches.

Usage: python benchmarks/batching.py [--ravdess ../shared/data/ravdess] [--max-batch-seconds 60] [--out FILE]

A batch is padded to its longest utterance, so the model processes batch size x longest duration seconds of
audio; the rest is padding. Efficiency = sum of the real durations / sum over batches of that padded size,
over one epoch. The baseline is what a plain shuffled DataLoader does: a random permutation cut into the same
number of batches as serkit's sampler made that epoch (so the mean batch size is the same). Distributions:
RAVDESS's real durations (read from the file headers, when the corpus is there) and an IEMOCAP-like
long-tailed one (seeded lognormal, clipped: mean ~4.5 s, 0.6 s to 34 s, 5531 utterances as in IEMOCAP's 4
classes). Goal (issue 6): >= 0.9 for serkit's sampler. Nothing is timed here; --repeats counts epochs.
"""

from __future__ import annotations

import sys

import numpy as np

import _common

GOAL = 0.9
IEMOCAP_UTTERANCES = 5531  # IEMOCAP neu+hap(+exc)+ang+sad
IEMOCAP_MEAN, IEMOCAP_MIN, IEMOCAP_MAX = 4.5, 0.6, 34.1


def iemocap_like(seed: int, count: int = IEMOCAP_UTTERANCES) -> np.ndarray:
    """[count] seconds: lognormal (sigma 0.75, median ~3.4 s) clipped to [0.6, 34.1], mean ~4.5 s."""
    rng = np.random.default_rng(seed)
    sigma = 0.75
    mu = np.log(IEMOCAP_MEAN) - sigma**2 / 2
    durations = np.clip(rng.lognormal(mu, sigma, count), IEMOCAP_MIN, IEMOCAP_MAX)
    durations[rng.choice(count, 3, replace=False)] = [IEMOCAP_MIN, 31.0, IEMOCAP_MAX]  # the tails IEMOCAP has
    return durations


def ravdess_durations(root) -> np.ndarray:
    import soundfile as sf

    return np.array([sf.info(str(path)).duration for path in _common.ravdess_files(root)])


def efficiency(batches: list[list[int]], durations: np.ndarray) -> float:
    """Real seconds / padded seconds (batch size x longest utterance, summed over batches)."""
    padded = sum(len(batch) * durations[batch].max() for batch in batches)
    return float(sum(durations[batch].sum() for batch in batches) / padded)


def random_batches(count: int, num_batches: int, rng: np.random.Generator) -> list[list[int]]:
    return [part.tolist() for part in np.array_split(rng.permutation(count), num_batches)]


def measure(durations: np.ndarray, max_batch_seconds: float, epochs: int, seed: int,
            num_buckets: int | None = None) -> dict:
    """Per epoch: serkit's and the baseline's efficiency and serkit's mean batch size; + the unshuffled order's.
    num_buckets None: the sampler's default (what training uses)."""
    from serkit.data.sampler import DurationBatchSampler

    buckets = {} if num_buckets is None else {"num_buckets": num_buckets}
    sampler = DurationBatchSampler(durations, max_batch_seconds, shuffle=True, seed=seed, **buckets)
    rng = np.random.default_rng(seed + 1)
    serkit, baseline, sizes = [], [], []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        serkit.append(efficiency(batches, durations))
        baseline.append(efficiency(random_batches(len(durations), len(batches), rng), durations))
        sizes.append(len(durations) / len(batches))
    ordered = list(DurationBatchSampler(durations, max_batch_seconds, shuffle=False))  # evaluation / predict
    return {"serkit": serkit, "baseline": baseline, "batch_size": sizes, "ordered": efficiency(ordered, durations)}


def _default_buckets() -> int:
    import inspect

    from serkit.data.sampler import DurationBatchSampler

    return inspect.signature(DurationBatchSampler).parameters["num_buckets"].default


def main() -> int:
    p = _common.parser(__doc__, repeats=5, warmup=None, repeats_help="epochs per distribution (the median is reported)")
    p.add_argument("--ravdess", help="RAVDESS folder (default: ../shared/data/ravdess when present; 'none': skip)")
    p.add_argument("--max-batch-seconds", type=float, default=60.0,
                   help="the sampler's budget of padded seconds per batch (serkit's default data.max_batch_seconds)")
    p.add_argument("--bucket-counts", default="10,20,30,50",
                   help="num_buckets values for the second table (how the sampler's bucket count trades "
                        "padding for batch variety)")
    args = p.parse_args()
    _common.setup(args)

    table = _common.Table(
        f"Batching efficiency (real / padded seconds), max_batch_seconds={args.max_batch_seconds:g}",
        ["durations", "utterances: n, mean, min-max (s)", "mean batch size", "random batches (baseline)",
         "serkit DurationBatchSampler", "ratio serkit / baseline", "goal", "met"],
    )
    distributions = [("IEMOCAP-like (lognormal, seeded)", iemocap_like(args.seed))]
    ravdess = _common.optional_dir(args.ravdess, _common.RAVDESS)
    if ravdess is not None:
        distributions.insert(0, (f"RAVDESS (real, {_common.shown(ravdess)})", ravdess_durations(ravdess)))
    else:
        table.notes.append("RAVDESS row skipped: no RAVDESS folder (../shared/data/ravdess is absent or --ravdess "
                           "none; pass --ravdess DIR)")
    for name, durations in distributions:
        result = measure(durations, args.max_batch_seconds, args.repeats, args.seed)
        serkit, baseline = _common.median(result["serkit"]), _common.median(result["baseline"])
        table.add(name, f"{len(durations)}, {durations.mean():.2f}, {durations.min():.2f}-{durations.max():.1f}",
                  f"{_common.median(result['batch_size']):.1f}", f"{baseline:.3f}", f"{serkit:.3f}",
                  f"{serkit / baseline:.2f}x", f">= {GOAL}", _common.verdict(serkit >= GOAL))
        table.notes.append(f"{name}: without shuffling (evaluation and `serkit predict` order) serkit's "
                           f"efficiency is {result['ordered']:.3f}")
    table.notes.append(f"median over {args.repeats} epochs (serkit reshuffles within length buckets each epoch); "
                       "the baseline cuts a random permutation into as many batches as serkit made that epoch; "
                       f"serkit's sampler with its default num_buckets={_default_buckets()}")

    counts = [int(n) for n in args.bucket_counts.split(",") if n.strip()]
    buckets = _common.Table("serkit's sampler by num_buckets (efficiency, median over the same epochs)",
                            ["durations", *[f"num_buckets={n}" for n in counts]])
    for name, durations in distributions:
        cells = []
        for n in counts:
            value = _common.median(measure(durations, args.max_batch_seconds, args.repeats, args.seed, n)["serkit"])
            cells.append(f"{value:.3f}" + (" (default)" if n == _default_buckets() else ""))
        buckets.add(name, *cells)
    buckets.notes.append("more buckets: batches of closer lengths (less padding) but less variety in which "
                         "utterances share a batch from epoch to epoch")
    _common.emit([table, buckets], args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
