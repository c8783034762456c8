"""``quantization["op_groups"]``: which ops of an int8 artifact run how, and why; one schema for every format.

A list in a fixed order, groups without ops left out::

    [{"group": "static int8", "ops": {"MatMul": 30, "Gather": 2}, "why": "..."},
     {"group": "dynamic int8", "ops": {"MatMul": 6}, "why": "...", "notes": {"MatMul": "GELU-fed (FFN output)"}},
     {"group": "float", "ops": {"MatMul": 12, "Softmax": 6, ...}, "why": "...",
      "notes": {"MatMul": "attention (activation×activation)"}}]

- ``static int8``: int8 weights and int8 activations with scales fixed at calibration;
- ``dynamic int8``: int8 weights, activation scale computed per run;
- ``int8 weights only``: an int8 table read and dequantized (embedding lookups), no int8 arithmetic;
- ``float``: the matmul-class, softmax, normalization and activation ops that compute in float.
  Elementwise arithmetic (residual/bias/mask adds, scale multiplies) and data movement are not counted.

``ops`` (most frequent first) are counted from the quantized graph by op type in the format's own names (ONNX ``MatMul``,
TFLite ``FULLY_CONNECTED``); integer forms are counted under the op they implement (``MatMulInteger``
-> ``MatMul``). ``notes`` (optional) qualify one op type of a group. The ``why`` texts come from the
recipe. A TFLite file holds one subgraph per signature; its groups count one signature (see
``quantization["op_groups_scope"]``).
"""

from __future__ import annotations

from collections import Counter
from typing import Mapping

from ..manifest_schema import OP_GROUPS as GROUPS  # one list: the schema checks what this module writes


def assemble(counts: Mapping[str, Counter], notes: Mapping[str, Mapping[str, str]],
             why: Mapping[str, str]) -> list[dict]:
    """The ``op_groups`` list from per-group op counts, per-group notes and the recipe's reasons."""
    unknown = set(counts) - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown op groups {sorted(unknown)}")
    out = []
    for group in GROUPS:
        ops = {op: n for op, n in sorted((counts.get(group) or {}).items(), key=lambda kv: (-kv[1], kv[0])) if n}
        if not ops:
            continue
        entry = {"group": group, "ops": ops, "why": why.get(group, "")}
        group_notes = {op: text for op, text in (notes.get(group) or {}).items() if op in ops}
        if group_notes:
            entry["notes"] = dict(sorted(group_notes.items()))
        out.append(entry)
    return out


def per_signature(counts: Mapping[str, Counter], signatures: int) -> tuple[dict[str, Counter], bool]:
    """Counts of a file with ``signatures`` identical subgraphs, divided down to one signature.

    Returns (counts, exact); when some count is not a multiple of ``signatures`` (subgraphs that differ)
    the file's counts come back unchanged with ``exact=False``.
    """
    if signatures <= 1 or any(n % signatures for c in counts.values() for n in c.values()):
        return {g: Counter(c) for g, c in counts.items()}, signatures <= 1
    return {g: Counter({op: n // signatures for op, n in c.items()}) for g, c in counts.items()}, True


def record(counts: Mapping[str, Counter], notes: Mapping[str, Mapping[str, str]], why: Mapping[str, str],
           signatures: int | None = None, scope_of_file: str = "graph") -> dict:
    """``op_groups`` and ``op_groups_scope`` for the manifest's ``quantization`` record.

    ``signatures``: a TFLite file's signature count (one subgraph each); its counts are given per
    signature when every subgraph has the same ops (scope ``{"per": "signature", "signatures": n}``),
    else per file. Without it the counts are of the whole file: ``{"per": scope_of_file}``.
    """
    if signatures is None:
        return {"op_groups": assemble(counts, notes, why), "op_groups_scope": {"per": scope_of_file}}
    counts, exact = per_signature(counts, signatures)
    scope = {"per": "signature" if exact else "file", "signatures": signatures}
    return {"op_groups": assemble(counts, notes, why), "op_groups_scope": scope}
