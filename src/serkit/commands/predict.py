"""`serkit predict MODEL PATH...`: emotion predictions for audio files, one row per file (and per window, or per
speech segment with --segments). `--engine ray` runs the same predictions over an archive on a Ray cluster
and writes them to a folder of Parquet parts (inference/ray_batch.py)."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, TextIO

from .registry import command
from ..errors import ConfigError
from ..util.atomic import atomic_path

# --option -> (VadSettings field, which is also its argparse dest; help): the field's own check gives the limits
VAD_OPTIONS = {
    "--vad-threshold": ("threshold", "speech probability where speech starts (default: 0.5)"),
    "--min-speech": ("min_speech_seconds", "drop speech shorter than this, in seconds (default: 0.25)"),
    "--max-pause": ("max_pause_seconds", "bridge pauses shorter than this, in seconds (default: 0.5)"),
    "--max-segment": ("max_segment_seconds", ("cut segments longer than this at their quietest point, in seconds "
                                              "(default: 10)")),
    "--vad-pad": ("pad_seconds", "widen segments by this on each side, in seconds (default: 0.05)"),
}
# the options only --engine ray takes
RAY_OPTIONS = ("--address", "--ray-actors", "--ray-batch-size", "--ray-gpus", "--ray-decode-cpus", "--embeddings")


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model bundle folder (e.g. runs/<name>/fold_1/model), or a .onnx file from "
                                 "`serkit export` (run by ONNX Runtime: faster on a CPU)")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="audio files (any format soundfile reads, any rate, any channels), folders (searched "
                        "recursively for audio files), manifests (.csv, .jsonl, .parquet with a path column and, for "
                        "--engine ray, optionally an id column) or - to read paths from stdin, one per line")
    p.add_argument("--format", choices=("jsonl", "csv"), default=None, help="output format (default: jsonl)")
    p.add_argument("--out", help="write the rows to this file (default: stdout); it is replaced when the run ends, "
                                 "and left as it was by a run that fails. With --engine ray: the folder of Parquet "
                                 "parts (required; a restart with the same --out skips the files already there)")
    p.add_argument("--batch-seconds", type=float, default=None,
                   help="most padded audio per batch, in seconds (default: 10 on a CPU, 60 on a GPU)")
    p.add_argument("--window", type=float, default=10.0,
                   help="inputs longer than this many seconds are predicted in windows of this length (default: 10)")
    p.add_argument("--hop", type=float, default=5.0, help="seconds between window starts (default: 5)")
    p.add_argument("--segments", metavar="windows|vad|FILE", default="windows",
                   help="windows (default): fixed windows as set by --window/--hop. vad: a row per speech segment "
                        "found by Silero VAD (pip install 'serkit[vad]') and the whole file's summary over its "
                        "speech. FILE.rttm (a diarisation) or FILE.csv (start,end[,speaker][,file]): a row per "
                        "segment of the file, speaker kept. A segment longer than --window is predicted in windows")
    vad = p.add_argument_group("voice activity (--segments vad)")
    for option, (field, help_text) in VAD_OPTIONS.items():
        vad.add_argument(option, dest=field, type=_vad_value(field), default=None, metavar="X", help=help_text)
    p.add_argument("--transcripts", metavar="FILE",
                   help="CSV or JSONL table of path,text for models with a text branch (default: each audio "
                        "file's sidecar <audio>.txt)")
    p.add_argument("--path-column", default="path", help="column of --transcripts holding the audio path")
    p.add_argument("--text-column", default="text", help="column of --transcripts holding the transcript")
    p.add_argument("--skip-errors", action="store_true",
                   help="write an error row for a file that fails and go on (default: stop at the first); the "
                        "exit code is still 1 when every file failed")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu; a .onnx model runs on the CPU)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for the model (default: torch's default, one per core; with --engine ray, "
                        "per actor: 1)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default): this process. ray: Ray Data over a cluster or this machine's cores, "
                        "rows to Parquet parts in --out, resumable (pip install 'serkit[ray]')")
    ray = p.add_argument_group("Ray (--engine ray; README: Archives on a cluster)")
    ray.add_argument("--address", default=None,
                     help="the Ray cluster: HOST:PORT of `ray start --head`, or auto for the cluster this machine "
                          "joined (default: $RAY_ADDRESS, else a new Ray on this machine)")
    ray.add_argument("--ray-actors", type=int, default=None, metavar="N",
                     help="model actors (default: one per GPU with --device cuda, else one per --threads CPUs)")
    ray.add_argument("--ray-batch-size", type=int, default=None, metavar="N",
                     help="files per model call and per Parquet part (default: 64); --batch-seconds still bounds "
                          "what one forward pass sees")
    ray.add_argument("--ray-gpus", type=float, default=None, metavar="X",
                     help="GPUs per actor with --device cuda (default: 1; 0.5 puts two actors on a GPU)")
    ray.add_argument("--ray-decode-cpus", type=float, default=None, metavar="X",
                     help="CPUs per decoding task (default: 1 with --device cuda; on CPUs the actors' own, so each "
                          "actor decodes its own batches)")
    ray.add_argument("--embeddings", action="store_true",
                     help="also write each row's embedding (the classifier's input) as a list of floats")


@command("predict", "predict emotions of audio files with a trained model bundle or ONNX export (JSONL or CSV rows)",
         _arguments)
def run(args: argparse.Namespace) -> int:
    from ..inference import EmotionRecognizer
    from ..inference.transcripts import Transcripts
    from ..inference.windows import check_windowing
    from ..util.onednn import cap_primitive_cache

    cap_primitive_cache()  # files of every length: without a cap, memory grows with the number of files
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads is {args.threads}; expected a positive number of threads")
    ray = args.engine == "ray"
    given = [option for option in RAY_OPTIONS if getattr(args, option[2:].replace("-", "_")) not in (None, False)]
    if ray:
        options = _ray_options(args)
    elif given:
        raise ConfigError(f"{', '.join(given)} apply to --engine ray")
    check_windowing(args.window, args.hop, names=("--window", "--hop"))  # named as the user typed them
    if args.batch_seconds is not None and not args.batch_seconds > 0:
        raise ConfigError(f"--batch-seconds is {args.batch_seconds}; expected a positive number of seconds")
    segments = _segments(args)  # before the model loads: a bad segments file or a missing extra fails at once
    # with --engine ray loaded here, on the CPU, only to fail early with the model's own error and to learn its
    # labels: the actors load it again where they run
    recognizer = EmotionRecognizer.load(args.model, device="cpu" if ray else args.device,
                                        threads=None if ray else args.threads, window_seconds=args.window,
                                        hop_seconds=args.hop, batch_seconds=args.batch_seconds)
    transcripts = Transcripts.from_file(args.transcripts, args.path_column, args.text_column) if args.transcripts \
        else None
    if ray:
        return _run_ray(args, options, segments, recognizer, transcripts)
    return _run_local(args, segments, recognizer, transcripts)


def _run_local(args: argparse.Namespace, segments, recognizer, transcripts) -> int:
    from ..inference import PredictionFailure
    from ..inference.files import audio_paths
    from ..inference.output import make_writer
    from ..inference.runner import predict_files

    unlisted = []  # folders that could not be listed (only with --skip-errors; otherwise the first one raises)

    def report_unlisted(problem) -> None:
        unlisted.append(problem)
        print(f"serkit predict: {problem}", file=sys.stderr)

    paths = audio_paths(args.paths, sys.stdin, on_unreadable=report_unlisted if args.skip_errors else None)
    if args.out:
        others = [path for path in (args.transcripts, getattr(segments, "path", None)) if path]
        check_output(args.out, [*paths, args.model, *map(str, others)])
    failed = 0
    # a reader of stdout that goes away (`serkit predict ... | head`) is handled by cli.main
    with output_stream(args.out) as stream:
        writer = make_writer(args.format or "jsonl", stream, recognizer.labels, timeline=segments is not None)
        for result in predict_files(recognizer, paths, transcripts, skip_errors=args.skip_errors, segments=segments):
            failed += isinstance(result, PredictionFailure)
            writer.write(result)
    if failed:
        print(f"serkit predict: {failed} of {len(paths)} files failed (error rows written)", file=sys.stderr)
    if unlisted:
        print(f"serkit predict: {len(unlisted)} folders could not be listed or held no audio (left out)",
              file=sys.stderr)
    # --skip-errors goes on past bad files, but a run that predicted nothing is a failure for the caller
    return 1 if (paths or unlisted) and failed == len(paths) else 0


def _ray_options(args: argparse.Namespace):
    """--engine ray's checks, before anything loads -> ray_batch.RayOptions."""
    from ..inference.onnx_model import is_onnx_file
    from ..inference.ray_batch import RayOptions, import_ray
    from ..inference.recognizer import parse_device

    if args.format is not None:
        raise ConfigError("--format applies to the local engine; --engine ray writes Parquet parts to --out")
    if args.out is None:
        raise ConfigError("--engine ray needs --out FOLDER (e.g. --out results.parquet): it writes Parquet parts "
                          "there, and a restart with the same --out resumes from them")
    device = parse_device(args.device)
    if device.type not in ("cpu", "cuda") or device.index is not None:
        raise ConfigError(f"--device {args.device}: with --engine ray use cpu or cuda (Ray gives each actor its "
                          "own GPU, which it sees as cuda)")
    if device.type != "cuda" and args.ray_gpus is not None:
        raise ConfigError("--ray-gpus applies to --device cuda")
    if device.type == "cuda" and is_onnx_file(args.model):
        raise ConfigError(f"{args.model}: an ONNX model runs on the CPU (ONNX Runtime); for --device cuda give the "
                          "model bundle it was exported from")
    fields = {"address": args.address, "actors": args.ray_actors, "batch_files": args.ray_batch_size,
              "gpus_per_actor": args.ray_gpus, "decode_cpus": args.ray_decode_cpus}
    options = RayOptions(**{name: value for name, value in fields.items() if value is not None})  # else its defaults
    import_ray()  # a missing extra says how to install it before anything loads
    return options


