"""A long recording made of short clips, with known speech spans: the test bed of speech segmentation.

    build_montage(clips, seed) -> Montage(samples [S] float32 16 kHz, sample_rate, placed clips with their truth)

Clips are laid end to end in the given order, each after a silence drawn uniformly from `gap_seconds`
(the recording also ends with one), and a continuous background noise is added under the whole recording.
Each clip is scaled so that its speech (over its speech span) stands snr_db above the noise, with snr_db
drawn per clip uniformly from `snr_db` (voices at different distances over one constant background); the
mix is then scaled as a whole to peak at 0.9 when it would clip (the same factor for speech and noise, so
the SNRs hold). The noise is pink (power falling 3 dB per octave, like room and traffic rumble), which is
stationary: voice activity should ignore it, as opposed to babble, which is speech.

Truth: each clip's speech span, found on the clean clip alone (speech_span), independently of any voice
activity detector: frame energies (25 ms frames, 10 ms hop) in dB relative to the clip's loudest frame;
frames above SPEECH_DB (-25 dB) are active; active runs closer than 0.3 s are joined (the gaps inside a
sentence) and runs shorter than 0.1 s dropped (clicks); the span runs from the start of the first run to the
end of the last. Why -25 dB and not the -30 dB tried first: in RAVDESS, breaths before a sentence and lip or
chair noises after it sit at -45 to -26 dB (e.g. 03-01-08-01-02-01-17 breathes at -26 to -28 dB 0.4 s
before speaking, 03-01-01-01-02-02-11 has noises at -29 dB 0.5 s after), which -30 dB counted as speech.
Some remain above -25 dB (a hum at -18 dB after 03-01-02-02-02-01-09): the truth is not perfect, and a
clip it gets wrong counts against the detector.
The clips' own leading and trailing silence (RAVDESS: about 1 s and 0.5-1 s) stays in the recording,
so two spans are at least a gap plus that silence apart.

Everything is seeded: the same clips and seed give the same recording, sample for sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from serkit.data.audio import TARGET_SAMPLE_RATE, load_audio

from .voice import Prosody, Voice, synthesize

SPEECH_DB = -25.0
FRAME_SECONDS, HOP_SECONDS = 0.025, 0.010
JOIN_SECONDS, MIN_RUN_SECONDS = 0.3, 0.1
PEAK = 0.9


@dataclass(frozen=True)
class Clip:
    """One clip to place: its audio file, label and speaker (carried through to the truth)."""

    path: Path
    label: str
    speaker: str


@dataclass(frozen=True)
class PlacedClip:
    """Where a clip landed in the montage: the whole clip (clip_start..clip_end) and its speech span
    (start..end), seconds from the montage's start; snr_db is its speech-to-noise ratio."""

    clip: Clip
    clip_start: float
    clip_end: float
    start: float
    end: float
    snr_db: float


@dataclass
class Montage:
    samples: np.ndarray  # [S] float32
    sample_rate: int
    clips: list[PlacedClip]

    @property
    def duration(self) -> float:
        return self.samples.shape[0] / self.sample_rate


def build_montage(clips: Sequence[Clip], seed: int, gap_seconds: tuple[float, float] = (0.3, 2.0),
                  snr_db: tuple[float, float] = (10.0, 20.0), sample_rate: int = TARGET_SAMPLE_RATE,
                  span_of: Callable[[np.ndarray, int], tuple[int, int]] | None = None) -> Montage:
    """The recording described in the module docstring. span_of(clean samples [S], sample_rate) -> (first,
    stop): how a clip's speech span is found (default speech_span, the energy rule)."""
    rng = np.random.default_rng(seed)
    span_of = span_of or speech_span
    audio = [load_audio(clip.path, target_sr=sample_rate) for clip in clips]
    spans = [span_of(samples, sample_rate) for samples in audio]
    gaps = [round(rng.uniform(*gap_seconds) * sample_rate) for _ in range(len(clips) + 1)]
    snrs = rng.uniform(*snr_db, size=len(clips))
    total = sum(gaps) + sum(samples.shape[0] for samples in audio)
    noise = pink_noise(total, rng)  # unit power
    speech = np.zeros(total, np.float64)
    placed, position = [], 0
    for clip, samples, (first, stop), snr, gap in zip(clips, audio, spans, snrs, gaps):
        position += gap
        level = np.mean(samples[first:stop].astype(np.float64) ** 2)
        gain = np.sqrt(10 ** (snr / 10) / level)
        speech[position : position + samples.shape[0]] = samples * gain
        placed.append(PlacedClip(clip, position / sample_rate, (position + samples.shape[0]) / sample_rate,
                                 (position + first) / sample_rate, (position + stop) / sample_rate, float(snr)))
        position += samples.shape[0]
    mix = speech + noise
    mix *= PEAK / np.abs(mix).max()
    return Montage(mix.astype(np.float32), sample_rate, placed)


