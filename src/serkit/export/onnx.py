"""ONNX export of a model bundle: wavs [B, S] float32, wav_lens [B] int64 -> probabilities [B, C], embedding [B, E].

Batch and length axes are dynamic. Inputs are 16 kHz mono samples in [-1, 1], zero-padded to the longest
(padding is zeroed in the graph anyway); `wav_lens` gives each row's real samples. The file's metadata says
what a runtime needs: `labels` (JSON list, the order of the probabilities), `sample_rate` (16000),
`padding_invariant` ("true", or "false" for upstreams that must run one utterance per call, see
`Upstream.exportable`) and the serkit version.

Exporter: torch.onnx.export(dynamo=True), torch's default (torch.export + ONNX Script) and the one that works
for our modules: measured on torch 2.13 for fbank -> ECAPA and the tiny wav2vec2 / HuBERT / WavLM /
data2vec-audio models, ONNX Runtime gives the PyTorch probabilities within 1e-6. The TorchScript exporter
(dynamo=False) is tried only when the dynamo path fails: it writes ECAPA's dilated 'same' convolutions as
auto_pad=SAME_UPPER, which ONNX Runtime refuses with dilation, so its output must (and does) pass the same
check before it is kept. Every export is checked the same way: ONNX Runtime on a padded batch of different
lengths (one utterance for upstreams that are not padding invariant) against the PyTorch model; a graph traced
on longer inputs (Whisper: more than one 30 s window per row) is checked on that batch and on a short one.

`quantize="int8"` (`serkit export --quantize int8`): the checked float graph is quantized (export/quantize.py)
and the int8 file is what is written, with metadata `quantization`. Its check compares it with the float graph
on clips (export/check_clips.py: synthetic speech by default, the user's files or a labelled manifest with
`check_audio`): labels that agree, the largest probability difference, the speed-up, and the accuracy of both
when the clips are labelled. A float export given `check_audio` compares ONNX Runtime with PyTorch the same way.

The file is written and checked in a hidden folder beside the target and only then renamed into place, so an
export that fails, or is killed, leaves a previous file of that name as it was. An `opset` outside what torch
exports is refused before anything runs, and a graph that came out at another opset than the one asked for
(the dynamo exporter writes 18 when it cannot convert down, and says so only in a log) counts as a failure.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
# the file's contract (names, sample rate) and its runtime session live with the code that runs exports
from ..inference.onnx_model import INPUT_NAMES, OUTPUT_NAMES, QUANTIZATION_KEY, SAMPLE_RATE, OnnxModel, onnx_session
from ..inference.recognizer import EmotionRecognizer
from ..model import SERModel
from ..util.threads import torch_threads
from .check_clips import ClipComparison, compare_on_clips, load_check_clips
from .graph import ExportGraph
from .quantize import check_quantize, quantize_int8

logger = logging.getLogger(__name__)

CHECK_ATOL = 1e-4  # probabilities
# embeddings, relative to their largest value: unbounded, so compared relative to their scale (ONNX Runtime's
# kernels round differently from torch's, and the softmax then shrinks that for the probabilities)
CHECK_EMBEDDING_RTOL = 1e-3
# lengths (samples) of the example batch the graph is traced with and checked on: different lengths, so that
# the padded rows exercise the masks
EXAMPLE_LENS = (24000, 13100)
try:  # the opsets torch exports (its exporters' own range)
    from torch.onnx._constants import ONNX_MAX_OPSET as MAX_OPSET, ONNX_MIN_OPSET as MIN_OPSET
except ImportError:  # a private module: if it moves, the range of torch 2.13
    MIN_OPSET, MAX_OPSET = 7, 23


@dataclass
class ExportResult:
    path: Path
    exporter: str  # "dynamo" or "torchscript"
    opset: int
    padding_invariant: bool
    max_abs_diff: float  # ONNX Runtime (float graph) vs PyTorch on the check batches: probabilities
    embedding_rel_diff: float  # the same for the embedding, relative to its largest value
    quantization: str | None = None  # "int8": the file written is the quantized graph
    size_bytes: int = 0  # the file written (with its external weights, if any)
    float_size_bytes: int = 0  # the float graph's (the same as size_bytes unless quantized)
    clip_check: ClipComparison | None = None  # int8 vs float graph, or ONNX vs PyTorch with check_audio


def export_onnx(
    model: SERModel | str | Path, out_path: str | Path, labels: list[str] | None = None, opset: int | None = None,
    quantize: str | None = None, check_audio: Sequence[str] | None = None, threads: int | None = None,
) -> ExportResult:
    """Export a bundle (folder) or an SERModel (then `labels` are needed) to `out_path`, check it with ONNX
    Runtime, and return what was done. quantize: None (float32) or "int8"; check_audio: audio files, folders
    or one labelled manifest (.csv / .jsonl) to compare the written graph on (see export/check_clips.py);
    threads: CPU threads of that comparison, both sides (default: torch's, as `serkit predict`).
    ConfigError for models that cannot be exported (text branch), bad option combinations, or when no exporter
    produced a graph that matches PyTorch."""
    check_opset(opset)  # before a bundle load and an export that take a while
    check_quantize(quantize, opset)
    if threads is not None and not (isinstance(threads, int) and threads >= 1):
        raise ConfigError(f"threads is {threads!r}; expected a positive number of threads")
    if isinstance(model, (str, Path)):
        from ..bundle import load_bundle

        model, _, labels = load_bundle(model)
    if labels is None:
        raise ConfigError("export_onnx: labels are needed to export a model that is not loaded from a bundle")
    _check_installed()
    # read before the export (minutes for a big model), so that a wrong path or manifest fails at once
    clips = load_check_clips(check_audio, labels) if (check_audio or quantize) else None
    model = model.eval().cpu()
    graph = ExportGraph(model).eval()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    batches = check_batches(graph)
    metadata = {
        "labels": json.dumps(list(labels)),
        "sample_rate": str(SAMPLE_RATE),
        "padding_invariant": str(graph.padding_invariant).lower(),
        "serkit_version": _serkit_version(),
    }

    staging = _staging_folder(out_path)
    # the final name: external weights (past 2 GB) are found by it; a float graph that is then quantized
    # keeps that name in a sub-folder
    candidate = staging / out_path.name
    float_candidate = staging / "float" / out_path.name if quantize else candidate
    float_candidate.parent.mkdir(exist_ok=True)
    try:
        result = _export_checked(graph, model, batches, float_candidate, metadata, opset, out_path)
        result.float_size_bytes = _size_of(float_candidate)
        if quantize:
            try:
                quantize_int8(float_candidate, candidate, {**metadata, QUANTIZATION_KEY: quantize})
            except Exception as error:  # noqa: BLE001  (ONNX Runtime's quantizer raises its own types)
                raise ConfigError(f"{quantize} quantization failed ({out_path} was left as it was): "
                                  f"{type(error).__name__}: {error}") from error
            result.quantization = quantize
        if clips is not None:
            with torch_threads(threads) as used:  # ONNX Runtime gets as many as torch, as in `serkit predict`
                reference = (EmotionRecognizer(OnnxModel(float_candidate, threads=used), labels), "float32 ONNX"
                             ) if quantize else (EmotionRecognizer(model, labels), "PyTorch")
                result.clip_check = compare_on_clips(
                    *reference, EmotionRecognizer(OnnxModel(candidate, threads=used), labels),
                    f"{quantize} ONNX" if quantize else "ONNX", clips, used)
        result.size_bytes = _size_of(candidate)
        _move_into_place(candidate, out_path)
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _export_checked(graph: ExportGraph, model: SERModel, batches, path: Path, metadata: dict, opset: int | None,
                    out_path: Path) -> ExportResult:
    """The float graph at `path` by the first exporter whose file ONNX Runtime runs with PyTorch's outputs on
    every check batch; ConfigError listing each exporter's failure when none does."""
    failures = []
    for exporter in ("dynamo", "torchscript"):
        _remove(path)  # what the exporter before left
        try:
            with torch.no_grad(), _quiet_exporter():
                _EXPORTERS[exporter](graph, batches[0], path, metadata, opset)
            written = _opset_of(path)
            if opset is not None and written != opset:
                raise ConfigError(f"it wrote opset {written}, not the {opset} asked for")
            diffs = [check_onnx(path, model, *batch) for batch in batches]
        except Exception as error:  # noqa: BLE001  (any exporter failure: try the next, report all)
            failures.append(f"{exporter}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
            logger.warning("ONNX export with the %s exporter failed: %s", exporter, failures[-1])
            continue
        diff, embedding_diff = max(d for d, _ in diffs), max(e for _, e in diffs)
        if diff <= CHECK_ATOL and embedding_diff <= CHECK_EMBEDDING_RTOL:
            return ExportResult(out_path, exporter, written, graph.padding_invariant, diff, embedding_diff)
        failures.append(f"{exporter}: ONNX Runtime differs from PyTorch by {diff:.2e} in probabilities (at most "
                        f"{CHECK_ATOL}) and {embedding_diff:.2e} in embeddings (relative, at most "
                        f"{CHECK_EMBEDDING_RTOL})")
    raise ConfigError(f"ONNX export failed ({out_path} was left as it was): " + "; ".join(failures))


def check_opset(opset: int | None) -> None:
    """ConfigError for an opset torch's exporters do not write (None: the exporter's default)."""
    if opset is not None and not (isinstance(opset, int) and MIN_OPSET <= opset <= MAX_OPSET):
        raise ConfigError(f"opset {opset!r} is not one torch {torch.__version__} exports; expected {MIN_OPSET} to "
                          f"{MAX_OPSET}, or none for the exporter's default")


def check_batches(graph: ExportGraph) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(wavs [B, S], wav_lens [B])] of noise, B = 2 of different lengths (1 when padding is not allowed): the
    batch the graph is traced with first; when the graph needs longer inputs to trace (graph.trace_samples),
    a batch of the usual short lengths follows, so that both shapes are checked."""
    lens = EXAMPLE_LENS if graph.padding_invariant else EXAMPLE_LENS[:1]
    batches = [_noise_batch(lens, seed=0)]
    if graph.trace_samples > max(lens):
        batches.insert(0, _noise_batch((graph.trace_samples, *lens[1:]), seed=1))
    return batches


def _noise_batch(lens: Sequence[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    wavs = 0.1 * torch.randn(len(lens), max(lens), generator=generator)
    wav_lens = torch.tensor(lens, dtype=torch.long)
    return wavs * (torch.arange(wavs.shape[1])[None] < wav_lens[:, None]), wav_lens


def check_onnx(path: str | Path, model: SERModel, wavs: torch.Tensor, wav_lens: torch.Tensor) -> tuple[float, float]:
    """-> (max |ONNX Runtime - PyTorch| over one batch's probabilities, the same over its embeddings divided
    by their largest value when that is above 1: embeddings are not bounded like probabilities)."""
    session = onnx_session(path)
    probabilities, embedding = session.run(
        list(OUTPUT_NAMES), {"wavs": wavs.numpy().astype(np.float32), "wav_lens": wav_lens.numpy()})
    with torch.no_grad():
        expected_embedding = model.embed(wavs, wav_lens).float()
        expected = torch.softmax(model.classifier(expected_embedding).float(), dim=-1).numpy()
    expected_embedding = expected_embedding.numpy()
    scale = max(1.0, float(np.abs(expected_embedding).max()))
    return float(np.abs(probabilities - expected).max()), float(np.abs(embedding - expected_embedding).max()) / scale


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata an exported file carries (labels, sample_rate, padding_invariant, serkit_version, and
    quantization for a quantized file)."""
    return dict(onnx_session(path).get_modelmeta().custom_metadata_map)


def _export_dynamo(graph, example, out_path: Path, metadata: dict, opset: int | None) -> None:
    batch, samples = torch.export.Dim("batch"), torch.export.Dim("samples")
    program = torch.onnx.export(
        graph, example, input_names=list(INPUT_NAMES), opset_version=opset,
        dynamo=True, dynamic_shapes={"wavs": {0: batch, 1: samples}, "wav_lens": {0: batch}}, verbose=False,
    )
    _name_outputs(program.model.graph)
    program.model.metadata_props.update(metadata)
    program.save(out_path)  # one self-contained file, or weights beside it past protobuf's 2 GB


def _name_outputs(graph) -> None:
    """Name the outputs OUTPUT_NAMES. The exporter's own `output_names` renames them without looking: a value
    inside the graph that already has one of those names (Whisper's positional table comes out as an
    initializer named `embedding`) is then defined twice, and ONNX Runtime refuses the file. Such a value is
    renamed first."""
    outputs = list(graph.outputs)
    values = [*graph.initializers.values(), *(value for node in graph for value in node.outputs)]
    for value in values:
        if value is not None and value.name in OUTPUT_NAMES and all(value is not out for out in outputs):
            value.name = f"{value.name}_inner"
    for value, name in zip(outputs, OUTPUT_NAMES, strict=True):
        value.name = name


def _export_torchscript(graph, example, out_path: Path, metadata: dict, opset: int | None) -> None:
    import onnx

    torch.onnx.export(
        graph, example, str(out_path), input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
        opset_version=opset or 17, dynamo=False,
        dynamic_axes={"wavs": {0: "batch", 1: "samples"}, "wav_lens": {0: "batch"},
                      **{name: {0: "batch"} for name in OUTPUT_NAMES}},
    )
    proto = onnx.load(str(out_path))
    onnx.helper.set_model_props(proto, metadata)
    onnx.save(proto, str(out_path))


_EXPORTERS = {"dynamo": _export_dynamo, "torchscript": _export_torchscript}


@contextmanager
def _quiet_exporter():
    """Keep torch.onnx's chatter (torchvision not installed, deprecations inside torch) off the user's screen;
    real failures still raise."""
    # onnx_ir: "Attribute type is ambiguous because it is an empty sequence", about an attribute of torch's own
    # onnxscript: the version converter's traceback when it cannot reach an opset (checked after the export)
    quieted = [logging.getLogger(name) for name in ("torch.onnx", "onnx_ir", "onnxscript")]
    levels = [each.level for each in quieted]
    for each in quieted:
        each.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
            yield
    finally:
        for each, level in zip(quieted, levels):
            each.setLevel(level)


def _check_installed() -> None:
    import importlib.util

    missing = [name for name in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"ONNX export needs {', '.join(missing)}: pip install 'serkit[export]'")


def _opset_of(path: Path) -> int:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return next(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx"))


def _size_of(path: Path) -> int:
    """Bytes of an ONNX file and of its external weights, if any."""
    return sum(p.stat().st_size for p in (path, Path(f"{path}.data")) if p.exists())


def _remove(path: Path) -> None:
    for leftover in (path, Path(f"{path}.data")):
        if leftover.exists():
            os.remove(leftover)


def _staging_folder(out_path: Path) -> Path:
    """A new hidden folder beside `out_path` (same file system, so the final rename is atomic); a killed
    export's folder is removed first, as save_bundle does with a killed save's."""
    prefix = f".{out_path.name}.export-"
    for leftover in out_path.parent.glob(f"{prefix}*"):
        shutil.rmtree(leftover, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=out_path.parent, prefix=prefix))


def _move_into_place(candidate: Path, out_path: Path) -> None:
    """Rename a checked export (and its external weights, if any) onto `out_path`, after fsync: the file is
    never half there. A previous file's external weights that the new one does not use are removed."""
    data, old_data = Path(f"{candidate}.data"), Path(f"{out_path}.data")
    has_data = data.exists()
    for path in (data, candidate) if has_data else (candidate,):
        with open(path, "rb") as f:
            os.fsync(f.fileno())
    if has_data:
        os.replace(data, old_data)
    os.replace(candidate, out_path)
    if not has_data and old_data.exists():
        os.remove(old_data)  # the previous file's


def _serkit_version() -> str:
    from .. import __version__

    return __version__
