"""Static int8 recipe: QDQ graph with activation scales from streamed calibration (``quantize_static``).

Only MatMul/Gemm inputs (QUInt8 activations, QInt8 weights; ORT fuses each DQ->MatMul into an int8
GEMM, attention MatMuls included) and the embedding Gathers (int8 tables: the file is ~4x smaller,
no measured latency cost) are quantized. Softmax, LayerNorm, GELU and the residual/mask ``Add`` stay float:
they are the accuracy-sensitive BERT nodes, and the additive attention mask (``finfo.min``) only
flows through ``Add``/``Softmax``, so it never gets an activation scale. Limiting the op types also
limits which tensors are calibrated, which bounds calibration memory (see ``calibration``).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import EdgebertError
from .calibration import BATCH_SIZE, TokenBatchReader, _ort_method, collect_ranges, load_calibration_texts
from .preprocess import quiet_ort

OP_TYPES = ("MatMul", "Gemm", "Gather")
ACTIVATION_TYPE = "QUInt8"
WEIGHT_TYPE = "QInt8"
REDUCE_RANGE = False


def run(pre_path: Path, out_path: Path, settings, *, tokenizer, scratch: Path, progress=None, **_) -> dict:
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import save_tensors_data

    texts = load_calibration_texts(settings.calibration, settings.text_column, settings.samples)
    reader = TokenBatchReader(tokenizer, texts.texts, settings.seq_len)
    try:
        with quiet_ort():
            result = collect_ranges(pre_path, reader, settings.method, OP_TYPES, scratch, progress)
    except EdgebertError:
        raise
    except Exception as exc:
        raise EdgebertError(f"static calibration ({settings.method}) failed: {exc}") from exc
    cache = scratch / "calibration.json"
    save_tensors_data(result.tensors_range, cache)
    excluded = _nodes_touching(onnx.load(str(pre_path)), set(result.degenerate))
    try:
        with quiet_ort():
            quantize_static(
                str(pre_path), str(out_path), None, quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(OP_TYPES), per_channel=settings.per_channel,
                reduce_range=REDUCE_RANGE, activation_type=getattr(QuantType, ACTIVATION_TYPE),
                weight_type=getattr(QuantType, WEIGHT_TYPE), nodes_to_exclude=excluded,
                calibrate_method=_ort_method(settings.method), calibration_cache_path=str(cache),
            )
    except Exception as exc:
        raise EdgebertError(f"ONNX Runtime static quantization failed: {exc}") from exc
    return {
        "format": "QDQ", "weight_type": WEIGHT_TYPE, "activation_type": ACTIVATION_TYPE,
        "per_channel": settings.per_channel, "reduce_range": REDUCE_RANGE, "op_types": list(OP_TYPES),
        "calibration": {
            "source": texts.source, "samples": len(texts.texts), "seq_len": settings.seq_len,
            "method": settings.method, "batch_size": BATCH_SIZE, "batches": result.batches,
            "text_column": settings.text_column if settings.calibration else None,
            "degenerate_tensors": sorted(result.degenerate),
        },
        "excluded_nodes": excluded,
    }


def _nodes_touching(model, tensors: set[str]) -> list[str]:
    """Quantizable nodes reading or writing an uncalibratable tensor: they stay float."""
    return sorted(n.name for n in model.graph.node
                  if n.op_type in OP_TYPES and tensors.intersection((*n.input, *n.output)))
