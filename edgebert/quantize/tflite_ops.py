"""``op_groups`` accounting of a quantized ``.tflite`` (see ``groups.py``): from ``inspect_model``'s
``quantized_ops`` / ``float_ops`` (the matmul-class ops, by the types of their inputs) plus one walk of
the flatbuffer for the softmax, normalization and activation ops and for what feeds each layer.

litert-torch decomposes LayerNorm into MEAN / SQUARED_DIFFERENCE / RSQRT (+ elementwise SUB/MUL/ADD,
not counted), so those three stand for LayerNorm in the ``float`` group (with a note saying so).
"""

from __future__ import annotations

from collections import Counter

#: ``inspect_model`` kind -> group.
KINDS = {"int8": "static int8", "int16x8": "static int8", "dynamic-range": "dynamic int8",
         "int8 table": "int8 weights only"}
#: Named float ops besides the matmul-class ones, and a note for the ones that need it.
NAMED_FLOAT_OPS = ("SOFTMAX", "GELU", "TANH", "RELU", "LOGISTIC", "MEAN", "SQUARED_DIFFERENCE", "RSQRT")
LAYERNORM_PARTS = ("MEAN", "SQUARED_DIFFERENCE", "RSQRT")
MATMUL_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")
PASS_THROUGH = ("RESHAPE", "TRANSPOSE", "SQUEEZE", "EXPAND_DIMS",
                # channels-last SqueezeBERT: a grouped layer reads its group's channel SLICE
                "SLICE", "STRIDED_SLICE")
FLOAT32 = 0  # TensorType.FLOAT32


def _walk(data: bytes) -> dict:
    """Counts needing the graph: float named ops, GELU-fed dynamic-range layers, act×act BATCH_MATMULs."""
    from ..devices.litert import model_and_op_names

    model, codes = model_and_op_names(data)

    def constant(sg, t: int) -> bool:
        buf = sg.Tensors(t).Buffer()
        b = model.Buffers(buf) if 0 < buf < model.BuffersLength() else None
        return b is not None and (b.DataLength() > 0 or b.Offset() > 1)

    named, gelu_fed, act_bmm, bmm = Counter(), Counter(), 0, 0
    for s in range(model.SubgraphsLength()):
        sg = model.Subgraphs(s)
        ops = [sg.Operators(j) for j in range(sg.OperatorsLength())]
        producer = {op.Outputs(k): op for op in ops for k in range(op.OutputsLength())}

        def source(t: int):
            op = producer.get(t)
            while op is not None and codes[op.OpcodeIndex()] in PASS_THROUGH and op.InputsLength():
                op = producer.get(op.Inputs(0))
            return codes[op.OpcodeIndex()] if op is not None else None

        for op in ops:
            code = codes[op.OpcodeIndex()]
            first = op.Inputs(0) if op.InputsLength() else -1
            is_float = first >= 0 and int(sg.Tensors(first).Type()) == FLOAT32
            if code in NAMED_FLOAT_OPS and is_float:
                named[code] += 1
            elif code in MATMUL_OPS and is_float and source(first) == "GELU":
                gelu_fed[code] += 1
            elif code == "BATCH_MATMUL":
                bmm += 1
                act_bmm += not any(constant(sg, op.Inputs(k)) for k in range(op.InputsLength()) if op.Inputs(k) >= 0)
    return {"named": named, "gelu_fed": gelu_fed, "bmm": bmm, "act_bmm": act_bmm,
            "signatures": int(model.SignatureDefsLength()), "subgraphs": int(model.SubgraphsLength())}


def group_counts(data: bytes, info: dict) -> tuple[dict[str, Counter], dict[str, dict[str, str]], int | None]:
    """Per group: op type -> count over the whole file, notes, and the number of signatures when each
    has its own subgraph (edgebert's exports: then the counts divide down to one signature), else None."""
    counts = {g: Counter() for g in ("static int8", "dynamic int8", "int8 weights only", "float")}
    for key, n in info["quantized_ops"].items():
        op, _, kind = key.partition("(")
        counts[KINDS[kind.rstrip(")")]][op] += n
    counts["float"].update(info["float_ops"])
    graph = _walk(data)
    counts["float"].update(graph["named"])
    notes: dict[str, dict[str, str]] = {}
    for op, n in graph["gelu_fed"].items():
        if n == counts["dynamic int8"][op]:
            notes.setdefault("dynamic int8", {})[op] = "GELU-fed (FFN output)"
    if graph["bmm"] and graph["act_bmm"] == graph["bmm"] == counts["float"]["BATCH_MATMUL"]:
        notes.setdefault("float", {})["BATCH_MATMUL"] = "attention (activation×activation)"
    for op in LAYERNORM_PARTS:
        if counts["float"][op]:
            notes.setdefault("float", {})[op] = "LayerNorm, decomposed by the converter"
    if any(k.endswith("(int16x8)") for k in info["quantized_ops"]):
        for key in info["quantized_ops"]:
            if key.endswith("(int16x8)"):
                notes.setdefault("static int8", {})[key.partition("(")[0]] = "int16 activations, int8 weights"
    one_each = graph["signatures"] == graph["subgraphs"] and graph["subgraphs"] >= 1
    return counts, notes, (graph["subgraphs"] if one_each else None)
