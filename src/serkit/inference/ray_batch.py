"""Batch inference over an archive on Ray Data: `serkit predict MODEL INPUT --engine ray --out results.parquet`.

Two stages, streamed (Ray Data keeps a bounded number of batches in flight, so neither the driver nor the
object store holds the archive):

    (id, path) blocks of --ray-batch-size files                       ray_inputs.archive_inputs
      -> decode: open, segment (windows, VAD or a segments file),     CPU tasks, one block each:
         read each piece and conform it to 16 kHz mono                decode_batch
      -> each file's plan and pieces, as one object (_File)           Ray carries it pickled
      -> model: batch the pieces by padded duration, run the model,   an actor pool: ModelStage
         combine pieces into the file's rows, write them as one part  (ray_parts.write_part)
      -> the driver counts the files each part held                   predict_archive

The decode stage is the local engine's own code (inputs.FileSource / read_span, windows.plan_spans, the
segmenters of segments.py), and the model stage runs EmotionRecognizer's own forward on the same pieces with
the same batching rule (DurationBatchSampler over the pieces' durations), so a file gets the labels and
probabilities `serkit predict` gives it (tests/inference/test_ray_batch.py checks them to 1e-5).

Resources. With --device cuda each actor takes --ray-gpus GPUs (default 1: one actor per GPU) and decoding
runs in separate CPU tasks, so the GPUs never wait on decoders. On CPUs an actor takes --threads CPUs
(default 1) and decoding asks for as many: Ray then fuses the two stages, and each actor decodes the batches
it predicts (no copy of the audio through the object store, and no CPU kept idle for a decoder).

Errors. A file that cannot be read, decoded or segmented is a row with its error (the local engine's
--skip-errors), never a failed job. A problem with the model, the options or the output folder stops the job
(the CLI checks the model before Ray starts; an actor that cannot load it, on a machine without the model or
the device, stops the job with serkit's own error and that machine's name).

The output folder, resume and why a killed job leaves only whole parts: ray_parts.py.
"""

from __future__ import annotations

import logging
import math
import os
import re
import socket
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import ConfigError, SerkitError
from ..util.progress import CountLines
from .output import prediction_rows, printable
from .ray_inputs import ArchiveInputs
from .ray_parts import OutputFolder, probability_columns, write_part
from .results import Prediction, PredictionFailure
from .segments import VadSettings
from .timeline import SpanPlan, Timeline
from .transcripts import Transcripts, missing_transcript
from .windows import DEFAULT_HOP_SECONDS, DEFAULT_WINDOW_SECONDS

INSTALL_HINT = "pip install 'serkit[ray]'"
DEFAULT_BATCH_FILES = 64


def import_ray():
    """The ray module, with Ray Data; ConfigError saying how to install it when it is missing."""
    try:
        import ray
        import ray.data  # the `ray` package alone lacks Data's dependencies
    except ImportError as error:
        raise ConfigError(f"--engine ray needs Ray Data, which is not installed here ({error}); install it with "
                          f"{INSTALL_HINT}") from None
    return ray


@dataclass(frozen=True)
class ArchiveJob:
    """What the rows depend on, sent to every worker (so: small and picklable).

    model, out: made absolute here (workers on other machines do not share the driver's working folder); cwd:
    the driver's, where relative input paths are found (rows and errors show them as given, as the local
    engine does). segments: "windows", "vad" (shaped by `vad`), or a segments file already read
    (segment_files.SegmentTable: the workers need not see the file). transcripts: for a model with a text
    branch (None: sidecar files)."""

    model: str
    out: str
    labels: tuple[str, ...]
    cwd: str = field(default_factory=os.getcwd)
    device: str = "cpu"
    threads: int | None = None
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    hop_seconds: float = DEFAULT_HOP_SECONDS
    batch_seconds: float | None = None
    segments: object = "windows"
    vad: VadSettings | None = None
    embeddings: bool = False
    needs_text: bool = False
    transcripts: Transcripts | None = None

    def __post_init__(self):
        for name in ("model", "out"):  # frozen: set once, here
            object.__setattr__(self, name, os.path.normpath(os.path.join(self.cwd, os.fspath(getattr(self, name)))))

    def record(self) -> dict:
        """The run record (ray_parts): what a restart into the same folder must share with this run, every key
        of it (anything that changes the rows)."""
        segments = self.segments if isinstance(self.segments, str) else os.path.abspath(self.segments.path)
        return {"model": self.model, "labels": list(self.labels), "segments": segments,
                "vad": asdict(self.vad) if self.vad is not None else None,
                "window_seconds": self.window_seconds, "hop_seconds": self.hop_seconds,
                "embeddings": self.embeddings}


