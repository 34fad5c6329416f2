"""Export a trained model for other runtimes: ONNX (wavs, wav_lens -> probabilities), see export/onnx.py."""

from .onnx import ExportResult, export_onnx

__all__ = ["ExportResult", "export_onnx"]
