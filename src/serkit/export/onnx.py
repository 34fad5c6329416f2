"""ONNX export of a model bundle: wavs [B, S] float32, wav_lens [B] int64 -> probabilities [B, C], embedding [B, E].

Batch and length axes are dynamic. Inputs are 16 kHz mono samples in [-1, 1], zero-padded to the longest
(padding is zeroed in the graph anyway); `wav_lens` gives each row's real samples. The file's metadata says
what a runtime needs: `labels` (JSON list, the order of the probabilities), `sample_rate` (16000),
`padding_invariant` ("true", or "false" for upstreams that must run one utterance per call, see
export/upstreams.py) and the serkit version.

Exporter: torch.onnx.export(dynamo=True), torch's default (torch.export + ONNX Script) and the one that works
for our modules: measured on torch 2.13 for fbank -> ECAPA and the tiny wav2vec2 / HuBERT / WavLM /
data2vec-audio models, ONNX Runtime gives the PyTorch probabilities within 1e-6. The TorchScript exporter
(dynamo=False) is tried only when the dynamo path fails: it writes ECAPA's dilated 'same' convolutions as
auto_pad=SAME_UPPER, which ONNX Runtime refuses with dilation, so its output must (and does) pass the same
check before it is kept. Every export is checked the same way: ONNX Runtime on a padded batch of different
lengths (one utterance for upstreams that are not padding invariant) against the PyTorch model.

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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
# the file's contract (names, sample rate) and its runtime session live with the code that runs exports
from ..inference.onnx_model import INPUT_NAMES, OUTPUT_NAMES, SAMPLE_RATE, onnx_session
from ..model import SERModel
from .graph import ExportGraph

logger = logging.getLogger(__name__)

CHECK_ATOL = 1e-4  # probabilities
# embeddings, relative to their largest value: unbounded, and the torch filterbank twin differs from
# kaldi-native-fbank by float rounding that the classifier's softmax then shrinks
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
    max_abs_diff: float  # ONNX Runtime vs PyTorch on the check batch: probabilities
    embedding_rel_diff: float  # the same for the embedding, relative to its largest value


def export_onnx(
    model: SERModel | str | Path, out_path: str | Path, labels: list[str] | None = None, opset: int | None = None
) -> ExportResult:
    """Export a bundle (folder) or an SERModel (then `labels` are needed) to `out_path`, check it with ONNX
    Runtime, and return what was done. ConfigError for models that cannot be exported (text branch, Whisper)
    or when no exporter produced a graph that matches PyTorch."""
    check_opset(opset)  # before a bundle load and an export that take a while
    if isinstance(model, (str, Path)):
        from ..bundle import load_bundle

        model, _, labels = load_bundle(model)
    if labels is None:
        raise ConfigError("export_onnx: labels are needed to export a model that is not loaded from a bundle")
    _check_installed()
    model = model.eval().cpu()
    graph = ExportGraph(model).eval()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    example = example_batch(graph.padding_invariant)
    metadata = {
        "labels": json.dumps(list(labels)),
        "sample_rate": str(SAMPLE_RATE),
        "padding_invariant": str(graph.padding_invariant).lower(),
        "serkit_version": _serkit_version(),
    }

    staging = _staging_folder(out_path)
    candidate = staging / out_path.name  # the final name: external weights (past 2 GB) are found by it
    failures = []
    try:
        for exporter in ("dynamo", "torchscript"):
            _remove(candidate)  # what the exporter before left
            try:
                with torch.no_grad(), _quiet_exporter():
                    _EXPORTERS[exporter](graph, example, candidate, metadata, opset)
                written = _opset_of(candidate)
                if opset is not None and written != opset:
                    raise ConfigError(f"it wrote opset {written}, not the {opset} asked for")
                diff, embedding_diff = check_onnx(candidate, model, *example)
            except Exception as error:  # noqa: BLE001  (any exporter failure: try the next, report all)
                failures.append(f"{exporter}: {type(error).__name__}: "
                                f"{str(error).splitlines()[0] if str(error) else ''}")
                logger.warning("ONNX export with the %s exporter failed: %s", exporter, failures[-1])
                continue
            if diff <= CHECK_ATOL and embedding_diff <= CHECK_EMBEDDING_RTOL:
                _move_into_place(candidate, out_path)
                return ExportResult(out_path, exporter, written, graph.padding_invariant, diff, embedding_diff)
            failures.append(f"{exporter}: ONNX Runtime differs from PyTorch by {diff:.2e} in probabilities (at "
                            f"most {CHECK_ATOL}) and {embedding_diff:.2e} in embeddings (relative, at most "
                            f"{CHECK_EMBEDDING_RTOL})")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    raise ConfigError(f"ONNX export failed ({out_path} was left as it was): " + "; ".join(failures))


def check_opset(opset: int | None) -> None:
    """ConfigError for an opset torch's exporters do not write (None: the exporter's default)."""
    if opset is not None and not (isinstance(opset, int) and MIN_OPSET <= opset <= MAX_OPSET):
        raise ConfigError(f"opset {opset!r} is not one torch {torch.__version__} exports; expected {MIN_OPSET} to "
                          f"{MAX_OPSET}, or none for the exporter's default")


def example_batch(padding_invariant: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(wavs [B, S], wav_lens [B]): noise, B = 2 of different lengths (1 when padding is not allowed)."""
    lens = EXAMPLE_LENS if padding_invariant else EXAMPLE_LENS[:1]
    generator = torch.Generator().manual_seed(0)
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
    """The metadata an exported file carries (labels, sample_rate, padding_invariant, serkit_version)."""
    return dict(onnx_session(path).get_modelmeta().custom_metadata_map)


def _export_dynamo(graph, example, out_path: Path, metadata: dict, opset: int | None) -> None:
    batch, samples = torch.export.Dim("batch"), torch.export.Dim("samples")
    program = torch.onnx.export(
        graph, example, input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES), opset_version=opset,
        dynamo=True, dynamic_shapes={"wavs": {0: batch, 1: samples}, "wav_lens": {0: batch}}, verbose=False,
    )
    program.model.metadata_props.update(metadata)
    program.save(out_path)  # one self-contained file, or weights beside it past protobuf's 2 GB


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
