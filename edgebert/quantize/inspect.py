"""Op-type accounting of a quantized graph: which compute ops run int8 and which stayed float.

The manifest records this so a user can see at a glance whether int8 kernels actually run
(e.g. no ``ConvInteger`` in SqueezeBERT, every MatMul quantized) without opening the graph.
"""

from __future__ import annotations

from collections import Counter

import onnx

#: Op types that compute in int8 (QOperator / dynamic forms and ORT contrib ops).
INT8_OPS = frozenset({
    "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QLinearMatMul",
    "QLinearConv", "QGemm", "QAttention", "QLinearAdd", "QLinearMul", "QLinearSoftmax",
    "QLinearGlobalAveragePool", "QLinearLeakyRelu", "QLinearSigmoid", "QLinearConcat", "QEmbedLayerNormalization",
    "DynamicQuantizeLSTM", "QOrderedMatMul",
})
#: Float compute ops worth quantizing; any left unquantized are listed as ``float_ops``.
COMPUTE_OPS = ("MatMul", "Gemm", "Conv", "Attention")


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    return dict(sorted(Counter(n.op_type for n in model.graph.node).items()))


def summarize(model: onnx.ModelProto) -> dict:
    """``quantized_ops`` / ``float_ops`` / ``node_count`` for the manifest.

    In QDQ graphs a compute op whose data inputs (A and B) both come from ``DequantizeLinear`` runs
    as an int8 kernel after ORT's QDQ fusion; it is counted as ``"<Op>(QDQ)"``. Embedding lookups
    from an int8 table count as ``"Gather(int8 table)"`` / ``"Gather(QDQ)"``.
    """
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    int8_tables = {t.name for t in model.graph.initializer
                   if t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8) and len(t.dims) >= 2}
    quantized: Counter = Counter()
    floating: Counter = Counter()
    for node in model.graph.node:
        if node.op_type in INT8_OPS:
            quantized[node.op_type] += 1
        elif node.op_type == "Gather" and node.input and node.input[0] in int8_tables:
            quantized["Gather(int8 table)"] += 1
        elif node.op_type == "Gather" and node.input and producers.get(node.input[0]) == "DequantizeLinear":
            quantized["Gather(QDQ)"] += 1
        elif node.op_type in COMPUTE_OPS:
            data_inputs = [i for i in node.input[:2] if i]
            if data_inputs and all(producers.get(i) == "DequantizeLinear" for i in data_inputs):
                quantized[f"{node.op_type}(QDQ)"] += 1
            else:
                floating[node.op_type] += 1
    counts = Counter(n.op_type for n in model.graph.node)
    return {
        "quantized_ops": dict(sorted(quantized.items())),
        "float_ops": dict(sorted(floating.items())),
        "quantize_nodes": {k: counts[k] for k in ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")
                           if counts.get(k)},
        "node_count": len(model.graph.node),
    }
