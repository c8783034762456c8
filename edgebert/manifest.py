"""manifest.json: the record every command reads and extends (inputs, versions, hashes, metrics).

An artifact directory is the unit commands compose through: ``export`` creates it, ``quantize`` adds
artifacts, ``check`` adds metrics and ``report.json``. An artifact enters the manifest only after its
file is complete and validated, so the manifest never points at a missing or half-written file.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .errors import UsageError
from .fsutil import sha256_file, write_json_atomic

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1
PRECISIONS = ("fp32", "int8-dynamic", "int8-static")
TRACKED_PACKAGES = (
    "torch", "transformers", "tokenizers", "onnx", "onnxscript", "onnxruntime", "numpy",
    "litert-torch", "ai-edge-litert", "ai-edge-quantizer",
)


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """Versions of the installed packages that shape an artifact (missing ones are left out)."""
    out = {"python": platform.python_version(), "edgebert": __version__}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class Manifest:
    """In-memory view of ``<dir>/manifest.json``; ``save()`` writes it atomically."""

    directory: Path
    data: dict[str, Any] = field(default_factory=dict)

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def create(cls, directory: str | Path, model: dict[str, Any], tokenizer: dict[str, Any]) -> "Manifest":
        directory = Path(directory)
        data = {
            "schema_version": SCHEMA_VERSION,
            "created": now_iso(),
            "model": model,
            "tokenizer": tokenizer,
            "versions": package_versions(),
            "artifacts": {},
        }
        return cls(directory, data)

    @classmethod
    def load(cls, directory: str | Path) -> "Manifest":
        """Read an artifact directory's manifest; a clear usage error when it is not one."""
        directory = Path(directory)
        if not directory.exists():
            raise UsageError(f"{directory}: no such directory")
        if not directory.is_dir():
            raise UsageError(f"{directory}: not a directory (expected an edgebert artifact directory)")
        path = directory / MANIFEST_NAME
        if not path.exists():
            raise UsageError(
                f"{directory}: no {MANIFEST_NAME}; create the directory with `edgebert export MODEL -o {directory}`"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
            raise UsageError(f"{path}: unsupported manifest (schema_version {data.get('schema_version')!r})")
        return cls(directory, data)

    def save(self) -> None:
        self.data["updated"] = now_iso()
        write_json_atomic(self.directory / MANIFEST_NAME, self.data)

    # --- accessors ----------------------------------------------------------------------------
    @property
    def model(self) -> dict[str, Any]:
        return self.data["model"]

    @property
    def architecture(self) -> str:
        return self.data["model"]["architecture"]

    @property
    def artifacts(self) -> dict[str, dict[str, Any]]:
        return self.data["artifacts"]

    def tokenizer_dir(self) -> Path:
        return self.directory / self.data["tokenizer"]["path"]

    def artifact_path(self, name: str) -> Path:
        return self.directory / self.artifacts[name]["path"]

    def reference_artifact(self, fmt: str) -> str | None:
        """Name of the fp32 artifact of a format (the reference for agreement and speed-up)."""
        for name, rec in self.artifacts.items():
            if rec["format"] == fmt and rec["precision"] == "fp32":
                return name
        return None

    def add_artifact(self, name: str, record: dict[str, Any]) -> dict[str, Any]:
        """Record a complete, validated artifact file (hash and size are computed here)."""
        path = self.directory / record["path"]
        if not path.is_file():
            raise FileNotFoundError(path)
        if record.get("precision") not in PRECISIONS:
            raise ValueError(f"unknown precision {record.get('precision')!r}")
        full = {
            **record,
            "sha256": sha256_file(path),
            "size_bytes": path.stat().st_size,
            "created": now_iso(),
            "versions": package_versions(),
        }
        self.artifacts[name] = full
        return full

    def verify_artifact(self, name: str) -> Path:
        """Path of an artifact whose file still exists; a usage error otherwise."""
        path = self.artifact_path(name)
        if not path.is_file():
            raise UsageError(f"{path}: listed in {MANIFEST_NAME} but missing; re-run the command that made it")
        return path
