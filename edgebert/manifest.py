"""manifest.json: the record every command reads and extends (inputs, versions, hashes, metrics).

An artifact directory is the unit commands compose through: ``export`` creates it, ``quantize`` adds
artifacts, ``check`` adds metrics and ``report.json``. An artifact enters the manifest only after its
file is complete and validated, so the manifest never points at a missing or half-written file.

A manifest is untrusted input (directories travel between CI jobs): ``load`` checks it against the
schema (``manifest_schema``) and every path it names against the directory (``safepath``) before any
command reads, writes or removes a file, and ``remove_artifact_file`` removes only provably own files.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from . import safepath
from .errors import UsageError
from .fsutil import sha256_file, write_json_atomic
from .manifest_schema import FORMATS, PRECISIONS, SCHEMA_VERSION, SchemaError, inside_path, validate  # noqa: F401

MANIFEST_NAME = "manifest.json"
MAX_MANIFEST_BYTES = 64 << 20  # metrics of every artifact and device fit in far less
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
        """Read and validate an artifact directory's manifest; a clear usage error when it is not one."""
        directory = Path(directory)
        if not directory.exists():
            raise UsageError(f"{directory}: no such directory")
        if not directory.is_dir():
            raise UsageError(f"{directory}: not a directory (expected an edgebert artifact directory)")
        path = directory / MANIFEST_NAME
        if not os.path.lexists(path):
            raise UsageError(
                f"{directory}: no {MANIFEST_NAME}; create the directory with `edgebert export MODEL -o {directory}`"
            )
        data = _read_json(directory, path)
        try:
            validate(data, directory)
        except SchemaError as exc:
            raise UsageError(f"{path}: {exc}") from None
        return cls(directory, data)

    @classmethod
    def load_existing(cls, directory: str | Path) -> "Manifest | None":
        """The validated manifest, or None when there is none yet (a new or plain directory)."""
        directory = Path(directory)
        if not directory.is_dir() or not os.path.lexists(directory / MANIFEST_NAME):
            return None
        return cls.load(directory)

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
        return self._inside("tokenizer.path", self.data["tokenizer"]["path"])

    def artifact_path(self, name: str) -> Path:
        return self._inside(f"artifacts[{json.dumps(name)}].path", self.artifacts[name]["path"])

    def _inside(self, key: str, value: Any) -> Path:
        """Checked again on every use: a symlink planted after ``load`` still cannot lead outside."""
        try:
            inside_path(value, key, self.directory)
        except SchemaError as exc:
            raise UsageError(f"{self.directory / MANIFEST_NAME}: {exc}") from None
        return self.directory / value

    def reference_artifact(self, fmt: str) -> str | None:
        """Name of the fp32 artifact of a format (the reference for agreement and speed-up)."""
        for name, rec in self.artifacts.items():
            if rec["format"] == fmt and rec["precision"] == "fp32":
                return name
        return None

    def add_artifact(self, name: str, record: dict[str, Any]) -> dict[str, Any]:
        """Record a complete, validated artifact file (hash and size are computed here)."""
        path = safepath.resolve_inside(self.directory, record["path"])
        if not path.is_file():
            raise FileNotFoundError(path)
        if record.get("precision") not in PRECISIONS:
            raise ValueError(f"unknown precision {record.get('precision')!r}")
        if record.get("format") not in FORMATS:
            raise ValueError(f"unknown format {record.get('format')!r}")
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

    def remove_artifact_file(self, name: str) -> safepath.Removal:
        """Remove the file of artifact ``name`` only if edgebert provably made it (see ``safepath``)."""
        rec = self.artifacts[name]
        return safepath.remove_made_file(self.directory, rec.get("path"), rec.get("sha256"))


def _read_json(directory: Path, path: Path) -> Any:
    """manifest.json's data: a regular file inside ``directory`` (not a symlink out, a FIFO or a huge file)."""
    try:
        safepath.resolve_inside(directory, MANIFEST_NAME)
    except safepath.UnsafePath as exc:
        raise UsageError(f"{path}: {exc}; refusing to read it") from None
    if not path.is_file():
        raise UsageError(f"{path}: not a regular file")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise UsageError(f"{path}: larger than {MAX_MANIFEST_BYTES >> 20} MB; not an edgebert manifest")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, too-long ints, nesting
        reason = " ".join(str(exc).split())[:200] if not isinstance(exc, RecursionError) else "nested too deeply"
        raise UsageError(f"{path}: not valid JSON ({reason})") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror})") from None
