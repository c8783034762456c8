"""Export a classifier into an artifact directory: fp32 artifacts per format, each validated.

Exporters are a registry keyed by format name; ``export`` creates the directory's manifest, the
tokenizer copy every later command uses, and one validated fp32 artifact per requested format.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import UsageError
from ..fsutil import publish_dir
from ..manifest import Manifest
from ..models import LoadedModel, load_classifier
from .onnx import export_onnx
from .tflite import export_tflite

# format -> (file name, exporter(model, tokenizer, out_path, seq_len, atol, progress) -> record)
EXPORTERS: dict[str, tuple[str, Callable[..., dict]]] = {
    "onnx": ("model.onnx", export_onnx),
    "tflite": ("model.tflite", export_tflite),  # fixed input [1, seq_len], builtin ops only
}
TOKENIZER_DIR = "tokenizer"
DERIVED_FILES = ("report.json", "report.md", "report.html")


@dataclass(frozen=True)
class ExportSettings:
    formats: tuple[str, ...] = ("onnx",)
    seq_len: int = 128    # validation length (and the fixed length of static-shape formats)
    atol: float = 1e-4


def formats() -> tuple[str, ...]:
    return tuple(EXPORTERS)


def _model_record(loaded: LoadedModel) -> dict:
    cfg = loaded.model.config
    return {
        "architecture": loaded.arch.name,
        "model_class": type(loaded.model).__name__,
        "source": loaded.source,
        "num_labels": int(cfg.num_labels),
        "id2label": {str(k): v for k, v in loaded.id2label.items()},
        "label2id": {v: int(k) for k, v in loaded.id2label.items()},
        "max_position_embeddings": int(getattr(cfg, "max_position_embeddings", 512)),
        "parameters": int(sum(p.numel() for p in loaded.model.parameters())),
    }


def _clear_previous(out_dir: Path) -> list[str]:
    """A new export invalidates what was derived from the old one: remove exactly those files."""
    removed = []
    try:
        old = Manifest.load(out_dir)
    except UsageError:
        return removed
    for rec in old.artifacts.values():
        path = out_dir / rec["path"]
        if path.is_file():
            path.unlink()
            removed.append(rec["path"])
    for name in DERIVED_FILES:
        if (out_dir / name).is_file():
            (out_dir / name).unlink()
            removed.append(name)
    return removed


def export(model_arg: str, out_dir: str | Path, settings: ExportSettings = ExportSettings(),
           progress=None) -> Manifest:
    """Load ``model_arg``, export it to every requested format in ``out_dir``; returns the manifest."""
    unknown = [f for f in settings.formats if f not in EXPORTERS]
    if unknown:
        raise UsageError(f"unknown format {unknown[0]!r}; supported: {', '.join(EXPORTERS)}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a directory")
    loaded = load_classifier(model_arg, progress=progress)
    max_pos = int(getattr(loaded.model.config, "max_position_embeddings", 512))
    if settings.seq_len > max_pos:
        raise UsageError(f"--seq-len {settings.seq_len} exceeds the model's maximum of {max_pos} positions")
    out_dir.mkdir(parents=True, exist_ok=True)
    removed = _clear_previous(out_dir)
    if removed and progress is not None:
        progress.info(f"Replaced the previous export in {out_dir} (removed {', '.join(removed)})")

    tok_final = out_dir / TOKENIZER_DIR
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".tokenizer.") as tmp:
        loaded.tokenizer.save_pretrained(tmp)
        publish_dir(tmp, tok_final)
        Path(tmp).mkdir()  # TemporaryDirectory cleans up its (now empty) name
    manifest = Manifest.create(out_dir, model=_model_record(loaded),
                               tokenizer={"path": TOKENIZER_DIR, "class": type(loaded.tokenizer).__name__})
    manifest.data["export"] = {"seq_len": settings.seq_len, "atol": settings.atol}
    manifest.save()  # a valid (empty) manifest first: the directory is usable even if an export fails
    for fmt in settings.formats:
        filename, exporter = EXPORTERS[fmt]
        record = exporter(loaded.model, loaded.tokenizer, out_dir / filename, settings.seq_len,
                          settings.atol, progress)
        manifest.add_artifact(filename, record)
        manifest.save()
    return manifest
