"""Export a classifier into an artifact directory: fp32 artifacts per format, each validated.

Exporters are a registry keyed by format name; ``export`` creates the directory's manifest, the
tokenizer copy every later command uses, and one validated fp32 artifact per requested format.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from .. import safepath
from ..errors import UsageError
from ..fsutil import publish_dir
from ..manifest import MANIFEST_NAME, Manifest
from ..models import LoadedModel, load_classifier
from ..report import DERIVED_FILES
from .onnx import export_onnx
from .tflite import export_tflite

# format -> (file name, exporter(model, tokenizer, out_path, seq_len, atol, progress) -> record)
EXPORTERS: dict[str, tuple[str, Callable[..., dict]]] = {
    "onnx": ("model.onnx", export_onnx),
    "tflite": ("model.tflite", export_tflite),  # fixed input [1, seq_len], builtin ops only
}
TOKENIZER_DIR = "tokenizer"


@dataclass(frozen=True)
class ExportSettings:
    formats: tuple[str, ...] = ("onnx",)
    seq_len: int = 128    # validation length (and the fixed length of static-shape formats)
    atol: float = 1e-4


def formats() -> tuple[str, ...]:
    return tuple(EXPORTERS)


def encoder_macs_record(config, seq_len: int) -> dict | None:
    """Encoder MACs per token from the model config, at ``seq_len`` and at 0 tokens (projections only).

    Recorded at export because the artifact directory keeps no config.json: the build's model comparison
    (``report/compare.py``) reads it from the manifest. Attention grows linearly with the length, so the
    two values give the MACs at any length. None for a config without BERT-style sizes.
    """
    from ..models.grouped import encoder_macs_per_token

    try:
        total, projections = encoder_macs_per_token(config, seq_len), encoder_macs_per_token(config, 0)
    except (AttributeError, TypeError, ZeroDivisionError):
        return None
    return {"seq_len": int(seq_len), "macs": int(total), "projections": int(projections),
            "source": "config (models/grouped.py: encoder_macs_per_token)"}


def _model_record(loaded: LoadedModel, seq_len: int) -> dict:
    cfg = loaded.model.config
    macs = encoder_macs_record(cfg, seq_len)
    return {
        "architecture": loaded.arch.name,
        "model_class": type(loaded.model).__name__,
        "source": loaded.source,
        "num_labels": int(cfg.num_labels),
        "id2label": {str(k): v for k, v in loaded.id2label.items()},
        "label2id": {v: int(k) for k, v in loaded.id2label.items()},
        "max_position_embeddings": int(getattr(cfg, "max_position_embeddings", 512)),
        "vocab_size": int(cfg.vocab_size),  # the tokenizer is checked against it whenever it is loaded
        "parameters": int(sum(p.numel() for p in loaded.model.parameters())),
        **({"encoder_macs_per_token": macs} if macs else {}),
    }


def _check_tokenizer_replaceable(out_dir: Path, old: Manifest | None) -> None:
    """Export replaces ``tokenizer/`` wholesale: only when it is the real directory the previous export
    recorded, never a symlink or a directory someone else put there."""
    tok = out_dir / TOKENIZER_DIR
    if not os.path.lexists(tok):
        return
    recorded = old is not None and PurePosixPath(old.data["tokenizer"]["path"]) == PurePosixPath(TOKENIZER_DIR)
    if recorded and safepath.is_own_dir(out_dir, TOKENIZER_DIR):
        return
    what = "a symlink" if tok.is_symlink() else "not a directory" if not tok.is_dir() else \
        f"not recorded as the tokenizer in {out_dir / MANIFEST_NAME}"
    raise UsageError(f"{tok}: exists and is {what}, so edgebert did not make it and will not replace it; "
                     f"move it away or export to another directory")


def _clear_previous(out_dir: Path, old: Manifest | None) -> tuple[list[str], list[str]]:
    """A new export invalidates what was derived from the old one: remove exactly those files.

    Returns (removed, kept): an artifact file is removed only if it is the regular file the old
    manifest recorded (inside ``out_dir``, same sha256); anything else is kept and said so. The
    derived reports are fixed names edgebert writes; they are removed when they are regular files.
    """
    removed: list[str] = []
    kept: list[str] = []
    if old is None:
        return removed, kept
    for name in old.artifacts:
        result = old.remove_artifact_file(name)
        if result.outcome == "removed":
            removed.append(result.path)
        elif result.outcome == "kept":
            kept.append(result.describe())
    for name in DERIVED_FILES:
        path = out_dir / name
        if path.is_file() and not path.is_symlink():
            path.unlink()
            removed.append(name)
    return removed, kept


def export(model_arg: str, out_dir: str | Path, settings: ExportSettings = ExportSettings(),
           progress=None, on_artifact: Callable[[str], None] | None = None) -> Manifest:
    """Load ``model_arg``, export it to every requested format in ``out_dir``; returns the manifest.

    ``on_artifact(filename)``: called as soon as each format's file is written and in the manifest (a build
    starts that artifact's instruction counts while the next format converts)."""
    unknown = [f for f in settings.formats if f not in EXPORTERS]
    if unknown:
        raise UsageError(f"unknown format {unknown[0]!r}; supported: {', '.join(EXPORTERS)}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a directory")
    old = Manifest.load_existing(out_dir)  # a crafted or damaged manifest stops here, before any file is touched
    _check_tokenizer_replaceable(out_dir, old)
    loaded = load_classifier(model_arg, progress=progress)
    max_pos = int(getattr(loaded.model.config, "max_position_embeddings", 512))
    if settings.seq_len > max_pos:
        raise UsageError(f"--seq-len {settings.seq_len} exceeds the model's maximum of {max_pos} positions")
    out_dir.mkdir(parents=True, exist_ok=True)
    removed, kept = _clear_previous(out_dir, old)
    if progress is not None:
        if removed:
            progress.info(f"Replaced the previous export in {out_dir} (removed {', '.join(removed)})")
        for note in kept:
            progress.info(f"Kept {note}")

    manifest = Manifest.create(out_dir, model=_model_record(loaded, settings.seq_len),
                               tokenizer={"path": TOKENIZER_DIR, "class": type(loaded.tokenizer).__name__})
    manifest.data["export"] = {"seq_len": settings.seq_len, "atol": settings.atol}
    manifest.save()  # a valid (empty) manifest first: the directory is usable even if an export fails,
    #                  and records tokenizer/ before it exists, so a rerun after a kill may replace it
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".tokenizer.") as tmp:
        loaded.tokenizer.save_pretrained(tmp)
        publish_dir(tmp, out_dir / TOKENIZER_DIR)
        Path(tmp).mkdir()  # TemporaryDirectory cleans up its (now empty) name
    for fmt in settings.formats:
        filename, exporter = EXPORTERS[fmt]
        record = exporter(loaded.model, loaded.tokenizer, out_dir / filename, settings.seq_len,
                          settings.atol, progress)
        manifest.add_artifact(filename, record)
        manifest.save()
        if on_artifact is not None:
            on_artifact(filename)
    return manifest
