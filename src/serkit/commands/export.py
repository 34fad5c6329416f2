"""`serkit export MODEL --onnx OUT.onnx [--quantize int8] [--check-audio CLIPS ...]`: a model bundle as an ONNX
graph (wavs, wav_lens -> probabilities, embedding), which `serkit predict` and `serkit serve` also run (ONNX
Runtime); int8 on request, with what it changes measured on clips and printed."""

from __future__ import annotations

import argparse

from .registry import command


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model bundle folder (e.g. runs/<name>/fold_1/model)")
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="where to write the ONNX file")
    p.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's recommended one)")
    p.add_argument("--quantize", choices=["int8"],
                   help="write an int8 graph (ONNX Runtime dynamic quantization of the matrix products): smaller "
                        "and faster on a CPU, slightly different outputs; the check prints how much, on clips")
    p.add_argument("--check-audio", nargs="+", metavar="CLIPS",
                   help="audio files or folders, or one labelled manifest (.csv/.jsonl: path,label,speaker as "
                        "`serkit cv` reads), to compare the written graph on (int8 vs float32; ONNX Runtime vs "
                        "PyTorch without --quantize): label agreement, probability difference, speed, and accuracy "
                        "with labels. Default with --quantize: synthetic speech clips")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads of that comparison, both sides (default: torch's default, one per core)")


@command("export", "export a model bundle to ONNX (dynamic batch and length; checked with ONNX Runtime)", _arguments)
def run(args: argparse.Namespace) -> int:
    from ..export import export_onnx

    result = export_onnx(args.model, args.onnx, opset=args.opset, quantize=args.quantize,
                         check_audio=args.check_audio, threads=args.threads)
    note = "" if result.padding_invariant else (
        " — this upstream runs utterances unpadded: feed the graph one utterance per call")
    kind = f"{result.quantization}, " if result.quantization else ""
    print(f"wrote {result.path} ({kind}{_mib(result.size_bytes)}; exporter: {result.exporter}, opset {result.opset}; "
          f"float32 graph vs PyTorch: max |diff| {result.max_abs_diff:.1e} in probabilities, "
          f"{result.embedding_rel_diff:.1e} relative in embeddings){note}")
    if result.quantization:
        print(f"{result.quantization}: {_mib(result.float_size_bytes)} -> {_mib(result.size_bytes)} "
              f"({result.size_bytes / result.float_size_bytes:.0%} of the float32 file)")
    if result.clip_check is not None:
        print(result.clip_check.summary())
    return 0


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"
