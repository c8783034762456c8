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


#: Integer op -> the float op it implements, and whether its activation scale is fixed (static) or per run.
INTEGER_FORMS = {
    "QLinearMatMul": "MatMul", "QGemm": "Gemm", "QLinearConv": "Conv", "QAttention": "Attention",
    "QOrderedMatMul": "MatMul", "QLinearAdd": "Add", "QLinearMul": "Mul", "QLinearSoftmax": "Softmax",
    "QLinearGlobalAveragePool": "GlobalAveragePool", "QLinearLeakyRelu": "LeakyRelu", "QLinearSigmoid": "Sigmoid",
    "QLinearConcat": "Concat", "QEmbedLayerNormalization": "EmbedLayerNormalization",
    "MatMulInteger": "MatMul", "ConvInteger": "Conv", "MatMulIntegerToFloat": "MatMul",
    "DynamicQuantizeMatMul": "MatMul", "DynamicQuantizeLSTM": "LSTM",
}
ALWAYS_DYNAMIC = {"DynamicQuantizeMatMul", "DynamicQuantizeLSTM"}
#: Float ops worth naming in ``op_groups`` besides ``COMPUTE_OPS``: softmax, normalization, activations.
NAMED_FLOAT_OPS = ("Softmax", "LayerNormalization", "SkipLayerNormalization", "Gelu", "FastGelu", "BiasGelu",
                   "Erf", "Tanh", "Relu", "Sigmoid")
#: Ops that only move data; followed when looking for what feeds a compute op.
LAYOUT_OPS = {"Transpose", "Reshape", "Split", "Squeeze", "Unsqueeze", "Slice", "Identity"}


GELU_OPS = ("Gelu", "FastGelu", "BiasGelu")


def is_gelu(node, producers, depth: int = 3) -> bool:
    """A GELU op, or the last ``Mul`` of the TorchScript exporter's erf form ``x*0.5*(1+erf(x/sqrt2))``."""
    if node is None:
        return False
    if node.op_type in GELU_OPS:
        return True
    if node.op_type != "Mul":
        return False

    def erf_above(n, left: int) -> bool:
        for t in n.input:
            p = producers.get(t)
            if p is None:
                continue
            if p.op_type == "Erf" or (left > 1 and p.op_type in ("Mul", "Add", "Div") and erf_above(p, left - 1)):
                return True
        return False

    return erf_above(node, depth)


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    return dict(sorted(Counter(n.op_type for n in model.graph.node).items()))


def _graph(model: onnx.ModelProto):
    producers = {o: n for n in model.graph.node for o in n.output}
    consts = {t.name for t in model.graph.initializer} | {
        o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    return producers, consts


def _dq_fed(tensor: str, producers, consts) -> bool:
    """``tensor`` is a ``DequantizeLinear`` output, or a Transpose of a dequantized constant (a weight
    ORT's QDQ quantizer stored behind the Transpose of a ``Gemm(transB=1)``; ORT folds it into QGemm)."""
    node = producers.get(tensor)
    if node is not None and node.op_type == "Transpose":
        node = producers.get(node.input[0])
        return node is not None and node.op_type == "DequantizeLinear" and node.input[0] in consts
    return node is not None and node.op_type == "DequantizeLinear"


def _source(tensor: str, producers, skip=("DequantizeLinear", "QuantizeLinear", "DynamicQuantizeLinear")):
    """The op that computed ``tensor``, looking through (de)quantization and layout-only ops."""
    node = producers.get(tensor)
    while node is not None and (node.op_type in skip or node.op_type in LAYOUT_OPS):
        node = producers.get(node.input[0])
    return node


def _has_weight(node, producers, consts) -> bool:
    """A constant among the first two inputs (directly, or through DequantizeLinear / Transpose)."""
    for t in node.input[:2]:
        while t and t not in consts and t in producers and producers[t].op_type in (
                "DequantizeLinear", "Transpose", "Cast"):
            t = producers[t].input[0]
        if t in consts:
            return True
    return False


def summarize(model: onnx.ModelProto) -> dict:
    """``quantized_ops`` / ``float_ops`` / ``node_count`` for the manifest.

    In QDQ graphs a compute op whose data inputs (A and B) both come from ``DequantizeLinear`` runs
    as an int8 kernel after ORT's QDQ fusion; it is counted as ``"<Op>(QDQ)"`` (B may also be a
    Transpose of a dequantized weight: ORT folds that into ``QGemm``). Embedding lookups from an int8
    table count as ``"Gather(int8 table)"`` / ``"Gather(QDQ)"``.
    """
    producers, consts = _graph(model)
    int8_tables = {t.name for t in model.graph.initializer
                   if t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8) and len(t.dims) >= 2}
    quantized: Counter = Counter()
    floating: Counter = Counter()
    for node in model.graph.node:
        if node.op_type in INT8_OPS:
            quantized[node.op_type] += 1
        elif node.op_type == "Gather" and node.input and node.input[0] in int8_tables:
            quantized["Gather(int8 table)"] += 1
        elif node.op_type == "Gather" and node.input and producers.get(node.input[0]) is not None \
                and producers[node.input[0]].op_type == "DequantizeLinear":
            quantized["Gather(QDQ)"] += 1
        elif node.op_type in COMPUTE_OPS:
            data_inputs = [i for i in node.input[:2] if i]
            if data_inputs and all(_dq_fed(i, producers, consts) for i in data_inputs):
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


