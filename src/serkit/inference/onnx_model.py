"""An exported model (`serkit export --onnx`) run by ONNX Runtime, for EmotionRecognizer.

    OnnxModel(path)(wavs [B, S] float32 16 kHz zero-padded, wav_lens [B] int64)
        -> (probabilities [B, C] float32, embeddings [B, E] float32)

Why: on a CPU, ONNX Runtime runs the same graph with less per-operator overhead than PyTorch eager and fuses
what the exporter left apart (benchmarks/inference.py measures both against transformers' pipeline). The
file says what a caller needs (export/onnx.py): the labels, the sample rate, and whether the graph is padding
invariant; one that is not (group-norm SSL models, data2vec-audio) is fed one unpadded utterance per call. A file
written by `serkit export --quantize int8` says so in its metadata (`quantization`); it runs the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import ConfigError

ONNX_SUFFIX = ".onnx"
# what `serkit export` writes and this runs (export/onnx.py imports these: inference is the lower layer)
INPUT_NAMES = ("wavs", "wav_lens")
OUTPUT_NAME = "probabilities"
EMBEDDING_NAME = "embedding"  # the classifier's input (EmotionRecognizer.embed on an exported model)
OUTPUT_NAMES = (OUTPUT_NAME, EMBEDDING_NAME)
SAMPLE_RATE = 16000
QUANTIZATION_KEY = "quantization"  # metadata of a quantized export ("int8"); absent: float32


def is_onnx_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ONNX_SUFFIX


class OnnxModel:
    """labels: the output order; padding_invariant: whether rows of different lengths may share a call."""

    def __init__(self, path: str | Path, threads: int | None = None):
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such ONNX file (write one with `serkit export MODEL --onnx {path.name}`)")
        try:
            self.session = onnx_session(path, threads=threads)
        except ConfigError:  # onnxruntime missing: its own message says what to install
            raise
        except Exception as error:  # noqa: BLE001  (onnxruntime raises its own types for unreadable files)
            raise ConfigError(f"{path}: ONNX Runtime cannot load it: {str(error).splitlines()[0]}") from None
        metadata = self.session.get_modelmeta().custom_metadata_map
        outputs = [output.name for output in self.session.get_outputs()]
        if "labels" not in metadata or OUTPUT_NAME not in outputs:
            raise ConfigError(f"{path}: not a serkit export (it lacks the 'labels' metadata or the "
                              f"'{OUTPUT_NAME}' output); write it with `serkit export MODEL --onnx FILE`")
        if EMBEDDING_NAME not in outputs:
            raise ConfigError(f"{path}: exported by an older serkit without the '{EMBEDDING_NAME}' output; "
                              "export the bundle again with `serkit export MODEL --onnx FILE`")
        if metadata.get("sample_rate") != str(SAMPLE_RATE):
            raise ConfigError(f"{path}: metadata 'sample_rate' is {metadata.get('sample_rate')!r}; expected "
                              f"'{SAMPLE_RATE}' (serkit exports take 16 kHz samples)")
        self.path = path
        self.labels: list[str] = _labels(metadata["labels"], path)
        width = next(o.shape for o in self.session.get_outputs() if o.name == OUTPUT_NAME)[-1]
        if isinstance(width, int) and width != len(self.labels):
            raise ConfigError(f"{path}: {len(self.labels)} labels in its metadata but {width} probabilities out")
        # a file that does not say is run one utterance per call: slower, never wrong
        self.padding_invariant = metadata.get("padding_invariant") == "true"
        self.quantization: str | None = metadata.get(QUANTIZATION_KEY)  # "int8", or None for float32

    def __call__(self, wavs: np.ndarray, wav_lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        wavs = np.ascontiguousarray(wavs, dtype=np.float32)
        wav_lens = np.asarray(wav_lens, dtype=np.int64)
        # padding would leak into the real frames of upstreams that are not padding invariant: each row alone, cut
        # to its own length
        calls = [(wavs, wav_lens)] if self.padding_invariant else [
            (wavs[i : i + 1, : int(n)], wav_lens[i : i + 1]) for i, n in enumerate(wav_lens)]
        rows = [self.session.run(list(OUTPUT_NAMES), {"wavs": w, "wav_lens": n}) for w, n in calls]
        return np.concatenate([p for p, _ in rows]), np.concatenate([e for _, e in rows])


def onnx_session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session (onnxruntime is the `export` extra). threads: its intra-op threads (None:
    ONNX Runtime's default, one per physical core)."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("onnxruntime is not installed: pip install 'serkit[export]'") from None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: its warnings about unused initialisers are noise here
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1  # the graph is one chain of operators: nothing to run side by side
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _labels(text: str, path: Path) -> list[str]:
    try:
        labels = json.loads(text)
    except json.JSONDecodeError:
        labels = None
    if not (isinstance(labels, list) and labels and all(isinstance(label, str) for label in labels)):
        raise ConfigError(f"{path}: metadata 'labels' is {text[:80]!r}; expected a JSON list of class names")
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        # two probabilities under one name: the rows would show one of them (or both as columns of one name)
        raise ConfigError(f"{path}: metadata 'labels' names {repeated} more than once ({labels}); each class needs "
                          "its own name (training refuses repeated labels too)")
    return labels