@dataclass(frozen=True)
class RayOptions:
    """How the job is spread. address: the cluster (None: RAY_ADDRESS, else a new local Ray on this machine;
    'auto': the cluster this machine joined with `ray start`). actors: model actors (None: one per GPU with
    cuda, one per --threads CPUs otherwise). batch_files: files per model call and per part. gpus_per_actor:
    with cuda (fractions share a GPU). decode_cpus: CPUs per decode task (None: 1 with cuda, the actors' CPUs
    otherwise, which fuses decoding into the actors)."""

    address: str | None = None
    actors: int | None = None
    batch_files: int = DEFAULT_BATCH_FILES
    gpus_per_actor: float = 1.0
    decode_cpus: float | None = None

    def __post_init__(self):
        checks = {"--ray-actors": (self.actors, self.actors is None or self.actors >= 1, "1 or more"),
                  "--ray-batch-size": (self.batch_files, self.batch_files >= 1, "files per batch, 1 or more"),
                  "--ray-gpus": (self.gpus_per_actor, 0 < self.gpus_per_actor <= 8, "GPUs per actor, in (0, 8]"),
                  "--ray-decode-cpus": (self.decode_cpus, self.decode_cpus is None or 0 < self.decode_cpus <= 64,
                                        "CPUs per decode task, in (0, 64]")}
        for option, (value, ok, expected) in checks.items():
            if not ok:
                raise ConfigError(f"{option} is {value}; expected {expected}")


@dataclass
class ArchiveSummary:
    """What a run did: files predicted (failed: those among them that are error rows), files skipped because
    --out already held them, parts in the folder at the end, and ids found in two parts (see ray_parts)."""

    total: int
    already_done: int
    predicted: int = 0
    failed: int = 0
    parts: int = 0
    repeated: list[str] = field(default_factory=list)


# -- the driver ------------------------------------------------------------------------------------------------

def predict_archive(job: ArchiveJob, inputs: ArchiveInputs, options: RayOptions = RayOptions(),
                    progress: bool = True) -> ArchiveSummary:
    """Predict every input whose id is not yet in job.out; rows go to parts there as batches finish."""
    ray = import_ray()
    folder = OutputFolder.open(job.out, job.record())
    try:
        done, _ = folder.written_ids()
        todo = [{"id": file_id, "path": path} for file_id, path in zip(inputs.ids, inputs.paths)
                if printable(file_id) not in done]
        summary = ArchiveSummary(total=len(inputs), already_done=len(inputs) - len(todo))
        if todo:
            started_here = _connect(ray, options.address)
            try:
                _drive(_pipeline(ray, job, options, todo), summary, progress)
            except Exception as error:  # Ray wraps what a worker raised: give the user serkit's own message
                cause = _serkit_cause(error)
                if cause is not None:
                    raise cause from None
                raise
            finally:
                if started_here:
                    ray.shutdown()
        _, summary.repeated = folder.written_ids()
        summary.parts = len(folder.parts())
        return summary
    finally:
        folder.close()


def _connect(ray, address: str | None) -> bool:
    """Join or start Ray; True when this call started it (then it is shut down at the end). address None:
    $RAY_ADDRESS (as `ray job submit` sets it), else a new Ray on this machine; never Ray's guess of a cluster
    started here earlier, which may be long gone. 'auto': the cluster this machine joined with `ray start`. A Ray
    already initialised in this process (a notebook, the tests) is used as it is."""
    if ray.is_initialized():
        return False
    if address is None and not os.environ.get("RAY_ADDRESS"):
        address = "local"
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
    except ConnectionError as error:
        reason = str(error).strip().splitlines()[-1]
        hint = ("; the cluster wants Ray's token: set RAY_AUTH_MODE=token, with the head's token in ~/.ray/auth_token "
                "or RAY_AUTH_TOKEN" if "auth" in _chain_text(error).lower() else
                "; start one with `ray start --head` and pass the address it prints")
        raise ConfigError(f"--address {address or os.environ.get('RAY_ADDRESS')}: cannot join the Ray cluster "
                          f"({reason}){hint}") from None
    return True


def _chain_text(error: BaseException) -> str:
    """The messages of an exception and of those it was raised from."""
    texts = []
    while error is not None and len(texts) < 10:
        texts.append(str(error))
        error = error.__cause__ or error.__context__
    return " ".join(texts)


