"""Architecture registry: everything edgebert knows about one model family lives in its entry.

Each supported family registers an :class:`Architecture` (see ``distilbert.py``, ``squeezebert.py``).
Export, quantization and the built-in model builder ask the entry instead of branching on names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from ..errors import UsageError


@dataclass(frozen=True)
class Architecture:
    """What is specific to one model family.

    - ``model_type``: the ``config.json`` value that identifies it.
    - ``model_class`` / ``config_class``: the stock transformers classes (users' checkpoints use them).
    - ``tiny_config``: a few-layer random config for tests (real model, small sizes).
    - ``from_bert``: maps BERT encoder weights (all-MiniLM-L6-v2) into this family's state dict.
    - ``layers``: returns the ``nn.ModuleList`` of encoder layers (for partial fine-tuning).
    - ``onnx_rewrites``: names of ONNX graph rewrites applied before int8 quantization
      (e.g. SqueezeBERT's 1x1 Conv -> MatMul), read by ``edgebert.quantize``.
    - ``quantize_notes``: per-family quantization facts, recorded in the manifest.
    - ``size_fields``: config fields that size the network (each a positive integer); a wrong value would
      build another network than the weights describe, so loading checks them.
    """

    name: str
    model_type: str
    model_class: type
    config_class: type
    description: str
    tiny_config: Callable[..., object]
    bert_config: Callable[[dict, int], object]
    from_bert: Callable[[dict[str, torch.Tensor], object], dict[str, torch.Tensor]]
    layers: Callable[[torch.nn.Module], torch.nn.ModuleList]
    onnx_rewrites: tuple[str, ...] = ()
    quantize_notes: dict = field(default_factory=dict)
    size_fields: tuple[str, ...] = ()


_REGISTRY: dict[str, Architecture] = {}


def register(arch: Architecture) -> Architecture:
    _REGISTRY[arch.name] = arch
    return arch


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get(name: str) -> Architecture:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UsageError(f"unsupported architecture {name!r}; supported: {', '.join(names())}") from None


def for_model_type(model_type: str | None, where: str) -> Architecture:
    """The entry for a ``config.json`` model_type; a clear usage error naming the supported ones."""
    for arch in _REGISTRY.values():
        if arch.model_type == model_type:
            return arch
    raise UsageError(
        f"{where}: unsupported architecture {model_type!r}; edgebert supports {' and '.join(names())}"
    )