def _run_ray(args: argparse.Namespace, options, segmenter, recognizer, transcripts) -> int:
    """--engine ray: the archive's rows to Parquet parts in --out (inference/ray_batch.py)."""
    from ..inference.ray_batch import ArchiveJob, predict_archive
    from ..inference.ray_inputs import archive_inputs

    segments = "windows" if segmenter is None else "vad" if args.segments == "vad" else segmenter
    # model and out are taken from this folder (ArchiveJob makes them absolute for the workers)
    job = ArchiveJob(model=args.model, out=args.out, labels=tuple(recognizer.labels), device=args.device,
                     threads=args.threads, window_seconds=args.window, hop_seconds=args.hop,
                     batch_seconds=args.batch_seconds, segments=segments, vad=getattr(segmenter, "settings", None),
                     embeddings=args.embeddings, needs_text=recognizer.needs_text, transcripts=transcripts)
    summary = predict_archive(job, archive_inputs(args.paths, sys.stdin), options)
    print(f"serkit predict: {summary.predicted} files predicted ({summary.failed} of them error rows), "
          f"{summary.already_done} already in {args.out}; {summary.parts} parts there", file=sys.stderr)
    if summary.repeated:
        print(f"serkit predict: {len(summary.repeated)} ids are in two parts of {args.out} (e.g. "
              f"{summary.repeated[0]!r}): two jobs wrote there at once; keep one row per id and window/segment "
              "when reading", file=sys.stderr)
    # every file of the run failed: as the local engine, a failure for the caller
    return 1 if summary.predicted and summary.failed == summary.predicted else 0


