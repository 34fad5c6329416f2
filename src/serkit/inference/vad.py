"""Voice activity: Silero VAD's speech probability per 32 ms frame of an audio source, read block by block.

    SileroVad().probabilities(source) -> speech probabilities [F] float32, F = ceil(S / 512) for the source's
    S samples at 16 kHz; frame i covers seconds [i * FRAME_SECONDS, (i + 1) * FRAME_SECONDS)

The detector is silero-vad's "sequence" ONNX graph (the `vad` extra: `pip install 'serkit[vad]'`): the same
LSTM as its streaming model, bit-exact with it, but one ONNX Runtime call runs a block of up to 512 frames
(16 s) instead of one Python call per 32 ms frame, which is ~7x faster on one CPU thread (0.19 s vs 1.3 s per
minute of audio with the TorchScript model, measured here). The recurrent state (h, c) and each frame's 64
samples of left context are carried from block to block by this module, so

- a file is decoded a block at a time (BLOCK_SECONDS of its native rate, resampled to 16 kHz by one soxr
  stream so that block edges leave no trace): memory is one block plus 4 bytes per frame, however long the
  recording (benchmarks/timeline.py measures it);
- one loaded model serves every thread at once (a service's concurrent requests): the state lives in the
  call, not in the model. The TorchScript model keeps its state inside itself and could not be shared.

The audio goes through the data layer's checks (data.audio: NaN/inf refused, clipped to [-1, 1], mixed to
mono) exactly as the emotion model's input does.
"""

from __future__ import annotations

import functools
import warnings
from typing import Iterator

import numpy as np
import soxr

from ..data.audio import conform_samples
from ..errors import ConfigError
from .inputs import AudioSource

SAMPLE_RATE = 16000
FRAME_SAMPLES = 512  # what silero's 16 kHz model takes per step
CONTEXT_SAMPLES = 64  # the previous frame's last samples, prepended to each frame
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
MAX_FRAMES_PER_CALL = 512
BLOCK_SECONDS = 30.0
INSTALL_HINT = "pip install 'serkit[vad]'"


class SileroVad:
    """Silero VAD (ONNX Runtime, CPU, one thread per call). Load it with `load_vad()`, which keeps one per process."""

    def __init__(self):
        self.session = _silero_sequence_session()

    def probabilities(self, source: AudioSource) -> np.ndarray:
        """-> speech probability per 32 ms frame [F] float32 of the whole source (see the module docstring)."""
        hidden = np.zeros((1, 1, 128), np.float32)
        cell = np.zeros((1, 1, 128), np.float32)
        context = np.zeros(CONTEXT_SAMPLES, np.float32)
        pending = np.zeros(0, np.float32)  # samples of a frame not yet complete
        probabilities: list[np.ndarray] = []
        for chunk, last in _blocks_16k(source):
            pending = np.concatenate([pending, chunk]) if pending.size else chunk
            if last and pending.size % FRAME_SAMPLES:  # the final frame is zero-padded, as silero does
                pending = np.pad(pending, (0, FRAME_SAMPLES - pending.size % FRAME_SAMPLES))
            whole = pending.size - pending.size % FRAME_SAMPLES
            for first in range(0, whole, MAX_FRAMES_PER_CALL * FRAME_SAMPLES):
                frames = pending[first : min(whole, first + MAX_FRAMES_PER_CALL * FRAME_SAMPLES)]
                frames = frames.reshape(-1, FRAME_SAMPLES)
                contexts = np.concatenate([context[None], frames[:-1, -CONTEXT_SAMPLES:]])
                values, hidden, cell = self.session.run(
                    ["speech_probs", "hn", "cn"],
                    {"input": np.concatenate([contexts, frames], axis=1), "h": hidden, "c": cell},
                )
                probabilities.append(np.asarray(values, np.float32).reshape(-1))
                context = frames[-1, -CONTEXT_SAMPLES:].copy()
            pending = pending[whole:]
        return np.concatenate(probabilities) if probabilities else np.zeros(0, np.float32)


@functools.cache
def load_vad() -> SileroVad:
    """The process's one SileroVad (loaded on first use; safe to share between threads)."""
    return SileroVad()


def _blocks_16k(source: AudioSource) -> Iterator[tuple[np.ndarray, bool]]:
    """Yield (samples [n] float32 mono at 16 kHz, is_last) for consecutive blocks of the whole source."""
    rate = source.sample_rate
    step = max(1, int(BLOCK_SECONDS * rate))
    resampler = None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32")
    for first in range(0, source.frames, step):
        stop = min(first + step, source.frames)
        # the data layer's checks and mixing, at the native rate (the stream resamples across block edges)
        mono = conform_samples(source.read(first, stop), rate, target_sr=rate, name=source.name)
        last = stop == source.frames
        yield (mono if resampler is None else resampler.resample_chunk(mono, last=last)), last


def _silero_sequence_session():
    """silero-vad's sequence ONNX graph in an ONNX Runtime session; ConfigError saying what to install."""
    import torch  # silero_vad sets torch to one thread for the whole process on import: undo that

    threads = torch.get_num_threads()
    try:
        from silero_vad import load_silero_vad
    except ImportError:
        raise ConfigError(f"voice activity detection (segments 'vad') needs silero-vad: {INSTALL_HINT}") from None
    finally:
        torch.set_num_threads(threads)
    try:
        with warnings.catch_warnings():  # silero's own use of importlib.resources.path, deprecated in 3.11
            warnings.simplefilter("ignore", DeprecationWarning)
            model = load_silero_vad(sequence=True)
    except ImportError:  # onnxruntime, which the sequence model runs on
        raise ConfigError(f"voice activity detection needs onnxruntime: {INSTALL_HINT}") from None
    except TypeError:  # `sequence` is silero-vad 6.2.3's; older releases lack it
        raise ConfigError(f"the installed silero-vad is older than 6.2.3 (no sequence model): {INSTALL_HINT}") from None
    return model.session
