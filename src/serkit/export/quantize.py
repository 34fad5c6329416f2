"""int8 quantization of an exported graph: ONNX Runtime's dynamic quantization (`quantize_dynamic`).

    quantize_int8(float_path, out_path, metadata): the checked float32 graph -> an int8 graph at out_path.

Dynamic: the weights of the matrix products are stored as int8, one scale per output channel; activations are
quantized on the fly, per call, from their own range (DynamicQuantizeLinear), so no calibration data is needed.
Only MatMul / Gemm with a weight operand are quantized (OP_TYPES, MatMulConstBOnly: attention's activation x
activation products stay float32): they carry the transformer's arithmetic, and ONNX Runtime runs their int8
form with VNNI / AVX2 integer kernels. Convolutions stay float32: with them quantized too (ConvInteger) Whisper
base ran 1.60x the float graph's speed instead of 1.78x and moved probabilities 4x more (1 thread, 24 RAVDESS
clips). Layer norms, softmax and the log-mel front end stay float32. ONNX Runtime's pre-processing
(quant_pre_process) is not run: its symbolic shape inference fails on these graphs (a TypeError).

What it costs in accuracy is model-dependent: the export check measures it on clips (export/check_clips.py)
and prints it; nothing here decides it is small enough.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import ConfigError

QUANTIZATIONS = ("int8",)
OP_TYPES = ("MatMul", "Gemm")
# per-channel int8 weights need DequantizeLinear's `axis`, which ONNX has from opset 13 on
MIN_OPSET = 13


def check_quantize(quantize: str | None, opset: int | None) -> None:
    """ConfigError for a quantization serkit does not write, or one the asked opset cannot hold."""
    if quantize is None:
        return
    if quantize not in QUANTIZATIONS:
        raise ConfigError(f"quantize={quantize!r}: expected one of {', '.join(QUANTIZATIONS)} (or none: float32)")
    if opset is not None and opset < MIN_OPSET:
        raise ConfigError(f"--quantize {quantize} needs opset {MIN_OPSET} or later (per-channel int8 weights); "
                          f"--opset {opset} was asked: leave --opset out or give {MIN_OPSET}+")


def quantize_int8(float_path: Path, out_path: Path, metadata: dict[str, str]) -> None:
    """Write the int8 version of the ONNX file at float_path to out_path, with `metadata` as its metadata."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    external = Path(f"{float_path}.data").exists()
    # it logs on the root logger: a line per tensor, and advice to pre-process that does not apply here
    quiet = logging.getLogger()
    level = quiet.level
    quiet.setLevel(max(level, logging.ERROR))
    try:
        quantize_dynamic(float_path, out_path, op_types_to_quantize=list(OP_TYPES), per_channel=True,
                         weight_type=QuantType.QInt8, use_external_data_format=external,
                         extra_options={"MatMulConstBOnly": True})
    finally:
        quiet.setLevel(level)
    proto = onnx.load(str(out_path), load_external_data=False)
    onnx.helper.set_model_props(proto, metadata)
    onnx.save(proto, str(out_path))
