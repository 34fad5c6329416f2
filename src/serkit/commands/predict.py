"""`serkit predict MODEL PATH...`: emotion predictions for audio files, one row per file (and per window)."""

from __future__ import annotations

import argparse
import os
import sys

from ..cli import command


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model bundle folder (e.g. runs/<name>/fold_1/model), or a .onnx file from "
                                 "`serkit export` (run by ONNX Runtime: faster on a CPU)")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="audio files (any format soundfile reads, any rate, any channels), folders (searched "
                        "recursively for audio files) or - to read paths from stdin, one per line")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="output format (default: jsonl)")
    p.add_argument("--out", help="write the rows to this file (default: stdout)")
    p.add_argument("--batch-seconds", type=float, default=None,
                   help="most padded audio per batch, in seconds (default: 10 on a CPU, 60 on a GPU)")
    p.add_argument("--window", type=float, default=10.0,
                   help="inputs longer than this many seconds are predicted in windows of this length (default: 10)")
    p.add_argument("--hop", type=float, default=5.0, help="seconds between window starts (default: 5)")
    p.add_argument("--transcripts", metavar="FILE",
                   help="CSV or JSONL table of path,text for models with a text branch (default: each audio "
                        "file's sidecar <audio>.txt)")
    p.add_argument("--path-column", default="path", help="column of --transcripts holding the audio path")
    p.add_argument("--text-column", default="text", help="column of --transcripts holding the transcript")
    p.add_argument("--skip-errors", action="store_true",
                   help="write an error row for a file that fails and go on (default: stop at the first)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu; a .onnx model runs on the CPU)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for the model (default: torch's default, one per core)")


@command("predict", "predict emotions of audio files with a trained model bundle or ONNX export (JSONL or CSV rows)",
         _arguments)
def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..inference import EmotionRecognizer, PredictionFailure
    from ..inference.files import audio_paths
    from ..inference.output import make_writer
    from ..inference.runner import predict_files
    from ..inference.transcripts import Transcripts

    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads is {args.threads}; expected a positive number of threads")
    recognizer = EmotionRecognizer.load(args.model, device=args.device, threads=args.threads,
                                        window_seconds=args.window, hop_seconds=args.hop,
                                        batch_seconds=args.batch_seconds)
    transcripts = None
    if args.transcripts:
        transcripts = Transcripts.from_file(args.transcripts, args.path_column, args.text_column)
    paths = audio_paths(args.paths, sys.stdin)
    stream = open(args.out, "w", encoding="utf-8", newline="") if args.out else sys.stdout
    failed = 0
    try:
        writer = make_writer(args.format, stream, recognizer.labels)
        for result in predict_files(recognizer, paths, transcripts, skip_errors=args.skip_errors):
            failed += isinstance(result, PredictionFailure)
            writer.write(result)
    except BrokenPipeError:
        # the reader went away (`serkit predict ... | head`): stop quietly, and keep Python's exit-time flush of
        # stdout from raising again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        if stream is not sys.stdout:
            stream.close()
    if failed:
        print(f"serkit predict: {failed} of {len(paths)} files failed (error rows written)", file=sys.stderr)
    return 0
