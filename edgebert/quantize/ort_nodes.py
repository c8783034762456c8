"""Node selection shared by the two ONNX Runtime int8 recipes (``dynamic.py``, ``static.py``).

Both recipes pick the same weight layers and hand ORT the same exclusion names; the pieces live here,
below both, so that neither recipe imports the other.
"""

from __future__ import annotations


def weight_layers(model, op_types) -> list[tuple[str, str]]:
    """(node, op type) of the nodes of ``op_types`` that read a float initializer of rank >= 2 (a weight)."""
    weights = {t.name for t in model.graph.initializer if len(t.dims) >= 2 and t.data_type == 1}
    return [(n.name, n.op_type) for n in model.graph.node
            if n.op_type in op_types and n.name and weights.intersection(n.input)]


def ort_names(exclude) -> list[str]:
    """Node names to give ORT's ``nodes_to_exclude``: its quantizer first splits a Gemm into MatMul + Add,
    naming the MatMul ``<gemm>_MatMul``, and checks exclusions on that name."""
    return sorted({*exclude, *(f"{n}_MatMul" for n in exclude)})
