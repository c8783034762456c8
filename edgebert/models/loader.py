"""Resolve a model argument (built-in name, local dir, hub id) to a classifier and its tokenizer."""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import UsageError
from ..fsutil import sha256_file
from ..hf_safe import load_tokenizer, weight_kwargs
from . import registry


@dataclass
class LoadedModel:
    """A classifier in eval mode, its tokenizer, its registry entry and where it came from."""

    model: torch.nn.Module
    tokenizer: Any
    arch: registry.Architecture
    source: dict[str, Any]

    @property
    def id2label(self) -> dict[int, str]:
        return {int(k): v for k, v in self.model.config.id2label.items()}


def _looks_like_path(arg: str) -> bool:
    return arg.startswith((".", "/", "~")) or os.sep in arg.rstrip(os.sep) and arg.count("/") != 1


def _dir_hashes(directory: Path) -> dict[str, str]:
    out = {}
    for name in ("config.json", "model.safetensors", "pytorch_model.bin"):
        if (directory / name).is_file():
            out[name] = sha256_file(directory / name)
    return out


def _load_dir(directory: Path, kind: str, label: str) -> LoadedModel:
    """Stock classes only, no remote code, safetensors first, pickle weights only via weights_only."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the CLI has its own progress; tqdm bars would interleave

    cfg_path = directory / "config.json"
    if not cfg_path.is_file():
        raise UsageError(f"{directory}: no config.json (expected a Hugging Face model directory)")
    try:
        model_type = json.loads(cfg_path.read_text(encoding="utf-8")).get("model_type")
    except json.JSONDecodeError as exc:
        raise UsageError(f"{cfg_path}: not valid JSON ({exc.msg})") from None
    arch = registry.for_model_type(model_type, str(directory))
    try:
        model = arch.model_class.from_pretrained(directory, **weight_kwargs(directory))
    except pickle.UnpicklingError:
        raise UsageError(f"{directory}: refusing to load pytorch_model.bin: torch's weights_only loader rejected "
                         f"it (a pickle may carry code, edgebert never runs it); provide model.safetensors") from None
    except (OSError, ValueError, RuntimeError) as exc:
        raise UsageError(f"{directory}: cannot load {arch.name} weights ({str(exc).splitlines()[0]})") from None
    tokenizer = load_tokenizer(directory)
    model.eval()
    source = {"kind": kind, "id": label, "path": str(directory.resolve()), "sha256": _dir_hashes(directory)}
    return LoadedModel(model, tokenizer, arch, source)


def _load_hub(model_id: str) -> LoadedModel:
    """A hub id: works for users with network access; here (offline) it fails with a clear line."""
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(model_id, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"])
    except Exception as exc:  # hub errors come in many types; all mean "could not fetch"
        raise UsageError(
            f"{model_id!r} is not a built-in model ({', '.join(registry.names())}), not a local directory, "
            f"and could not be fetched from the Hugging Face hub ({type(exc).__name__}); pass a local directory"
        ) from None
    return _load_dir(Path(local), "hub", model_id)


def load_classifier(arg: str, progress=None) -> LoadedModel:
    """``distilbert``/``squeezebert`` (built-in, built on first use), a local dir, or a hub id."""
    if arg in registry.names():
        from .builtin import builtin_dir

        return _load_dir(builtin_dir(arg, progress=progress), "builtin", arg)
    path = Path(arg).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"{arg}: not a directory (expected a Hugging Face model directory)")
        return _load_dir(path, "local", arg)
    if _looks_like_path(arg):
        raise UsageError(f"{arg}: no such directory")
    return _load_hub(arg)