def pick_clips(utterances: Sequence, count: int, seed: int) -> list[Clip]:
    """`count` clips from utterances (anything with path, label, speaker): labels take turns, and so do
    speakers (each label and speaker order shuffled by `seed`), each clip drawn at random among the
    utterances of its label and speaker (or, where there is none, of its label and another speaker than the
    clip before): consecutive clips differ in emotion and speaker, and count >= speakers uses them all."""
    rng = np.random.default_rng(seed)
    labels = sorted({u.label for u in utterances})
    speakers = sorted({u.speaker for u in utterances})
    rng.shuffle(labels)
    rng.shuffle(speakers)
    clips: list[Clip] = []
    for index in range(count):
        label, speaker = labels[index % len(labels)], speakers[index % len(speakers)]
        pool = [u for u in utterances if u.label == label and u.speaker == speaker] or \
               [u for u in utterances if u.label == label and (not clips or u.speaker != clips[-1].speaker)]
        chosen = pool[int(rng.integers(len(pool)))]
        clips.append(Clip(Path(chosen.path), chosen.label, chosen.speaker))
    return clips


def speech_span(samples: np.ndarray, sample_rate: int) -> tuple[int, int]:
    """samples [S] of a clean clip -> (first, stop) sample of its speech (the module docstring's rule)."""
    frame, hop = round(FRAME_SECONDS * sample_rate), round(HOP_SECONDS * sample_rate)
    if samples.shape[0] < frame:
        return 0, samples.shape[0]
    windows = np.lib.stride_tricks.sliding_window_view(samples.astype(np.float64), frame)[::hop]  # [N, frame]
    energy_db = 10 * np.log10(np.mean(windows**2, axis=1) + 1e-12)
    active = energy_db > energy_db.max() + SPEECH_DB
    runs = _runs(active)
    joined: list[list[int]] = []
    for first, stop in runs:
        if joined and (first - joined[-1][1]) * HOP_SECONDS < JOIN_SECONDS:
            joined[-1][1] = stop
        else:
            joined.append([first, stop])
    kept = [run for run in joined if (run[1] - run[0]) * HOP_SECONDS >= MIN_RUN_SECONDS] or joined
    return kept[0][0] * hop, min(samples.shape[0], (kept[-1][1] - 1) * hop + frame)


def pink_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    """[length] float64 noise of unit power whose power spectrum falls as 1/f (white noise shaped in the
    frequency domain; the DC bin is zeroed)."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequencies = np.arange(spectrum.shape[0], dtype=np.float64)
    frequencies[0] = np.inf
    noise = np.fft.irfft(spectrum / np.sqrt(frequencies), n=length)
    return noise / np.sqrt(np.mean(noise**2))


def _runs(active: np.ndarray) -> list[tuple[int, int]]:
    """bool [N] -> [(first, stop)] of each run of True."""
    edges = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    return list(zip(np.nonzero(edges == 1)[0].tolist(), np.nonzero(edges == -1)[0].tolist()))


def synthetic_talk(pattern: Sequence[tuple[float, float]], seed: int = 0, tail_seconds: float = 1.0,
                   sample_rate: int = TARGET_SAMPLE_RATE) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Speech without a corpus, for tests and demos: pattern [(silence, speech) seconds] -> (samples [S] float32
    at sample_rate: each silence (digital zero) then an utterance of voice.py in a new voice, then
    tail_seconds of silence; speech spans [(start, end)] seconds). Silero VAD takes this voice for speech."""
    rng = np.random.default_rng(seed)
    prosody = Prosody(pitch=1.0, pitch_range=0.2, rate=4.0, energy_db=0.0, tilt=0.5, breath=0.1)
    voices = [Voice(120, 1.0), Voice(210, 1.15), Voice(100, 1.0), Voice(180, 1.1)]
    parts, spans, position = [], [], 0.0
    for index, (silence, seconds) in enumerate(pattern):
        parts += [np.zeros(round(silence * 16000), np.float32),
                  synthesize(rng, voices[index % len(voices)], prosody, seconds)]
        spans.append((position + silence, position + silence + seconds))
        position += silence + seconds
    parts.append(np.zeros(round(tail_seconds * 16000), np.float32))
    samples = np.concatenate(parts)
    if sample_rate != 16000:
        import soxr

        samples = soxr.resample(samples, 16000, sample_rate).astype(np.float32)
    return samples, spans
