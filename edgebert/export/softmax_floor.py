"""Keep masked attention scores out of the denormal range: ``Softmax(x)`` -> ``Softmax(Max(x, max(x) - 80))``.

BERT-family exports add a very negative mask (``finfo.min``) to the scores of padded keys. ONNX Runtime's
MLAS softmax clamps ``x - max`` at about -88.4 before its exponential, so every masked position's
exponential is computed in the subnormal (denormal) range, around 4e-39, and comes out as 0. On x86 each
subnormal operation is a slow micro-code assist, and a padded input is mostly masked positions: measured
on the built-in DistilBERT at 27 real tokens padded to 128, the Softmax kernels took 7.3-7.7 ms of a 24 ms
int8 inference (< 0.8 ms unpadded), and flush-to-zero on the calling thread removed it.

Raising every score to at least ``row max - 80`` changes a probability only where it was below
``e^-80 ~ 1.8e-35`` (it becomes about that, a normal float): the logits stay equal to well under 1e-6,
while no exponential leaves the normal range. The floor travels with the artifact (a user's own ORT
session with default options gets it); export validates the rewritten graph against PyTorch.
"""

from __future__ import annotations

import numpy as np

FLOOR = 80.0  # e^-80 is a normal float (FLT_MIN is e^-87.3); anything this far below the max is 0 in fp32 sums
WHY = ("every Softmax input raised to at least its row max - 80, so masked (padded) positions give e^-80 (a normal "
       "float) instead of denormals, which cost x86 a slow micro-code assist each; logits unchanged within 1e-6")


def floor_softmax_inputs(model) -> int:
    """Rewrite every ``Softmax`` over the last axis in place; returns how many were rewritten."""
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    count = 0
    nodes = list(graph.node)
    out = []
    floor_name = "edgebert_softmax_floor"
    for node in nodes:
        axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
        if node.op_type != "Softmax" or axis != -1 or node.input[0].endswith("/edgebert_floor/x"):  # or floored
            out.append(node)
            continue
        x = node.input[0]
        tag = f"{node.name or x}/edgebert_floor"
        if opset >= 18:
            axes = f"{tag}/axes"
            graph.initializer.append(numpy_helper.from_array(np.array([-1], np.int64), axes))
            reduce = helper.make_node("ReduceMax", [x, axes], [f"{tag}/max"], name=f"{tag}/ReduceMax", keepdims=1)
        else:
            reduce = helper.make_node("ReduceMax", [x], [f"{tag}/max"], name=f"{tag}/ReduceMax", axes=[-1],
                                      keepdims=1)
        sub = helper.make_node("Sub", [f"{tag}/max", floor_name], [f"{tag}/floor"], name=f"{tag}/Sub")
        clamp = helper.make_node("Max", [x, f"{tag}/floor"], [f"{tag}/x"], name=f"{tag}/Max")
        node.input[0] = f"{tag}/x"
        out.extend([reduce, sub, clamp, node])
        count += 1
    if count:
        graph.initializer.append(numpy_helper.from_array(np.array(FLOOR, np.float32), floor_name))
        del graph.node[:]
        graph.node.extend(out)
        onnx.checker.check_model(model)
    return count


def remove_floor(model) -> int:
    """Undo :func:`floor_softmax_inputs` in place (for targets where the floor costs more than it saves:
    ARM cores handle subnormals at full speed, and the floor's three ops per Softmax cost 1.4% (cortex-a53)
    to 2.7% (cortex-a76) more guest instructions on the built-in int8 DistilBERT). Returns how many."""
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    dropped: set[str] = set()
    for node in graph.node:
        clamp = producer.get(node.input[0]) if node.op_type == "Softmax" and node.input else None
        if clamp is not None and clamp.op_type == "Max" and clamp.name.endswith("/edgebert_floor/Max"):
            tag = clamp.name.removesuffix("/Max")
            node.input[0] = clamp.input[0]
            dropped.update({f"{tag}/ReduceMax", f"{tag}/Sub", f"{tag}/Max"})
    if dropped:
        kept = [n for n in graph.node if n.name not in dropped]
        del graph.node[:]
        graph.node.extend(kept)
        used = {i for n in graph.node for i in n.input}
        inits = [t for t in graph.initializer if t.name in used]
        del graph.initializer[:]
        graph.initializer.extend(inits)
    return len(dropped) // 3