def group_counts(model: onnx.ModelProto) -> tuple[dict[str, Counter], dict[str, dict[str, str]]]:
    """Per ``op_groups`` group (see ``groups.py``): op type -> count, and notes, from the graph alone.

    static int8: QDQ-fed compute ops and Gathers, QLinear*/QGemm; dynamic int8: integer ops fed by
    ``DynamicQuantizeLinear`` (MatMulInteger, DynamicQuantizeMatMul, ...); int8 weights only: Gathers
    reading an int8 table directly; float: ``COMPUTE_OPS`` and ``NAMED_FLOAT_OPS`` not fed by Q/DQ.
    """
    producers, consts = _graph(model)
    int8_tables = {t.name for t in model.graph.initializer
                   if t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8) and len(t.dims) >= 2}
    counts = {g: Counter() for g in ("static int8", "dynamic int8", "int8 weights only", "float")}
    gelu_fed = Counter()          # dynamic int8 op -> how many read a GELU output
    float_matmuls = Counter()     # "activation" | "weight"
    for node in model.graph.node:
        op = node.op_type
        if op in INTEGER_FORMS:
            base = INTEGER_FORMS[op]
            first = producers.get(node.input[0]) if node.input else None
            dynamic = op in ALWAYS_DYNAMIC or (first is not None and first.op_type == "DynamicQuantizeLinear")
            group = "dynamic int8" if dynamic else "static int8"
            counts[group][base] += 1
            if dynamic:
                src = _source(node.input[0], producers)
                gelu_fed[base] += int(is_gelu(src, producers))
        elif op == "Gather" and node.input and node.input[0] in int8_tables:
            counts["int8 weights only"]["Gather"] += 1
        elif op == "Gather" and node.input and _dq_fed(node.input[0], producers, consts):
            counts["static int8"]["Gather"] += 1
        elif op in COMPUTE_OPS or op in NAMED_FLOAT_OPS:
            # a compute op between DQs fuses into an integer kernel; a softmax/norm/activation between
            # Q/DQ still computes in float (ORT has no QDQ fusion for LayerNorm/Gelu/Tanh here)
            data_inputs = [i for i in node.input[:2] if i] if op in COMPUTE_OPS else []
            if data_inputs and all(_dq_fed(i, producers, consts) for i in data_inputs):
                counts["static int8"][op] += 1
            else:
                counts["float"][op] += 1
                if op == "MatMul":
                    float_matmuls["weight" if _has_weight(node, producers, consts) else "activation"] += 1
    notes: dict[str, dict[str, str]] = {}
    for op, n in gelu_fed.items():
        if n and n == counts["dynamic int8"][op]:
            notes.setdefault("dynamic int8", {})[op] = "GELU-fed (FFN output)"
    if float_matmuls:
        act, weight = float_matmuls["activation"], float_matmuls["weight"]
        notes["float"] = {"MatMul": "attention (activation×activation)" if not weight else
                          f"{act} attention (activation×activation), {weight} with a weight" if act else
                          "with a weight"}
    return counts, notes