def _segments(args: argparse.Namespace):
    """--segments and the VAD options -> None (fixed windows) or a Segmenter (inference.segments)."""
    from ..inference.segments import VadSettings, make_segmenter

    given = {option: getattr(args, field) for option, (field, _) in VAD_OPTIONS.items()
             if getattr(args, field) is not None}
    if args.segments == "windows":
        if given:
            raise ConfigError(f"{', '.join(given)} set how voice activity becomes segments: use them with "
                              "--segments vad")
        return None
    if args.segments == "vad":
        return make_segmenter("vad", VadSettings(**{VAD_OPTIONS[option][0]: value for option, value in given.items()}))
    if given:
        raise ConfigError(f"{', '.join(given)} apply to --segments vad, not to segments read from {args.segments}")
    if not args.segments.lower().endswith((".rttm", ".csv")):
        raise ConfigError(f"--segments {args.segments}: expected windows, vad, or a .rttm / .csv file of segments")
    return make_segmenter(args.segments)


def _vad_value(field: str):
    """An argparse type: a float within VadSettings' limits for `field` (argparse names the option on error)."""
    from ..inference.segments import VadSettings

    def number(text: str) -> float:  # argparse calls the type by this name in its messages
        try:
            return VadSettings.check_field(field, float(text))
        except (ValueError, ConfigError) as error:
            lowest, highest, what = VadSettings.LIMITS[field]
            raise argparse.ArgumentTypeError(f"{text!r}: expected {what} from {lowest:g} to {highest:g}") from error

    return number


@contextmanager
def output_stream(out: str | None) -> Iterator[TextIO]:
    """Where the rows go: stdout, or for --out a temp file beside it that replaces it when every input is done.

    The rows are still flushed file by file (a killed run keeps them, in the hidden `.<name>.*.tmp` beside the
    output), but the output itself is only ever whole: a run that fails, or is interrupted, leaves a previous
    file of that name as it was instead of truncating it to a bare header."""
    if out is None:
        yield sys.stdout
        return
    # the text file is closed (flushed) before atomic_path fsyncs and renames, or removes, the temp file
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8", newline="") as text:
        yield text


def check_output(out: str, inputs: list[str]) -> None:
    """ConfigError unless --out can be written and is none of the inputs (audio, model, transcripts): the
    rows would replace the audio they come from (compared resolved, and by inode for hard links)."""
    target = Path(out)
    if target.is_dir():
        raise ConfigError(f"--out {out} is a folder; expected a file name")
    if not target.parent.is_dir():
        raise ConfigError(f"--out {out}: folder {target.parent} does not exist")
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: folder {target.parent} is not writable")
    resolved, exists = target.resolve(), target.exists()
    for path in inputs:
        same = Path(path).resolve() == resolved
        if not same and exists:
            try:
                same = os.path.samefile(path, target)
            except OSError:  # an input that does not exist: it fails later, with its name
                pass
        if same:
            raise ConfigError(f"--out {out} is also an input ({path}); the rows would replace it: write them to "
                              "another file")
