"""PyTorch -> ONNX with torch 2.13's dynamo exporter, validated against PyTorch before it is kept.

Why dynamo (``torch.onnx.export(dynamo=True)``): it is torch's maintained exporter, and its graphs are
about 2.5x smaller than the TorchScript exporter's (e.g. 119 vs 304 nodes for a 2-layer DistilBERT;
LayerNormalization as one op), which is easier to quantize and to read. Both match PyTorch to ~3e-7
(FIELD_NOTES §4). Weights are stored inside the single .onnx file (models here are far below 2 GB).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import torch

from ..devices.runtimes import OnnxRuntimeCPU
from ..fsutil import atomic_path
from ..progress import maybe_step
from .validate import runtime_runner, validate, validation_cases

INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAMES = ("logits",)


@contextlib.contextmanager
def _quiet():
    """The exporter prints banners and warnings meant for its developers; keep the CLI readable."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lvl in zip(loggers, levels):
            lg.setLevel(lvl)


def export_onnx(model: torch.nn.Module, tokenizer, out_path: Path, seq_len: int, atol: float,
                progress=None) -> dict:
    """Export ``model`` to ``out_path`` (dynamic batch and sequence); returns the manifest record.

    The file appears at ``out_path`` only after it validated within ``atol``.
    """
    from torch.export import Dim

    import onnx

    cases = validation_cases(tokenizer, seq_len)
    sample = cases[2].inputs
    args = tuple(torch.from_numpy(sample[n]) for n in INPUT_NAMES)
    batch, seq = Dim("batch"), Dim("sequence")
    with atomic_path(out_path) as tmp:
        with maybe_step(progress, f"Exporting to ONNX (torch {torch.__version__}, dynamo exporter)"), _quiet():
            program = torch.onnx.export(
                model, args, dynamo=True, external_data=False, verbose=False,
                input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
            )
            program.save(str(tmp), external_data=False)
        proto = onnx.load(str(tmp))
        onnx.checker.check_model(proto)
        with maybe_step(progress, f"Validating ONNX against PyTorch on {len(cases)} input shapes"):
            validation = validate(model, runtime_runner(OnnxRuntimeCPU(str(tmp), threads=1)), cases, atol,
                                  f"{out_path.name}")
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        nodes = len(proto.graph.node)
    return {
        "path": out_path.name,
        "format": "onnx",
        "precision": "fp32",
        "parent": None,
        "exporter": {"name": "torch.onnx.export", "dynamo": True, "torch": torch.__version__, "opset": opset},
        "inputs": {n: {"dtype": "int64", "shape": ["batch", "sequence"]} for n in INPUT_NAMES},
        "outputs": {"logits": {"dtype": "float32", "shape": ["batch", "num_labels"]}},
        "node_count": nodes,
        "validation": validation,
    }

