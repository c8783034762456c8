"""Named ONNX graph rewrites applied before quantizing, chosen per architecture by the registry.

An architecture entry lists rewrite names in ``onnx_rewrites``; this module maps each name to a
function ``ModelProto -> int`` (rewrites the graph in place, returns how many sites it changed), so
per-family graph surgery lives here and quantization code never branches on architecture names.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import EdgebertError

Rewrite = Callable[[onnx.ModelProto], int]
_REWRITES: dict[str, Rewrite] = {}


def register(name: str) -> Callable[[Rewrite], Rewrite]:
    def deco(fn: Rewrite) -> Rewrite:
        _REWRITES[name] = fn
        return fn
    return deco


def names() -> tuple[str, ...]:
    return tuple(_REWRITES)


def apply(model: onnx.ModelProto, rewrite_names: tuple[str, ...] | list[str]) -> list[dict]:
    """Apply rewrites in order (in place); one ``{"name", "sites"}`` record per rewrite."""
    applied = []
    for name in rewrite_names:
        if name not in _REWRITES:
            raise EdgebertError(f"unknown ONNX rewrite {name!r} (known: {', '.join(names())})")
        applied.append({"name": name, "sites": _REWRITES[name](model)})
    return applied


class _Names:
    """Fresh tensor/node names that cannot collide with the graph's own."""

    def __init__(self, graph: onnx.GraphProto, prefix: str):
        self.prefix, self.i = prefix, 0
        self.taken = {t for n in graph.node for t in (*n.input, *n.output, n.name)}
        self.taken |= {t.name for t in graph.initializer} | {t.name for t in graph.input}

    def __call__(self, hint: str) -> str:
        while True:
            self.i += 1
            name = f"{self.prefix}/{hint}_{self.i}"
            if name not in self.taken:
                self.taken.add(name)
                return name


@register("conv1x1_to_matmul")
def conv1x1_to_matmul(model: onnx.ModelProto) -> int:
    """Rewrite every 1-D, kernel-1 ``Conv`` with a constant weight as MatMul on channels-last data.

    ``Conv(X[N,C,W], w[O, C/g, 1], group=g)`` is ``g`` independent products over channels. ORT
    quantizes ``Conv`` to ``ConvInteger`` (slow or missing kernels), but ``MatMul`` with a constant
    2-D ``B`` to its fast prepacked int8 GEMM. So: ``Transpose(X)->[N,W,C]``, then per group
    ``MatMul(x_g, w_g^T)`` (``Split``/``Concat`` over channels when g>1), ``+ bias``, and
    ``Transpose`` back to ``[N,O,W]``. The boundary transposes cancel against SqueezeBERT's own
    ``permute`` nodes in ORT's transpose optimizer. Per-group 2-D weights keep the int8 weight size
    (a block-diagonal dense weight would be g times bigger and do g times the work).
    """
    graph = model.graph
    inits = _constants(graph)
    fresh = _Names(graph, "conv1x1")
    new_nodes: list[onnx.NodeProto] = []
    new_inits: list[onnx.TensorProto] = []
    dead_inits: set[str] = set()
    count = 0
    for node in graph.node:
        if not _is_conv1x1(node, inits):
            new_nodes.append(node)
            continue
        count += 1
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        group = int(attrs.get("group", 1))
        w = numpy_helper.to_array(inits[node.input[1]])  # [O, C/g, 1]
        out_ch, in_per_group = w.shape[0], w.shape[1]
        out_per_group = out_ch // group
        base = node.name or "conv"
        xt = fresh("x_nwc")
        new_nodes.append(helper.make_node("Transpose", [node.input[0]], [xt], perm=[0, 2, 1],
                                          name=fresh(f"{base}_in_transpose")))
        parts = [xt]
        if group > 1:
            split = fresh("split_sizes")
            new_inits.append(numpy_helper.from_array(np.full(group, in_per_group, np.int64), split))
            parts = [fresh("x_group") for _ in range(group)]
            new_nodes.append(helper.make_node("Split", [xt, split], parts, axis=-1, name=fresh(f"{base}_split")))
        outs = []
        for g, part in enumerate(parts):
            wg = w[g * out_per_group:(g + 1) * out_per_group, :, 0].T.copy()  # [C/g, O/g]
            wname = fresh(f"{base}_w{g}")
            new_inits.append(numpy_helper.from_array(wg.astype(w.dtype), wname))
            out = fresh("y_group")
            new_nodes.append(helper.make_node("MatMul", [part, wname], [out], name=fresh(f"{base}_matmul")))
            outs.append(out)
        y = outs[0]
        if group > 1:
            y = fresh("y_nwc")
            new_nodes.append(helper.make_node("Concat", outs, [y], axis=-1, name=fresh(f"{base}_concat")))
        if len(node.input) > 2 and node.input[2]:
            yb = fresh("y_bias")
            new_nodes.append(helper.make_node("Add", [y, node.input[2]], [yb], name=fresh(f"{base}_bias")))
            y = yb
        new_nodes.append(helper.make_node("Transpose", [y], [node.output[0]], perm=[0, 2, 1],
                                          name=fresh(f"{base}_out_transpose")))
        dead_inits.add(inits[node.input[1]].name)
    if not count:
        return 0
    still_used = {t for n in new_nodes for t in n.input}
    kept = [t for t in graph.initializer if t.name not in dead_inits or t.name in still_used]
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)
    del graph.node[:]
    graph.node.extend(new_nodes)
    return count


def _constants(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    """Initializers by name, plus ``Identity`` outputs of initializers (the TorchScript exporter shares
    equal tensors, e.g. all-zero biases, through Identity nodes)."""
    consts = {t.name: t for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Identity" and n.input and n.input[0] in consts:
            consts[n.output[0]] = consts[n.input[0]]
    return consts


def _is_conv1x1(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> bool:
    if node.op_type != "Conv" or node.domain not in ("", "ai.onnx") or node.input[1] not in inits:
        return False
    if len(inits[node.input[1]].dims) != 3 or inits[node.input[1]].dims[2] != 1:
        return False
    if len(node.input) > 2 and node.input[2] and node.input[2] not in inits:
        return False
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET", "VALID"):
        return False
    return (list(attrs.get("strides", [1])) == [1] and list(attrs.get("dilations", [1])) == [1]
            and not any(attrs.get("pads", [0, 0])))
