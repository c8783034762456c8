"""Static int8 recipe: QDQ graph with activation scales from streamed calibration (``quantize_static``).

Quantized with calibrated scales: the weight MatMul/Gemm inputs (QUInt8 activations, QInt8 weights;
ORT fuses each DQ->MatMul into an int8 GEMM) and the embedding Gathers (int8 tables: the file is ~4x
smaller). Softmax, LayerNorm, GELU and the residual/mask ``Add`` stay float: the additive attention
mask (``finfo.min``) only flows through ``Add``/``Softmax``, so it never gets an activation scale.

Two groups of MatMuls are treated differently:
- activation x activation MatMuls (attention scores and context) stay float: quantizing them made
  the artifact *slower* than fp32 (37 vs 34 ms at seq 128, built-in DistilBERT) with no size gain;
- the MatMul after GELU (FFN output) has outlier-heavy inputs that one calibrated scale cannot cover;
  it gets int8 weights with a per-run activation scale (dynamic) at the same size and speed. Measured
  on the built-in validation split (500 texts, batch 1; ``benchmarks/bench_int8_agreement.py``; the
  test split is only for reporting): all-static agreement with fp32 0.898 / accuracy 0.794 (fp32 0.824)
  for DistilBERT, 0.898 / 0.808 (fp32 0.842) for SqueezeBERT; with the exception 0.964 / 0.824 and
  0.962 / 0.860.
Limiting the op types also limits which tensors are calibrated, which bounds calibration memory.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import EdgebertError
from .calibration import BATCH_SIZE, TokenBatchReader, _ort_method, collect_ranges, load_calibration_texts
from .host_isa import host_reduce_range
from .inspect import is_gelu
from .ort_nodes import ort_names, weight_layers
from .preprocess import quiet_ort

OP_TYPES = ("MatMul", "Gemm", "Gather")
ACTIVATION_TYPE = "QUInt8"
WEIGHT_TYPE = "QInt8"

#: ``op_groups`` reasons (see ``groups.py``).
WHY = {
    "static int8": "int8 weights and uint8 activations with scales calibrated once (QDQ); ONNX Runtime "
                   "fuses them into integer kernels (QLinearMatMul, QGemm)",
    "dynamic int8": "input is a GELU output: its long tail does not fit one calibrated scale, so int8 "
                    "weights with an activation scale computed per run",
    "int8 weights only": "int8 embedding tables: the rows a lookup reads are dequantized to float",
    "float": "activation×activation MatMuls (attention) were slower in int8 with no size gain; Softmax, "
             "LayerNorm and activations are not quantized by this recipe (the finfo.min attention mask "
             "flows through them and would ruin a scale)",
}


def describe(settings) -> str:
    scales = "per-channel" if settings.per_channel is not False else "per-tensor"
    return (f"ONNX Runtime static int8 (QDQ): {scales} int8 weights and calibrated uint8 activations "
            f"({settings.method}) for the weight MatMuls/Gemms and embedding lookups; the GELU-fed FFN output "
            "MatMuls get per-run activation scales; attention MatMuls, Softmax, LayerNorm and GELU stay float")


def run(pre_path: Path, out_path: Path, settings, *, tokenizer, scratch: Path, progress=None,
        exclude: tuple[str, ...] = (), cache: dict | None = None, **_) -> dict:
    """Quantize ``pre_path``; ``exclude``: nodes kept float (the accuracy goal's fallbacks). ``cache``
    (a dict the caller keeps) holds the calibration between calls: ranges do not depend on ``exclude``."""
    reduce_range, reduce_range_why = host_reduce_range()
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.calibrate import save_tensors_data

    per_channel = settings.per_channel is not False  # None (unset): per-channel
    texts = load_calibration_texts(settings.calibration, settings.text_column, settings.samples)
    result = cache.get("ranges") if cache is not None else None
    if result is None:
        reader = TokenBatchReader(tokenizer, texts.texts, settings.seq_len)
        try:
            with quiet_ort():
                result = collect_ranges(pre_path, reader, settings.method, OP_TYPES, scratch, progress)
        except EdgebertError:
            raise
        except Exception as exc:
            raise EdgebertError(f"static calibration ({settings.method}) failed: {exc}") from exc
        if cache is not None:
            cache["ranges"] = result
    ranges_file = scratch / "calibration.json"
    save_tensors_data(result.tensors_range, ranges_file)
    model = onnx.load(str(pre_path))
    excluded = _nodes_touching(model, set(result.degenerate))
    activation_matmuls = _activation_matmuls(model)
    kept_float = set(exclude)
    post_gelu = [n for n in _post_gelu_matmuls(model) if n not in excluded and n not in kept_float]
    static_out = scratch / "static-qdq.onnx"
    try:
        with quiet_ort():
            quantize_static(
                str(pre_path), str(static_out), None, quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(OP_TYPES), per_channel=per_channel,
                reduce_range=reduce_range, activation_type=getattr(QuantType, ACTIVATION_TYPE),
                weight_type=getattr(QuantType, WEIGHT_TYPE),
                nodes_to_exclude=sorted({*excluded, *activation_matmuls, *post_gelu, *ort_names(kept_float)}),
                calibrate_method=_ort_method(settings.method), calibration_cache_path=str(ranges_file),
            )
            if post_gelu:
                quantize_dynamic(str(static_out), str(out_path), nodes_to_quantize=post_gelu,
                                 op_types_to_quantize=["MatMul"], weight_type=getattr(QuantType, WEIGHT_TYPE),
                                 per_channel=per_channel, reduce_range=reduce_range)
            else:
                static_out.replace(out_path)
    except Exception as exc:
        raise EdgebertError(f"ONNX Runtime static quantization failed: {exc}") from exc
    return {
        "format": "QDQ", "weight_type": WEIGHT_TYPE, "activation_type": ACTIVATION_TYPE,
        "per_channel": per_channel, "reduce_range": reduce_range, "reduce_range_why": reduce_range_why, "op_types": list(OP_TYPES),
        "calibration": {
            "source": texts.source, "samples": len(texts.texts), "seq_len": settings.seq_len,
            "method": settings.method, "batch_size": BATCH_SIZE, "batches": result.batches,
            "text_column": settings.text_column if settings.calibration else None,
            "degenerate_tensors": sorted(result.degenerate),
        },
        "excluded_nodes": excluded,
        "float_activation_matmuls": len(activation_matmuls),
        "dynamic_activation_nodes": post_gelu,
    }


def layers(model) -> list[tuple[str, str]]:
    """(node, op type) of what this recipe quantizes: the weight MatMuls/Gemms and embedding Gathers
    (a float initializer of rank >= 2), not the attention MatMuls; what the accuracy goal may keep float."""
    return weight_layers(model, OP_TYPES)


LAYOUT_OPS = {"Transpose", "Reshape", "Split", "Squeeze", "Unsqueeze", "Slice", "Identity"}


def _constant_names(model) -> set[str]:
    return {i.name for i in model.graph.initializer} | {
        o for n in model.graph.node if n.op_type == "Constant" for o in n.output}


def _activation_matmuls(model) -> list[str]:
    """MatMuls with no constant input (attention scores and context): they stay float."""
    consts = _constant_names(model)
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and not consts.intersection(n.input)]


def _post_gelu_matmuls(model) -> list[str]:
    """Weight MatMuls whose activation input comes from a GELU (an op, or the TorchScript exporter's erf
    form), looking through layout-only ops (SqueezeBERT's rewritten convolutions put Transpose/Split
    between the two)."""
    consts = _constant_names(model)
    producer = {o: n for n in model.graph.node for o in n.output}

    def from_gelu(tensor: str) -> bool:
        node = producer.get(tensor)
        while node is not None and node.op_type in LAYOUT_OPS:
            node = producer.get(node.input[0])
        return is_gelu(node, producer)

    return [n.name for n in model.graph.node
            if n.op_type == "MatMul" and consts.intersection(n.input)
            and any(from_gelu(i) for i in n.input if i not in consts)]


def _nodes_touching(model, tensors: set[str]) -> list[str]:
    """Quantizable nodes reading or writing an uncalibratable tensor: they stay float."""
    return sorted(n.name for n in model.graph.node
                  if n.op_type in OP_TYPES and tensors.intersection((*n.input, *n.output)))
