"""EmotionRecognizer: a trained model bundle as a Python API (predict, predict_batch, embed).

In the examples `bundle_dir` is a model bundle (what `serkit cv` writes to fold_K/model) and `wav_path` a
short audio file; the test suite runs them against an untrained bundle, so the labels it prints are arbitrary.

>>> rec = EmotionRecognizer.load(bundle_dir)
>>> rec.labels
['neu', 'hap', 'ang', 'sad']
>>> p = rec.predict(wav_path)
>>> p.label in rec.labels, round(sum(p.probabilities.values()), 5), p.duration, p.windows
(True, 1.0, 2.0, [])

Arrays at any rate, mono [S] or multi-channel [S, channels]:

>>> import numpy as np
>>> stereo = np.zeros((44100 * 3, 2), dtype=np.float32)
>>> rec.predict(stereo, sample_rate=44100).duration
3.0

Inputs longer than one window get a prediction per window (here 2 s windows every 1 s over 3 s audio):

>>> long = rec.predict(stereo, sample_rate=44100, window_seconds=2.0, hop_seconds=1.0)
>>> [(w.start, w.end) for w in long.windows]
[(0.0, 2.0), (1.0, 3.0)]

Several inputs go through the model in batches of similar length; results come back in input order:

>>> [q.source for q in rec.predict_batch([wav_path, stereo], sample_rate=44100)] == [wav_path, None]
True
>>> rec.embed(wav_path).shape  # the classifier's input
(64,)

A timeline: emotion per speech segment, the segments found by voice activity (`segments="vad"`, the `vad`
extra), read from a .rttm / .csv file, or given as (start, end[, speaker]) seconds:

>>> [(s.start, s.end, s.speaker) for s in rec.timeline(wav_path, segments=[(0.0, 0.8, "ann"), (1.0, 2.0)])]
[(0.0, 0.8, 'ann'), (1.0, 2.0, None)]
>>> t = rec.predict(wav_path, segments=[(0.0, 0.8), (1.0, 2.0)])  # a Timeline: the summary over the segments
>>> t.speech_seconds, len(t.segments)
(1.8, 2)
"""

from __future__ import annotations

from concurrent.futures import CancelledError
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..bundle import load_bundle
from ..data.audio import source_name
from ..data.batch import pad_waves
from ..data.sampler import DurationBatchSampler
from ..errors import ConfigError, SerkitError
from ..model import SERModel
from .inputs import AudioInput, AudioSource, open_source, read_span
from .onnx_model import OnnxModel, is_onnx_file
from .results import Prediction, PredictionFailure
from .segments import VadSettings, make_segmenter, plan_source
from .timeline import Segment, SpanPlan, Timeline
from .transcripts import missing_transcript
from .windows import DEFAULT_HOP_SECONDS, DEFAULT_WINDOW_SECONDS, check_windowing


def default_batch_seconds(device: torch.device) -> float:
    """Padded audio per batch when none is given: batches pay off on a GPU; on a CPU a 60 s batch pushes the
    convolutional front end's activations out of cache and runs slower per clip than ~10 s
    (benchmarks/inference.py)."""
    return 10.0 if device.type == "cpu" else 60.0


@dataclass
class _Item:
    """One input: its source, transcript and the pieces it is predicted in (filled in as batches run)."""

    source: AudioSource
    text: str | None
    plan: SpanPlan
    error: SerkitError | None = None


