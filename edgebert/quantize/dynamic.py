"""Dynamic int8 recipe: int8 weights, activations quantized per run (ORT ``quantize_dynamic``).

Only MatMul/Gemm and the embedding Gathers (int8 tables: ~4x smaller file, same speed) are
quantized: ORT turns ``Conv`` into ``ConvInteger`` (slow or missing kernels),
so convolutions must have been rewritten to MatMul first (see ``rewrites``). Signed int8 weights
(u8s8) run ORT's fast VNNI/ARM dot-product kernels; on this host QUInt8 weights (u8u8) measured
~1.8x slower than QInt8 (see the benchmark). ``reduce_range`` (7-bit weights) only matters on x86
without VNNI, where u8s8 can saturate; it is off, and recorded, so the artifact is reproducible.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import EdgebertError
from .preprocess import quiet_ort

OP_TYPES = ("MatMul", "Gemm", "Gather")
WEIGHT_TYPE = "QInt8"
REDUCE_RANGE = False


def run(pre_path: Path, out_path: Path, settings, **_) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        with quiet_ort():
            quantize_dynamic(str(pre_path), str(out_path), op_types_to_quantize=list(OP_TYPES),
                             per_channel=settings.per_channel, reduce_range=REDUCE_RANGE,
                             weight_type=getattr(QuantType, WEIGHT_TYPE))
    except Exception as exc:
        raise EdgebertError(f"ONNX Runtime dynamic quantization failed: {exc}") from exc
    return {
        "weight_type": WEIGHT_TYPE, "activation_type": "QUInt8 (computed per run)",
        "per_channel": settings.per_channel, "reduce_range": REDUCE_RANGE, "op_types": list(OP_TYPES),
    }
