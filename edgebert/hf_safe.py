"""Loading Hugging Face files from directories edgebert did not write, without running their code.

Model directories and artifact directories come from users, caches and pull requests. transformers
can execute Python shipped next to a checkpoint (``auto_map`` + ``trust_remote_code``) and unpickle
``pytorch_model.bin``; edgebert never allows the first and allows the second only through torch's
``weights_only`` unpickler (tensors and plain containers, no code). safetensors is preferred.
Kept free of torch imports so ``check`` can load a tokenizer cheaply.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import UsageError

SAFETENSORS = ("model.safetensors", "model.safetensors.index.json")


def weight_kwargs(directory: str | os.PathLike) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments for a local model directory: safetensors when present,
    else pickle weights through ``weights_only`` loading; never remote code."""
    has_safetensors = any((Path(directory) / name).is_file() for name in SAFETENSORS)
    return {"use_safetensors": has_safetensors, "weights_only": True, "trust_remote_code": False}


def _links_out(directory: Path, within: Path) -> str | None:
    """The first file under ``directory`` that resolves outside ``within`` (a symlink leading out)."""
    root = within.resolve()
    for base, dirs, files in os.walk(directory, followlinks=False):
        for name in dirs + files:
            path = Path(base) / name
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                return str(path.relative_to(directory))
    return None


def load_tokenizer(directory: str | os.PathLike, within: str | os.PathLike | None = None):
    """A tokenizer from ``directory``; any failure is one usage error. ``within``: the artifact
    directory its files must stay inside (a symlinked vocabulary must not read a file elsewhere)."""
    from transformers import AutoTokenizer

    directory = Path(directory)
    if within is not None:
        escaped = _links_out(directory, Path(within))
        if escaped:
            raise UsageError(f"{directory}: {escaped} is a symlink leading outside {within}; refusing to read it")
    try:
        return AutoTokenizer.from_pretrained(str(directory), trust_remote_code=False)
    except Exception as exc:  # transformers raises many types for bad files; all mean "not a tokenizer"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise UsageError(f"{directory}: cannot load the tokenizer ({first})") from None
