"""The built-in models by name: which architecture, which layout, built from what (no torch import).

``squeezebert`` is SqueezeBERT as its paper built it (grouped projections), distilled from
``squeezebert-dense``, which is the MiniLM encoder mapped exactly into SqueezeBERT's 1x1 convolutions
(every group 1: the same function as the ``distilbert`` built-in's encoder).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    architecture: str  # registry name
    description: str
    cache_stem: str  # cache entry name before the recipe version
    teacher: str | None = None  # grouped models are distilled from this built-in


BUILTINS = {m.name: m for m in (
    BuiltinModel("distilbert", "distilbert", "DistilBERT layout, MiniLM-L6 encoder (dense)", "distilbert"),
    BuiltinModel("squeezebert", "squeezebert",
                 "SqueezeBERT as in its paper: q/k/v, intermediate and output 1x1 convolutions in 4 groups",
                 "squeezebert-grouped4", teacher="squeezebert-dense"),
    BuiltinModel("squeezebert-dense", "squeezebert",
                 "SqueezeBERT with every group 1: the MiniLM encoder exactly (the grouped model's teacher)",
                 "squeezebert"),
)}


def names() -> tuple[str, ...]:
    return tuple(BUILTINS)


def get(name: str) -> BuiltinModel:
    return BUILTINS[name]
