"""What ran in each int8 artifact, read once from the manifest for every report (markdown, HTML, build).

"int8-static" alone hides that attention stays float and the GELU-fed layers run dynamic int8: the
manifest's ``quantization.op_groups`` (``quantize/groups.py``) says which op types ran how, with
counts. Read here, formatted by the renderers with :func:`text`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..manifest_schema import OP_GROUPS


@dataclass(frozen=True)
class Group:
    name: str                                 # "static int8" | "dynamic int8" | "int8 weights only" | "float"
    ops: tuple[tuple[str, int, str | None], ...]  # (op type, count, note), most frequent first


@dataclass(frozen=True)
class Recipe:
    artifact: str
    format: str
    precision: str
    groups: tuple[Group, ...]                 # in OP_GROUPS order, empty groups left out
    target: str | None = None                 # ONNX dynamic: the target preset ("x86-vnni") and how it was chosen
    scope: str | None = None                  # "per signature (2 signatures)" when not the whole graph
    description: str | None = None            # the recipe's own one-line description


def _target(q: dict[str, Any]) -> str | None:
    target = q.get("target")
    if not isinstance(target, dict) or not isinstance(target.get("name"), str):
        return None
    chosen = target.get("chosen")
    return target["name"] + (f" ({chosen})" if isinstance(chosen, str) and chosen else "")


def _scope(q: dict[str, Any]) -> str | None:
    scope = q.get("op_groups_scope") or {}
    per, n = scope.get("per"), scope.get("signatures")
    if per in (None, "graph"):
        return None
    return f"per {per}" + (f" ({n} signatures)" if n else "")


def _group(entry: dict[str, Any]) -> Group:
    notes = entry.get("notes") or {}
    return Group(entry["group"], tuple((op, int(n), notes.get(op)) for op, n in entry["ops"].items()))


def recipes(manifest: dict[str, Any] | None) -> list[Recipe]:
    """The recipe of every quantized artifact of a manifest (its ``data``), in manifest order.

    Artifacts without ``op_groups`` (fp32, or quantized by an older edgebert) are left out.
    """
    out = []
    for name, rec in ((manifest or {}).get("artifacts") or {}).items():
        q = rec.get("quantization") or {}
        entries = q.get("op_groups") or []
        if not entries:
            continue
        order = {g: i for i, g in enumerate(OP_GROUPS)}
        groups = tuple(_group(e) for e in sorted(entries, key=lambda e: order.get(e["group"], len(order))))
        out.append(Recipe(artifact=name, format=rec.get("format", "?"), precision=rec.get("precision", "?"),
                          groups=groups, target=_target(q), scope=_scope(q),
                          description=q.get("recipe_description") or None))
    return out


def ops_text(group: Group) -> str:
    """e.g. "MatMul×6 [GELU-fed (FFN output)], Gather×2"."""
    return ", ".join(f"{op}×{n}" + (f" [{note}]" if note else "") for op, n, note in group.ops)


def extras(recipe: Recipe) -> list[str]:
    """The target preset and the scope of the counts, when the manifest has them."""
    return [e for e in (f"target {recipe.target}" if recipe.target else "",
                        f"counted {recipe.scope}" if recipe.scope else "") if e]


def text(recipe: Recipe) -> str:
    """e.g. "static int8: MatMul×30, Gather×2 · dynamic int8: MatMul×6 [GELU-fed (FFN output)] · float: ...",
    then the target preset and the scope of the counts when known."""
    return " · ".join(f"{g.name}: {ops_text(g)}" for g in recipe.groups) + "".join(f"; {e}" for e in extras(recipe))
