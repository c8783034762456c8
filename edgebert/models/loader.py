"""Resolve a model argument (built-in name, local dir, hub id) to a classifier and its tokenizer."""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data import tokenizer_fit
from ..errors import UsageError
from ..fsutil import sha256_file
from ..hf_safe import load_tokenizer, weight_kwargs
from . import catalog, registry


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


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _load_config(arch: registry.Architecture, cfg_path: Path):
    """The stock config class, validated by transformers (types) and here (sizes, labels)."""
    try:
        config = arch.config_class.from_pretrained(cfg_path.parent)
    except Exception as exc:  # transformers/huggingface_hub raise many types for bad values; all mean "bad config"
        detail = " ".join(ln.strip() for ln in str(exc).strip().splitlines()[:2])[:300] or type(exc).__name__
        raise UsageError(f"{cfg_path}: invalid config ({detail})") from None
    problems = [f"{key} = {getattr(config, key)!r} (expected a positive integer)"
                for key in arch.size_fields
                if not isinstance(getattr(config, key, None), int) or getattr(config, key) < 1]
    id2label = getattr(config, "id2label", None) or {}
    if len(id2label) != config.num_labels:
        problems.append(f"num_labels = {config.num_labels} but id2label has {len(id2label)} entries")
    if problems:
        raise UsageError(f"{cfg_path}: invalid config ({'; '.join(problems)})")
    return config


def _load_weights(arch: registry.Architecture, directory: Path, config) -> torch.nn.Module:
    """Weights that fill the model exactly: a missing, unexpected or mis-shaped tensor is refused, never
    silently initialised at random (transformers would, with a warning a CI log buries)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its load report; edgebert states the problem in one line instead
    try:
        model, info = arch.model_class.from_pretrained(directory, config=config, output_loading_info=True,
                                                       ignore_mismatched_sizes=True, **weight_kwargs(directory))
    except pickle.UnpicklingError:
        raise UsageError(f"{directory}: refusing to load pytorch_model.bin: torch's weights_only loader rejected "
                         f"it (a pickle may carry code, edgebert never runs it); provide model.safetensors") from None
    except Exception as exc:  # safetensors, torch and transformers raise many types for damaged files
        raise UsageError(f"{directory}: cannot load {arch.name} weights ({type(exc).__name__}: "
                         f"{_first_line(exc)})") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    faults = []
    for key, what in (("missing_keys", "missing from the weights"), ("unexpected_keys", "not in the model"),
                      ("mismatched_keys", "of the wrong shape")):
        found = sorted(_key_name(k) for k in info.get(key) or ())
        if found:
            more = f" and {len(found) - 3} more" if len(found) > 3 else ""
            faults.append(f"{len(found)} tensor(s) {what} ({', '.join(found[:3])}{more})")
    if faults:
        raise UsageError(f"{directory}: the weights do not match config.json: {'; '.join(faults)}; "
                         f"a damaged file or a config from another model")
    return model


def _key_name(key) -> str:
    return key[0] if isinstance(key, tuple) else str(key)


def _load_dir(directory: Path, kind: str, label: str) -> LoadedModel:
    """Stock classes only, no remote code, safetensors first, pickle weights only via weights_only."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the CLI has its own progress; tqdm bars would interleave

    cfg_path = directory / "config.json"
    if not cfg_path.is_file():
        raise UsageError(f"{directory}: no config.json (expected a Hugging Face model directory)")
    try:
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{cfg_path}: not valid JSON ({exc.msg})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{cfg_path}: not UTF-8 text (a damaged file?)") from None
    if not isinstance(raw, dict):
        raise UsageError(f"{cfg_path}: expected a JSON object, found {type(raw).__name__}")
    model_type = raw.get("model_type")
    arch = registry.for_model_type(model_type, str(directory))
    config = _load_config(arch, cfg_path)
    model = _load_weights(arch, directory, config)
    tokenizer = load_tokenizer(directory)
    tokenizer_fit.check(tokenizer, getattr(model.config, "vocab_size", None), str(directory))
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
            f"{model_id!r} is not a built-in model ({', '.join(catalog.names())}), not a local directory, "
            f"and could not be fetched from the Hugging Face hub ({type(exc).__name__}); pass a local directory"
        ) from None
    return _load_dir(Path(local), "hub", model_id)


def load_classifier(arg: str, progress=None) -> LoadedModel:
    """A built-in name (``distilbert``, ``squeezebert``, ...: built on first use), a local dir, or a hub id."""
    if arg in catalog.names():
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
