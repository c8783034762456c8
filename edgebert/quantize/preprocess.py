"""Loading the fp32 graph, and ORT's quantization pre-processing run inside a scratch dir we own.

ORT's pre-processing and quantizers write temporary models (and, on failure, ``.data`` files) in
the working directory; ``scratch_dir`` runs them in a private temp dir that is always removed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Iterator

import onnx

from ..errors import EdgebertError, UsageError


def load_fp32(path: Path) -> onnx.ModelProto:
    """The fp32 ONNX model, or a usage error saying how to rebuild a missing/corrupt file."""
    hint = "re-run `edgebert export` to recreate it"
    if not path.is_file():
        raise UsageError(f"{path}: fp32 ONNX model is missing; {hint}")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # DecodeError, ValidationError, OSError ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{path}: not a valid ONNX model ({first}); {hint}") from None
    if not model.graph.node:
        raise UsageError(f"{path}: the ONNX graph is empty; {hint}")
    return model


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    """A private temp dir, also the working directory while inside (ORT writes files to the cwd)."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="edgebert-quantize-") as tmp:
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(old)


@contextlib.contextmanager
def quiet_ort() -> Iterator[None]:
    """Silence the quantization tool's logging (it warns per tensor); errors still raise."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def pre_process(model_path: Path, out_path: Path) -> None:
    """Symbolic shape inference (``auto_merge``: needed on these graphs) + ORT basic optimization.

    Without inferred shapes the quantizer skips tensors it cannot type, leaving MatMuls in float.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        with quiet_ort():
            quant_pre_process(str(model_path), str(out_path), auto_merge=True)
    except Exception as exc:
        raise EdgebertError(f"ONNX Runtime quantization pre-processing failed: {exc}") from exc
    if not out_path.is_file():
        raise EdgebertError("ONNX Runtime quantization pre-processing produced no model")
