"""PyTorch -> ONNX, validated against PyTorch before it is kept.

The exporter is picked by measurement (``EXPORTER``; recorded with its reason in the manifest): torch
2.13's TorchScript exporter at opset 18, with the model's eager attention, the graph Optimum's
``optimum-cli export onnx`` makes. ONNX Runtime's graph optimizer recognises its patterns (Erf GELU,
LayerNorm, the attention mask) and fuses them; the dynamo exporter's opset-20 graph (``Where``-based
mask, opset-20 ``Gelu``) ran 12-14% slower in fp32 and ~13% slower after int8 quantization
(``benchmarks/bench_vs_optimum.py``). Both match PyTorch to ~3e-7; the dynamo path is kept for
comparison. Weights are stored inside the single .onnx file (models here are far below 2 GB).
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
from . import masked_scores, residual_sum
from .validate import runtime_runner, validate, validation_cases

INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAMES = ("logits",)
EXPORTER = "torchscript"  # "torchscript" | "dynamo"
OPSET = 18
WHY = {
    "torchscript": "TorchScript exporter, opset 18, eager attention: ONNX Runtime fuses its GELU/LayerNorm/mask "
                   "patterns; measured as fast as Optimum's export in fp32 and ~13% faster than the dynamo "
                   "export after int8 (benchmarks/bench_vs_optimum.py)",
    "dynamo": "dynamo exporter (opset 20): smaller graph, but 12-14% slower in ONNX Runtime than opset 18 TorchScript",
}


@contextlib.contextmanager
def _eager_attention(model):
    """Trace the plain matmul/softmax attention (the pattern ORT fuses), then restore the model's choice."""
    config = getattr(model, "config", None)
    old = getattr(config, "_attn_implementation", None)
    setter = getattr(model, "set_attn_implementation", None)
    try:
        if old not in (None, "eager") and callable(setter):
            setter("eager")
        yield
    finally:
        if old not in (None, "eager") and callable(setter):
            setter(old)


def _export(model, args, tmp: Path, exporter: str) -> None:
    if exporter == "dynamo":
        from torch.export import Dim

        batch, seq = Dim("batch"), Dim("sequence")
        program = torch.onnx.export(
            model, args, dynamo=True, external_data=False, verbose=False,
            input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
            dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
        )
        program.save(str(tmp), external_data=False)
        return
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "logits": {0: "batch"}}
    with _eager_attention(model), torch.no_grad():
        torch.onnx.export(model, args, str(tmp), dynamo=False, opset_version=OPSET, do_constant_folding=True,
                          input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES), dynamic_axes=axes)


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
                progress=None, exporter: str = EXPORTER) -> dict:
    """Export ``model`` to ``out_path`` (dynamic batch and sequence); returns the manifest record.

    The file appears at ``out_path`` only after it validated within ``atol``.
    """
    import onnx

    cases = validation_cases(tokenizer, seq_len)
    sample = cases[2].inputs
    args = tuple(torch.from_numpy(sample[n]) for n in INPUT_NAMES)
    with atomic_path(out_path) as tmp:
        with maybe_step(progress, f"Exporting to ONNX (torch {torch.__version__}, {exporter} exporter)"), _quiet():
            _export(model, args, tmp, exporter)
        proto = onnx.load(str(tmp))
        # ORT-facing rewrites, before validation (the rewritten graph is what is checked and kept)
        rewrites = [{"name": name, "count": count, "why": why} for name, count, why in (
            ("masked_scores", masked_scores.bound_masks(proto), masked_scores.WHY),
            ("residual_sum", residual_sum.sum_residuals(proto), residual_sum.WHY)) if count]
        if rewrites:
            onnx.save(proto, str(tmp))
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
        "exporter": {"name": "torch.onnx.export", "dynamo": exporter == "dynamo", "torch": torch.__version__,
                     "opset": opset, "why": WHY[exporter]},
        "graph_rewrites": rewrites,
        "inputs": {n: {"dtype": "int64", "shape": ["batch", "sequence"]} for n in INPUT_NAMES},
        "outputs": {"logits": {"dtype": "float32", "shape": ["batch", "num_labels"]}},
        "node_count": nodes,
        "validation": validation,
    }

