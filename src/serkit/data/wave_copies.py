"""Fixed perturbed copies of a clip (speed, gain, white noise), and which copy each training draw uses.

Speed perturbation (Ko et al. 2015; sox's `speed`: tempo and pitch change together), gain and additive noise
change what an encoder hears, so they must be applied before it. Copy k of an utterance draws its parameters
from a generator seeded by (utterance id, k) alone, not by a run's seed: a copy is the same samples in every
epoch, fold, seed and run, so a feature cache keyed by the samples (upstream/cache.py) encodes it once, and K
copies cost K more encodings of the corpus, once.

Training (`build_loader(..., copies=...)`): `CopyChoices` wraps the batch sampler and pairs each index with k
in 0..K (0: the clip as it is), uniform and drawn per (seed, epoch, utterance): the same on every DDP rank,
in every batch order, and after a resume; the dataset then loads the clip and makes copy k, in the loader's
worker, before any precision conversion. Validation and test loaders never get copies. The linear probe adds
the copies as training rows instead (baselines/probe.py).
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import soxr
from torch.utils.data import Sampler

from ..errors import ConfigError
from .audio import TARGET_SAMPLE_RATE

DEFAULT_SPEED = (0.9, 1.1)
DEFAULT_GAIN_DB = (-6.0, 6.0)
DEFAULTS = {"speed": DEFAULT_SPEED, "gain_db": DEFAULT_GAIN_DB, "noise_snr_db": None}
LIMITS = {"speed": (0.5, 2.0), "gain_db": (-40.0, 40.0), "noise_snr_db": (-20.0, 100.0)}


@dataclass
class WaveCopies:
    """`variants` fixed copies of each clip (0: none); copy k draws its speed factor, gain (dB) and white-noise
    SNR (dB; None: no noise) uniformly from these [low, high] ranges."""

    variants: int = 0
    speed: list[float] = field(default_factory=lambda: list(DEFAULT_SPEED))
    gain_db: list[float] = field(default_factory=lambda: list(DEFAULT_GAIN_DB))
    noise_snr_db: list[float] | None = None

    def __post_init__(self):
        check_wave_copies(self.variants, self.speed, self.gain_db, self.noise_snr_db, lambda key: key)

    def make(self, wav: np.ndarray, utterance_id: str, k: int) -> np.ndarray:
        """Copy k (1..variants) of the utterance `utterance_id` whose samples are wav [S] -> [~S / speed]."""
        return perturb(wav, **variant_parameters(utterance_id, k, self.speed, self.gain_db, self.noise_snr_db))


def check_wave_copies(variants, speed, gain_db, noise_snr_db, name: Callable[[str], str]) -> None:
    """Refuse a bad number of copies or range; name(field) -> how the message names the field ("variants",
    "speed", "gain_db", "noise_snr_db") to the user: a config key, a command-line flag."""
    if isinstance(variants, bool) or not isinstance(variants, numbers.Integral) or variants < 0:
        raise ConfigError(f"{name('variants')} is {variants!r}; expected 0 (off) or more copies")
    given = {"speed": speed, "gain_db": gain_db, "noise_snr_db": noise_snr_db}
    for key, bounds in given.items():
        if bounds is None and key == "noise_snr_db":
            continue
        least, most = LIMITS[key]
        numbers_ok = (isinstance(bounds, Sequence) and len(bounds) == 2
                      and all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
                              for v in bounds))
        if not numbers_ok or not least <= bounds[0] <= bounds[1] <= most:
            raise ConfigError(f"{name(key)} is {bounds!r}; expected [low, high] with {least:g} <= low <= high <= {most:g}")
    changed = [key for key, bounds in given.items() if not is_default(key, bounds)]
    if not variants and changed:  # a range that does nothing would mislead
        default = DEFAULTS[changed[0]]
        raise ConfigError(f"{name(changed[0])} sets the copies' range, but {name('variants')} is 0: set that to the "
                          f"number of copies (1 or more), or the range back to its default "
                          f"({'null' if default is None else list(default)})")


def is_default(key: str, bounds) -> bool:
    """Whether a range (speed, gain_db, noise_snr_db) is the default one."""
    default = DEFAULTS[key]
    return bounds is None if default is None else bounds is not None and [float(v) for v in bounds] == list(default)


def variant_parameters(utterance_id: str, k: int, speed: Sequence[float], gain_db: Sequence[float],
                       noise_snr_db: Sequence[float] | None) -> dict:
    """Copy k (1, 2, ...) of one utterance -> {"speed", "gain_db", "snr_db" (None: no noise), "noise_seed"},
    each drawn uniformly from its [low, high] range by a generator seeded with the id and k only."""
    seed = int.from_bytes(hashlib.sha256(f"serkit-wave-variant/{utterance_id}/{k}".encode()).digest()[:8], "little")
    draws = np.random.default_rng(seed).random(3)  # always three: one range's change leaves the others' draws
    return {"speed": _between(speed, draws[0]), "gain_db": _between(gain_db, draws[1]),
            "snr_db": None if noise_snr_db is None else _between(noise_snr_db, draws[2]), "noise_seed": seed}


def _between(bounds: Sequence[float], fraction: float) -> float:
    low, high = float(bounds[0]), float(bounds[1])
    return low + (high - low) * float(fraction)


def perturb(wav: np.ndarray, speed: float, gain_db: float, snr_db: float | None, noise_seed: int = 0) -> np.ndarray:
    """wav [S] float32 16 kHz -> [~S / speed] float32: resampled as if played `speed` times faster (soxr, read
    back at 16 kHz), scaled by gain_db, then white noise added at snr_db (seeded, so the same every time).
    Samples are not clipped: a gain above 0 dB may leave [-1, 1], which the encoders' feature extractors accept."""
    out = np.asarray(wav, dtype=np.float32)
    if speed != 1.0 and out.size:
        out = soxr.resample(out, TARGET_SAMPLE_RATE * speed, TARGET_SAMPLE_RATE).astype(np.float32)
    out = out * np.float32(10.0 ** (gain_db / 20.0))
    if snr_db is not None and out.size:
        power = float(np.mean(out.astype(np.float64) ** 2))
        noise = np.random.default_rng(noise_seed).standard_normal(out.size)
        out = out + (noise * np.sqrt(power / 10.0 ** (snr_db / 10.0))).astype(np.float32)
    return out


class CopyChoices(Sampler[list[tuple[int, int]]]):
    """Wraps a batch sampler of dataset indices: yields each batch as [(index, k)], k in 0..variants (0: the clip
    itself), uniform, from a generator seeded by (seed, epoch): one draw per utterance and epoch, whatever the
    rank, shard or batch order. `set_epoch` reaches the wrapped sampler too (Lightning calls it on `sampler`)."""

    def __init__(self, batches, num_items: int, variants: int, seed: int = 0):
        self.batches, self.num_items, self.variants, self.seed = batches, num_items, variants, seed
        self.epoch = 0

    @property
    def sampler(self) -> "CopyChoices":
        return self  # as DurationBatchSampler: Lightning's set_epoch goes to `batch_sampler.sampler`

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.batches.set_epoch(epoch)

    def choices(self) -> np.ndarray:
        """[num_items] int: this epoch's k of every index."""
        return np.random.default_rng([self.seed, self.epoch, 0x5EED]).integers(0, self.variants + 1, self.num_items)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        choices = self.choices()
        for batch in self.batches:
            yield [(index, int(choices[index])) for index in batch]

    def __len__(self) -> int:
        return len(self.batches)
