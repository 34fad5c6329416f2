"""`serkit export MODEL --onnx OUT.onnx`: a model bundle as an ONNX graph (wavs, wav_lens -> probabilities,
embedding), which `serkit predict` and `serkit serve` also run (ONNX Runtime)."""

from __future__ import annotations

import argparse

from .registry import command


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model bundle folder (e.g. runs/<name>/fold_1/model)")
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="where to write the ONNX file")
    p.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's recommended one)")


@command("export", "export a model bundle to ONNX (dynamic batch and length; checked with ONNX Runtime)", _arguments)
def run(args: argparse.Namespace) -> int:
    from ..export import export_onnx

    result = export_onnx(args.model, args.onnx, opset=args.opset)
    note = "" if result.padding_invariant else (
        " — this upstream runs utterances unpadded: feed the graph one utterance per call")
    print(f"wrote {result.path} (exporter: {result.exporter}, opset {result.opset}, ONNX Runtime vs PyTorch: "
          f"max |diff| {result.max_abs_diff:.1e} in probabilities, {result.embedding_rel_diff:.1e} relative in "
          f"embeddings){note}")
    return 0
