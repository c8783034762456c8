"""Input fingerprints: what an artifact (or a check) was made from, as one sha256.

A build step is reused when the fingerprint recorded for its outputs in the manifest equals the one
computed now and every output file still matches its recorded sha256. A fingerprint covers:

- the model: sha256 of every file of the model directory (built-in models: their cache directory;
  hub ids: the id, since the weights are only known after download);
- the step's settings (the frozen settings dataclass, as JSON);
- the data files the step reads (sha256 of the calibration or evaluation file);
- the versions of the tools that shape the output (edgebert, torch, onnxruntime, ...);
- the fingerprints of the step's inputs (quantize: the export's; check: every artifact's sha256).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..fsutil import sha256_file
from ..manifest import package_versions

# Packages whose version changes an output, per step.
STEP_PACKAGES = {
    "export": ("torch", "transformers", "tokenizers", "onnx", "onnxscript", "onnxruntime", "litert-torch"),
    "quantize": ("onnx", "onnxruntime", "ai-edge-quantizer", "ai-edge-litert", "numpy"),
    "check": ("onnxruntime", "ai-edge-litert", "numpy", "tokenizers", "transformers"),
}


def digest(obj: Any) -> str:
    """sha256 of a JSON-serialisable object (keys sorted, paths as strings)."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_digest(path: Path | None) -> str | None:
    return None if path is None else sha256_file(path) if Path(path).is_file() else f"missing:{path}"


def tree_digest(directory: Path) -> dict[str, str]:
    """sha256 of every regular file under ``directory`` (relative path -> digest), hidden files skipped."""
    out = {}
    for p in sorted(Path(directory).rglob("*")):
        rel = p.relative_to(directory)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            out[str(rel)] = sha256_file(p)
    return out


def model_inputs(source: str, progress=None) -> dict[str, Any]:
    """What identifies a model argument's weights and tokenizer, without loading it."""
    from ..models import catalog

    if source in catalog.names():
        from ..models.builtin import builtin_dir

        directory = builtin_dir(source, progress=progress)  # built on first use (cached)
        return {"kind": "builtin", "name": source, "cache_key": directory.name, "files": tree_digest(directory)}
    path = Path(source).expanduser()
    if path.is_dir():
        return {"kind": "local", "path": str(path.resolve()), "files": tree_digest(path)}
    return {"kind": "hub", "id": source}


def versions(step: str) -> dict[str, str]:
    all_versions = package_versions()
    keep = ("python", "edgebert", *STEP_PACKAGES[step])
    return {k: v for k, v in all_versions.items() if k in keep}


def fingerprint(step: str, **inputs: Any) -> dict[str, Any]:
    """``{"sha256": ..., "inputs": {...}}`` for a step: its inputs plus the tool versions."""
    record = {"step": step, **inputs, "versions": versions(step)}
    return {"sha256": digest(record), "inputs": record}