class EmotionRecognizer:
    """Predict emotions with a trained SERModel.

    window_seconds / hop_seconds: inputs longer than one window are predicted window by window (files are
    read one window at a time: memory stays flat however long the input). batch_seconds: the most padded
    audio (batch size x longest piece) the model sees at once (default: 10 s on a CPU, 60 s on a GPU). All
    three can be changed per call.
    needs_text: the model has a text branch, so every input needs its transcript (`text=`); a windowed
    input gives each window the whole transcript. Calls keep no per-call state on the instance.
    model: an SERModel (run by PyTorch on `device`) or an OnnxModel (an exported file run by ONNX Runtime on the
    CPU: same predictions, faster on a CPU, no text branch).
    """

    def __init__(
        self,
        model: SERModel | OnnxModel,
        labels: Sequence[str],
        device: str | torch.device = "cpu",
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        hop_seconds: float = DEFAULT_HOP_SECONDS,
        batch_seconds: float | None = None,
    ):
        self.device = parse_device(device)
        batch_seconds = default_batch_seconds(self.device) if batch_seconds is None else batch_seconds
        check_windowing(window_seconds, hop_seconds)
        _check_batch_seconds(batch_seconds)
        if isinstance(model, OnnxModel):
            if self.device.type != "cpu":
                raise ConfigError(f"{model.path}: an ONNX model runs on the CPU (ONNX Runtime); for device "
                                  f"{self.device} load the model bundle it was exported from")
            self.model = model
        else:
            usable_device(self.device)
            self.model = model.eval().to(self.device)
        self.labels: list[str] = list(labels)
        self.window_seconds = float(window_seconds)
        self.hop_seconds = float(hop_seconds)
        self.batch_seconds = float(batch_seconds)
        # an exported graph has no text branch (export refuses text upstreams)
        self.needs_text: bool = any(getattr(u, "modality", "audio") == "text" for u in getattr(model, "upstreams", ()))

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu", threads: int | None = None,
             **settings) -> "EmotionRecognizer":
        """A model bundle folder, or a `.onnx` file from `serkit export` (run by ONNX Runtime), from disk (never
        the network). threads: CPU threads for the model: ONNX Runtime's own (default: as many as torch uses),
        or for a bundle torch.set_num_threads, which holds for the whole process (default: left as it is).
        settings: window_seconds, hop_seconds, batch_seconds."""
        if threads is not None and not (isinstance(threads, int) and threads >= 1):
            raise ConfigError(f"threads is {threads!r}; expected a positive number of threads")
        if is_onnx_file(path):
            model = OnnxModel(path, threads=torch.get_num_threads() if threads is None else threads)
            return cls(model, model.labels, device=device, **settings)
        usable_device(device)  # before a model load that may take a while

        model, _, labels = load_bundle(path)
        if threads is not None:
            torch.set_num_threads(threads)
        return cls(model, labels, device=device, **settings)

    def predict(
        self, audio: AudioInput, sample_rate: int | None = None, text: str | None = None, **settings
    ) -> Prediction | Timeline:
        """One input: a path (or binary file object), or samples [S] / [S, channels] with their sample_rate.
        text: the transcript, required by models with a text branch. settings: as for the constructor, and
        segments= (as for `timeline`, then the result is a Timeline), vad= (VadSettings for segments='vad'),
        cancel= (a threading.Event: once set, the call raises concurrent.futures.CancelledError before its next
        batch; serve sets it when a request times out)."""
        result = self._run([audio], [sample_rate], [text], skip_errors=False, **settings)[0]
        return self._prediction(result)

    def predict_batch(
        self,
        inputs: Sequence[AudioInput],
        sample_rate: int | Sequence[int | None] | None = None,
        texts: Sequence[str | None] | None = None,
        skip_errors: bool = False,
        **settings,
    ) -> list[Prediction | Timeline | PredictionFailure]:
        """Several inputs, batched by length (all their windows together); results in input order.

        sample_rate: for array inputs, one for all or one per input. skip_errors: an input that fails gives a
        PredictionFailure in its place instead of raising (the others are still predicted). settings: as for
        `predict` (with segments=, each result is a Timeline)."""
        inputs = list(inputs)
        rates = list(sample_rate) if isinstance(sample_rate, (list, tuple)) else [sample_rate] * len(inputs)
        texts = list(texts) if texts is not None else [None] * len(inputs)
        if len(rates) != len(inputs) or len(texts) != len(inputs):
            raise ConfigError(
                f"predict_batch got {len(inputs)} inputs but {len(rates)} sample rates and {len(texts)} texts"
            )
        items = self._run(inputs, rates, texts, skip_errors=skip_errors, **settings)
        return [self._prediction(item) if isinstance(item, _Item) else item for item in items]

    def timeline(self, audio: AudioInput, sample_rate: int | None = None, text: str | None = None,
                 segments="vad", vad: VadSettings | None = None, **settings) -> list[Segment]:
        """Emotion per speech segment, in time order. segments: 'vad' (Silero VAD, shaped by `vad`), a .rttm or
        .csv file of segments (segment_files.py), or a list of (start, end[, speaker]) seconds. A segment longer
        than window_seconds is predicted window by window (duration-weighted). The whole input's summary comes
        with `predict(audio, segments=...)`, a Timeline."""
        return self.predict(audio, sample_rate, text, segments=segments, vad=vad, **settings).segments

    def embed(self, audio: AudioInput, sample_rate: int | None = None, text: str | None = None,
              **settings) -> np.ndarray:
        """-> embedding [E] (float32): the classifier's input; for a windowed input the duration-weighted mean
        of the window embeddings."""
        return self._run([audio], [sample_rate], [text], skip_errors=False, **settings)[0].plan.embedding()

    # -- the batch loop ---------------------------------------------------------------------------------

    def _run(self, inputs, rates, texts, skip_errors: bool, window_seconds: float | None = None,
             hop_seconds: float | None = None, batch_seconds: float | None = None, segments=None,
             vad: VadSettings | None = None, cancel=None) -> list[_Item | PredictionFailure]:
        # segments=None or 'windows': today's fixed windows; anything else: a timeline over those segments
        segmenter = None if segments is None or segments == "windows" else make_segmenter(segments, vad)
        window = self.window_seconds if window_seconds is None else float(window_seconds)
        hop = self.hop_seconds if hop_seconds is None else float(hop_seconds)
        budget = self.batch_seconds if batch_seconds is None else float(batch_seconds)
        check_windowing(window, hop)
        _check_batch_seconds(budget)

        items: list[_Item | SerkitError] = []
        for audio, rate, text in zip(inputs, rates, texts):
            try:
                source = open_source(audio, rate)
                if self.needs_text and text is None:
                    raise missing_transcript(source.name)
                items.append(_Item(source, text, plan_source(source, window, hop, segmenter)))
            except SerkitError as error:
                if not skip_errors:
                    raise
                items.append(error)

        def read(item: _Item, k: int) -> np.ndarray | None:
            try:
                return read_span(item.source, *item.plan.spans[k]) if item.error is None else None
            except SerkitError as error:
                if not skip_errors:
                    raise
                item.error = error

        self.predict_spans([item for item in items if isinstance(item, _Item)], read, budget, cancel)
        results: list[_Item | PredictionFailure] = []
        for audio, item in zip(inputs, items):
            error = item if isinstance(item, SerkitError) else item.error
            results.append(item if error is None else PredictionFailure(source_name(audio, default=None), str(error)))
        return results

    def predict_spans(self, inputs: Sequence, read: Callable[[object, int], np.ndarray | None],
                      batch_seconds: float | None = None, cancel=None) -> None:
        """Every span of every input through the model; the batch loop of this class and of the Ray engine's
        actors (inference/ray_batch.py). inputs: objects with `plan` (SpanPlan, whose probabilities[k] and
        embeddings[k] are filled in here), `text` and `error`; read(input, k) -> span k's samples [S] float32
        mono 16 kHz, or None to leave it out (its input failed). Pieces are sorted by length and cut by padded
        duration (batch_seconds): the training sampler's rule, without shuffling."""
        pieces = [(one, k) for one in inputs for k in range(len(one.plan.spans))]
        durations = [seconds for one in inputs for seconds in one.plan.seconds()]
        budget = self.batch_seconds if batch_seconds is None else batch_seconds
        for batch in DurationBatchSampler(durations, budget, shuffle=False):
            if cancel is not None and cancel.is_set():  # a thread cannot be killed: it is asked to stop
                raise CancelledError("prediction cancelled by its caller")
            chosen = [(one, k, samples) for one, k in (pieces[j] for j in batch)
                      if (samples := read(one, k)) is not None]
            # a later span of an input may have failed after an earlier one was read into this batch
            chosen = [(one, k, samples) for one, k, samples in chosen if one.error is None]
            if not chosen:
                continue
            wavs, wav_lens = pad_waves([torch.from_numpy(samples) for _, _, samples in chosen])
            texts = [one.text for one, _, _ in chosen] if self.needs_text else None
            probabilities, embeddings = self.forward_batch(wavs, wav_lens, texts)
            for row, (one, k, _) in enumerate(chosen):
                one.plan.probabilities[k], one.plan.embeddings[k] = probabilities[row], embeddings[row]

    def forward_batch(self, wavs: torch.Tensor, wav_lens: torch.Tensor, texts: list[str] | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """wavs [B, S] zero-padded, decoded at the model's rate, wav_lens [B] -> (probabilities [B, C],
        embeddings [B, E]), float32 numpy: the model call every prediction goes through (bundle or ONNX)."""
        if isinstance(self.model, OnnxModel):
            return self.model(wavs.numpy(), wav_lens.numpy())
        with torch.inference_mode():
            embeddings = self.model.embed(wavs.to(self.device), wav_lens.to(self.device), texts)
            probabilities = torch.softmax(self.model.classifier(embeddings).float(), dim=-1)
        return probabilities.cpu().numpy(), embeddings.float().cpu().numpy()

    def _prediction(self, item: _Item) -> Prediction | Timeline:
        return item.plan.result(self.labels, item.source.duration, item.source.name)


def parse_device(device: str | torch.device) -> torch.device:
    """torch.device(device); a name torch does not know ('bogus') is a ConfigError naming it."""
    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError) as error:
        raise ConfigError(f"device '{device}' is not a torch device ({error}); expected e.g. cpu, cuda, cuda:1, "
                          "mps") from None


def usable_device(device: str | torch.device) -> torch.device:
    """parse_device(device), checked by making an empty tensor there: a device this torch build or machine
    lacks ('cuda' on a CPU-only build, 'cuda:3' with one GPU) is a ConfigError naming it, not an assertion from
    deep inside torch."""
    parsed = parse_device(device)
    if parsed.type == "meta":
        raise ConfigError("device 'meta' holds shapes, not values: it cannot run a model; use cpu or a GPU")
    try:
        torch.empty(0, device=parsed)
    except Exception as error:  # noqa: BLE001  (AssertionError "Torch not compiled with CUDA enabled", ...)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"device '{device}' cannot be used on this machine ({reason}); torch "
                          f"{torch.__version__} sees {_devices_here()}") from None
    return parsed


def _devices_here() -> str:
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return "the CPU only" if gpus == 0 else f"the CPU and {gpus} CUDA device(s) (cuda:0 .. cuda:{gpus - 1})"


def _check_batch_seconds(batch_seconds: float) -> None:
    if not batch_seconds > 0:
        raise ConfigError(f"batch_seconds is {batch_seconds}; expected a positive number of seconds of padded audio")
