"""A tiny source-filter voice: enough acoustic structure for an SER model to learn from, in numpy + scipy.

An utterance is a run of syllables. Each syllable = an optional noise burst (consonant) + a vowel: a glottal
pulse train (jittered, slowly moving f0 contour) shaped by a spectral-tilt filter and three formant resonators,
under a smooth amplitude envelope. The speaker sets f0 and formant scale; the emotion (`Prosody`) sets pitch
level and range, speaking rate, energy, tilt and breathiness. Every number is drawn from the caller's
`numpy.random.Generator`, so the same seed gives the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.signal import lfilter

SAMPLE_RATE = 16000

# (F1, F2, F3) Hz of a few vowels for an adult male vocal tract (Peterson & Barney-like values).
VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410),
          (660, 1720, 2410), (490, 1350, 1690))
FORMANT_BANDWIDTHS = (80.0, 110.0, 160.0)


@dataclass(frozen=True)
class Voice:
    """A speaker: mean f0 (Hz) and a vocal-tract scale applied to every formant (women ~1.15)."""

    f0: float
    formant_scale: float


@dataclass(frozen=True)
class Prosody:
    """How an emotion sounds. pitch: f0 factor; pitch_range: relative f0 excursion; rate: syllables/s;
    energy_db: level; tilt: 0..1, how much high-frequency energy the source keeps (tense voice ~ high);
    breath: share of aspiration noise."""

    pitch: float
    pitch_range: float
    rate: float
    energy_db: float
    tilt: float
    breath: float

    def jittered(self, rng: np.random.Generator, amount: float) -> "Prosody":
        """This utterance's prosody: every dimension moved at random (`amount` ~ how much classes overlap)."""
        return replace(
            self,
            pitch=self.pitch * float(np.exp(rng.normal(0, 0.08 * amount))),
            pitch_range=max(0.01, self.pitch_range * float(np.exp(rng.normal(0, 0.3 * amount)))),
            rate=max(1.5, self.rate * float(np.exp(rng.normal(0, 0.12 * amount)))),
            energy_db=self.energy_db + float(rng.normal(0, 2.5 * amount)),
            tilt=float(np.clip(self.tilt + rng.normal(0, 0.12 * amount), 0.0, 0.95)),
            breath=float(np.clip(self.breath + rng.normal(0, 0.05 * amount), 0.0, 0.8)),
        )


def _resonator(freq: float, bandwidth: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Second-order all-pole resonance (b, a) at `freq` Hz with `bandwidth` Hz."""
    r = np.exp(-np.pi * bandwidth / sample_rate)
    theta = 2 * np.pi * freq / sample_rate
    a = np.array([1.0, -2 * r * np.cos(theta), r * r])
    return np.array([a.sum()]), a  # b = sum(a): unit gain at 0 Hz keeps levels comparable across vowels


def _f0_contour(rng: np.random.Generator, n: int, voice: Voice, prosody: Prosody, sample_rate: int) -> np.ndarray:
    """f0 in Hz per sample [n]: declining line + a few slow random bumps + cycle-to-cycle jitter."""
    t = np.arange(n) / sample_rate
    duration = max(n / sample_rate, 1e-3)
    shape = np.zeros(n)
    for _ in range(3):
        freq = rng.uniform(0.5, 3.0) / duration * 1.5
        shape += rng.normal(0, 1) * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    shape /= max(np.abs(shape).max(), 1e-6)
    declination = -0.08 * t / duration
    jitter = rng.normal(0, 0.01, n).cumsum() / np.sqrt(np.arange(1, n + 1))
    return voice.f0 * prosody.pitch * np.exp(prosody.pitch_range * shape + declination + jitter)


def _glottal_source(f0: np.ndarray, tilt: float, sample_rate: int) -> np.ndarray:
    """Pulse train [n] following f0, low-passed to a -12 dB/octave glottal spectrum, then re-brightened by `tilt`."""
    phase = np.cumsum(f0 / sample_rate)
    pulses = np.zeros_like(f0)
    pulses[1:][np.diff(np.floor(phase)) > 0] = 1.0
    smooth = lfilter([1.0], [1.0, -1.9, 0.9025], pulses)  # double pole at 0.95: the glottal roll-off
    bright = np.diff(smooth, prepend=0.0)  # first difference: +6 dB/octave
    out = (1 - tilt) * smooth / (np.abs(smooth).max() + 1e-9) + tilt * bright / (np.abs(bright).max() + 1e-9)
    return out - out.mean()


def _envelope(n: int, attack: int, release: int) -> np.ndarray:
    env = np.ones(n)
    attack, release = min(attack, n // 2), min(release, n // 2)
    env[:attack] = np.sin(np.linspace(0, np.pi / 2, attack)) ** 2
    if release:
        env[-release:] = np.cos(np.linspace(0, np.pi / 2, release)) ** 2
    return env


def synthesize(rng: np.random.Generator, voice: Voice, prosody: Prosody, duration: float,
               sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """One utterance: float32 samples [round(duration * sample_rate)] in [-1, 1]."""
    n_total = int(round(duration * sample_rate))
    f0 = _f0_contour(rng, n_total, voice, prosody, sample_rate)
    source = _glottal_source(f0, prosody.tilt, sample_rate)
    out = np.zeros(n_total)
    pos = int(min(rng.uniform(0.03, 0.12), 0.1 * duration) * sample_rate)  # a little lead-in silence
    while pos < n_total - int(0.04 * sample_rate):
        syllable = int(sample_rate / prosody.rate * float(np.exp(rng.normal(0, 0.25))))
        syllable = min(syllable, n_total - pos)
        consonant = int(syllable * rng.uniform(0.15, 0.35)) if rng.random() < 0.7 else 0
        # consonant: band-limited noise burst around a random "place" frequency
        if consonant:
            burst = rng.normal(0, 1, consonant)
            b, a = _resonator(rng.uniform(2500, 6000), 900.0, sample_rate)
            burst = lfilter(b, a, burst)
            burst *= 0.25 / (np.abs(burst).max() + 1e-9) * _envelope(consonant, consonant // 4, consonant // 3)
            out[pos:pos + consonant] += burst
        start, stop = pos + consonant, pos + syllable
        if stop - start > 16:
            vowel = VOWELS[rng.integers(len(VOWELS))]
            excitation = source[start:stop] + prosody.breath * rng.normal(0, 0.3, stop - start)
            shaped = excitation
            for formant, bandwidth in zip(vowel, FORMANT_BANDWIDTHS):
                freq = min(formant * voice.formant_scale * float(np.exp(rng.normal(0, 0.04))), 0.45 * sample_rate)
                b, a = _resonator(freq, bandwidth, sample_rate)
                shaped = lfilter(b, a, shaped)
            shaped /= np.abs(shaped).max() + 1e-9
            n = stop - start
            out[start:stop] += shaped * _envelope(n, n // 5, n // 3) * float(np.exp(rng.normal(0, 0.15)))
        pos += syllable
        if rng.random() < 0.15:  # a short pause between words
            pos += int(rng.uniform(0.05, 0.2) * sample_rate)
    rms = np.sqrt(np.mean(out**2)) + 1e-9
    out *= 0.08 * 10 ** (prosody.energy_db / 20) / rms
    out += rng.normal(0, 10 ** (-50 / 20), n_total)  # room noise floor at -50 dBFS
    return np.clip(out, -0.99, 0.99).astype(np.float32)