def _pipeline(ray, job: ArchiveJob, options: RayOptions, files: list[dict]):
    """files: {"id", "path"} each -> the dataset of the model stage's per-file summaries."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # our own progress lines (util.progress), as every serkit command
    # a decoded file crosses to the model stage as one pickled object (_File): say so, and Ray does not warn
    context.enable_fallback_to_arrow_object_ext_type = True
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # no "starting execution" lines per dataset
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # nor "progress bars disabled"
    step = options.batch_files
    blocks = math.ceil(len(files) / step)
    actors, actor_resources, decode_cpus = _resources(ray, job, options, blocks)
    # One block per batch of files (at most `step` files each): a block is what a decode task takes, so this is
    # the job's parallelism, and a model batch (and so a part) never mixes two blocks' files. from_items builds
    # the blocks here; from_arrow would start a Ray task per block just to read back its schema.
    dataset = ray.data.from_items(files, override_num_blocks=blocks)
    dataset = dataset.map_batches(decode_batch, fn_kwargs={"job": job}, batch_size=None, batch_format="numpy",
                                  num_cpus=decode_cpus)
    return dataset.map_batches(ModelStage, fn_constructor_kwargs={"job": job}, batch_size=step,
                               batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
                               **actor_resources)


def _resources(ray, job: ArchiveJob, options: RayOptions, blocks: int) -> tuple[int, dict, float]:
    """-> (actors, each actor's resources, CPUs per decode task) for the cluster Ray sees now. Never more actors
    than blocks (an actor without a batch would load the model for nothing), and by default never so many that
    no CPU is left to decode (the job would wait forever); explicit counts that leave none get a warning."""
    cluster = ray.cluster_resources()
    cpus, gpus = cluster.get("CPU", 0.0), cluster.get("GPU", 0.0)
    if job.device == "cuda":
        if gpus == 0:
            raise ConfigError(f"--device cuda, but the Ray cluster has no GPU (it has {cpus:g} CPUs); join GPU "
                              "machines to it (`ray start --address ...` on each), or use --device cpu")
        # Ray Data holds one CPU per GPU actor (for the CPU side of its work); decoding needs CPUs beside those
        actor_cpus, decode_cpus, resources = 1.0, options.decode_cpus or 1.0, {"num_gpus": options.gpus_per_actor}
        fused = False
        fitting = gpus / options.gpus_per_actor  # actors the GPUs hold
    else:
        actor_cpus = float(job.threads or 1)
        decode_cpus = options.decode_cpus or actor_cpus
        fused = decode_cpus == actor_cpus  # Ray runs both stages in the actors: no CPU to set aside for decoding
        fitting = (cpus - (0.0 if fused else decode_cpus)) / actor_cpus  # actors that leave a decoder its CPUs
        resources = {"num_cpus": actor_cpus}
    actors = min(blocks, options.actors or max(1, math.floor(fitting)))
    left = cpus - actors * actor_cpus
    if left < 0 or (not fused and left < decode_cpus):
        print(f"serkit predict: {actors} actors hold {actors * actor_cpus:g} of the Ray cluster's {cpus:g} CPUs, "
              f"leaving {max(left, 0):g} for decoding ({decode_cpus:g} per task): the job waits until machines "
              "join; use fewer --ray-actors, or a smaller --ray-decode-cpus", file=sys.stderr)
    return actors, resources, decode_cpus


def _drive(dataset, summary: ArchiveSummary, progress: bool) -> None:
    """Pull the model stage's per-file summaries (the parts are written by the actors) and count them."""
    lines = CountLines("serkit predict", summary.total - summary.already_done, enabled=progress)
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        summary.predicted += len(batch["failed"])
        summary.failed += int(np.sum(batch["failed"]))
        lines.update(summary.predicted, f", {summary.failed} failed" if summary.failed else "")


def _serkit_cause(error: BaseException) -> SerkitError | None:
    """The SerkitError behind a Ray exception, if any: the object itself where Ray keeps it (as `cause`, or in
    the exception chain of a failed task), else rebuilt from its text (an actor that failed in its constructor
    reaches the driver as ActorDiedError, which holds only the worker's traceback as text)."""
    from .. import errors

    seen = set()
    cursor = error
    while cursor is not None and id(cursor) not in seen:
        seen.add(id(cursor))
        if isinstance(cursor, SerkitError) and type(cursor).__module__.startswith("serkit"):
            return cursor
        cursor = getattr(cursor, "cause", None) or cursor.__cause__ or cursor.__context__
    found = re.findall(r"^serkit\.errors\.(\w+): (.+)$", _chain_text(error), flags=re.MULTILINE)
    kind = getattr(errors, found[-1][0], None) if found else None
    if isinstance(kind, type) and issubclass(kind, SerkitError):
        return kind(found[-1][1])
    return None


# -- stage 1: decode (CPU) ---------------------------------------------------------------------------------

@dataclass
class _File:
    """One file as the decode stage hands it to the model stage (Ray carries it whole, pickled: no columns to
    pack and parse): its plan (native-rate spans, segments and which segment each span belongs to) and pieces
    [S_k] float32 16 kHz mono, one per span; or the error that stopped it, and nothing else."""

    id: str
    path: str
    error: str | None = None
    text: str | None = None
    duration: float = 0.0
    plan: SpanPlan | None = None
    pieces: list[np.ndarray] = field(default_factory=list)

    def result(self, labels: Sequence[str]) -> Prediction | Timeline | PredictionFailure:
        """Combined as EmotionRecognizer combines its pieces (SpanPlan.result)."""
        if self.error is not None:
            return PredictionFailure(self.path, self.error)
        return self.plan.result(labels, self.duration, self.path)


def decode_batch(batch: dict[str, np.ndarray], job: ArchiveJob) -> dict[str, np.ndarray]:
    """Files [N] (id, path) -> `file` [N]: each a _File, read and planned, or failed."""
    from .segments import make_segmenter

    # "vad" builds a VadSegmenter on this worker (vad.load_vad keeps one Silero model per process)
    segmenter = None if job.segments == "windows" else make_segmenter(job.segments, job.vad)
    files = [_decode_file(str(file_id), str(path), job, segmenter) for file_id, path in zip(batch["id"], batch["path"])]
    return {"file": np.array(files, dtype=object)}


def _decode_file(file_id: str, path: str, job: ArchiveJob, segmenter) -> _File:
    from ..data.audio import audio_info
    from .inputs import FileSource, read_span
    from .segments import plan_source

    try:
        location = os.path.join(job.cwd, path)  # `path` itself when it is absolute
        source = FileSource(location, audio_info(location, path), path)  # named as given, as locally
        text = (job.transcripts or Transcripts()).text_for(location) if job.needs_text else None
        if job.needs_text and text is None:
            raise missing_transcript(path)
        plan = plan_source(source, job.window_seconds, job.hop_seconds, segmenter)
        pieces = [read_span(source, first, stop) for first, stop in plan.spans]
    except SerkitError as error:  # names the file, as the local engine's error rows do
        return _File(file_id, path, str(error))
    except Exception as error:  # noqa: BLE001  one odd file must not end a job over a million
        return _File(file_id, path, f"{path}: {type(error).__name__}: {error}")
    return _File(file_id, path, None, text, source.duration, plan, pieces)


# -- stage 2: model (actors) -----------------------------------------------------------------------------

class ModelStage:
    """A Ray Data actor: loads the model once, then per batch of decoded files predicts, writes one part, and
    returns per file whether it failed (all the driver counts)."""

    def __init__(self, job: ArchiveJob):
        from ..util.onednn import cap_primitive_cache
        from .recognizer import EmotionRecognizer

        cap_primitive_cache()  # an actor's own process: files of every length (util/onednn.py)
        self.job = job
        try:
            # one thread unless told: Ray counts an actor's CPUs (one), torch would take every core of the machine
            self.recognizer = EmotionRecognizer.load(job.model, device=job.device, threads=job.threads or 1,
                                                     window_seconds=job.window_seconds, hop_seconds=job.hop_seconds,
                                                     batch_seconds=job.batch_seconds)
        except SerkitError as error:  # on a cluster: which machine lacks the model, or the device
            raise type(error)(f"{error} (in a model actor on {socket.gethostname()})") from None
        self.record = job.record()
        self.class_columns = probability_columns(self.record)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        files: list[_File] = list(batch["file"])
        # every span of every file through the model, batched as EmotionRecognizer batches them
        self.recognizer.predict_spans([file for file in files if file.error is None], lambda file, k: file.pieces[k])
        write_part(self.job.out, [row for file in files for row in self._rows(file)], self.record)
        return {"failed": np.array([file.error is not None for file in files], dtype=bool)}

    def _rows(self, file: _File) -> list[dict]:
        """The file's rows as the local engine writes them (output.prediction_rows), keyed by part column; with
        --embeddings each row's embedding (SpanPlan.row_embeddings)."""
        rows = prediction_rows(file.result(self.job.labels))
        if self.job.embeddings:
            embeddings = [None] if file.error is not None else file.plan.row_embeddings()
            for row, embedding in zip(rows, embeddings):
                row["embedding"] = None if embedding is None else embedding.tolist()
        for row in rows:
            row["id"] = printable(file.id)
            row["path"] = row.pop("file")
            for label, column in zip(self.job.labels, self.class_columns):
                row[column] = (row.get("probabilities") or {}).get(label)
        return rows
