"""PyTorch -> TFLite with litert-torch (ex ai-edge-torch), builtin ops only, validated against PyTorch.

Why litert-torch: it converts the stock DistilBERT and SqueezeBERT classes directly from PyTorch
(torch.export -> StableHLO -> TFLite) without TensorFlow, in about a minute, to builtin ops only
(GELU, BATCH_MATMUL, FULLY_CONNECTED). A SqueezeBERT is converted through its channels-last equivalent
(``squeezebert_channels_last``: per-group FULLY_CONNECTED instead of CONV_2D wrapped in TRANSPOSEs), and
validated against the stock model. The other route,
onnx2tf, needs TensorFlow, 5-15 GB of RAM and emits Flex ops (FlexErf) that a phone's builtin-op
interpreter cannot run (FIELD_NOTES §1, §4).

Static shapes: litert-torch cannot export dynamic sequence lengths, so a TFLite artifact holds one
signature per fixed length, ``seq32``, ``seq64`` and ``seq<seq_len>`` (those below ``seq_len``, and
``seq_len`` itself), each taking int32 ``input_ids`` and ``attention_mask`` of ``[1, L]`` and sharing
the weights (one file, ~1% larger than a single signature). That is how apps ship static-shape
models: a text runs on the smallest length that holds it, so a 27-token review costs a 32-token
inference instead of a 128-token one. The lengths are recorded in the manifest (``fixed_shape``).
Validation runs the same cases as the ONNX export on every signature that holds them, each row
padded to that length and run on its own through the LiteRT runtime ``check`` uses.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from ..devices.litert import custom_ops_problem, inspect_model
from ..errors import EdgebertError, UsageError
from ..fsutil import atomic_path
from ..progress import maybe_step
from . import squeezebert_channels_last
from .validate import runtime_runner, validate_lengths, validation_cases

INPUT_NAMES = ("input_ids", "attention_mask")
BATCH = 1
#: Shorter signatures exported next to ``seq_len`` (built-in validation texts: p50 26, p90 42 tokens).
SHORT_LENGTHS = (32, 64)
#: What litert-torch converts for a SqueezeBERT: "stock" (the HF module, channels-first) or a channels-last
#: form of ``squeezebert_channels_last.FORMS``; picked by measurement (docs/export.md, TFLite section).
SQUEEZEBERT_FORM = "linear"
SQUEEZEBERT_FORMS = ("stock", *squeezebert_channels_last.FORMS)


def signature_lengths(seq_len: int) -> tuple[int, ...]:
    """The fixed lengths a TFLite export gets: the standard short ones below ``seq_len``, and ``seq_len``."""
    return tuple(sorted({n for n in SHORT_LENGTHS if n < seq_len} | {int(seq_len)}))


def signature_name(length: int) -> str:
    return f"seq{length}"


class _Logits(torch.nn.Module):
    """(input_ids, attention_mask) int32 -> logits: named inputs become the TFLite signature's names."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


@contextlib.contextmanager
def quiet_native(log: Path):
    """Send stdout/stderr (Python and native: MLIR/absl logs, progress lines) to ``log``."""
    loggers = [logging.getLogger(n) for n in ("torch.export", "torch._dynamo", "absl", "litert_torch")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "ab") as f, open(log, "a", encoding="utf-8", errors="replace") as text:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
                warnings.simplefilter("ignore")
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            for lg, lvl in zip(loggers, levels):
                lg.setLevel(lvl)


def _tail(log: Path, n: int = 3) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])[:400]


def check_builtin_only(info: dict, what: str) -> None:
    problem = custom_ops_problem(info["custom_ops"])
    if problem:
        raise EdgebertError(f"{what}: {problem}; no file was kept")


def litert_torch_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("litert-torch")


def convert(model: torch.nn.Module, lengths: tuple[int, ...], out_path: Path, log: Path,
            sample: dict[str, np.ndarray]) -> None:
    """One TFLite file with a ``seq<L>`` signature per length (weights stored once)."""
    wrapped = _Logits(model).eval()
    try:
        with quiet_native(log):
            import litert_torch  # its import prints torchao/absl warnings: keep them in the log

            converter = None
            for n in lengths:
                kwargs = {k: torch.from_numpy(np.ascontiguousarray(sample[k][:BATCH, :n], dtype=np.int32))
                          for k in INPUT_NAMES}
                add = litert_torch.signature if converter is None else converter.signature
                converter = add(signature_name(n), wrapped, (), kwargs)
            content = converter.convert().model_content()
    except MemoryError:
        raise
    except Exception as exc:
        tail = _tail(log)
        raise EdgebertError(f"litert-torch conversion failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                            + (f" ({tail})" if tail else "")) from exc
    # Written by Python, not by the converter: LLVM's writer exits the process on a full disk (no cleanup,
    # no message), while an OSError here reaches the CLI as one line and atomic_path removes the temp file.
    out_path.write_bytes(content)


def converted_module(model: torch.nn.Module, form: str | None = None) -> tuple[torch.nn.Module, list[dict]]:
    """The module litert-torch converts for ``model`` and the ``graph_rewrites`` records that made it.

    A SqueezeBERT becomes its channels-last equivalent (``form``, default ``SQUEEZEBERT_FORM``); any
    other model, or ``form="stock"``, is converted as it is.
    """
    form = SQUEEZEBERT_FORM if form is None else form
    if form not in SQUEEZEBERT_FORMS:
        raise UsageError(f"unknown SqueezeBERT TFLite form {form!r}; use one of {', '.join(SQUEEZEBERT_FORMS)}")
    if form == "stock" or not squeezebert_channels_last.is_squeezebert(model):
        return model, []
    rewritten = squeezebert_channels_last.ChannelsLastSqueezeBert(model, form)
    return rewritten, [{"name": f"squeezebert_channels_last_{form}",
                        "count": squeezebert_channels_last.rewritten_projections(rewritten),
                        "why": squeezebert_channels_last.WHY}]


def export_tflite(model: torch.nn.Module, tokenizer, out_path: Path, seq_len: int, atol: float,
                  progress=None, squeezebert_form: str | None = None) -> dict:
    """Export ``model`` to ``out_path`` with ``[1, L]`` signatures up to ``seq_len``; returns the manifest record.

    The file appears at ``out_path`` only after it was checked to use builtin ops only and every
    signature was validated against the given (stock) PyTorch model within ``atol``, also when a
    rewritten equivalent module is what was converted (``converted_module``).
    """
    from ..devices.litert import LiteRT

    max_pos = int(getattr(model.config, "max_position_embeddings", 512))
    if not 2 <= seq_len <= max_pos:
        raise UsageError(f"TFLite needs a fixed --seq-len between 2 and the model's {max_pos} positions "
                         f"(got {seq_len})")
    lengths = signature_lengths(seq_len)
    source, rewrites = converted_module(model, squeezebert_form)
    cases = validation_cases(tokenizer, seq_len)
    shapes = ", ".join(f"[{BATCH}, {n}]" for n in lengths)
    with atomic_path(out_path) as tmp, tempfile.TemporaryDirectory(prefix="edgebert-tflite-") as scratch:
        log = Path(scratch) / "convert.log"
        with maybe_step(progress, f"Exporting to TFLite (litert-torch {litert_torch_version()}, "
                                  f"fixed inputs {shapes})"):
            convert(source, lengths, tmp, log, cases[1].inputs)
        info = inspect_model(tmp.read_bytes())
        check_builtin_only(info, out_path.name)
        with maybe_step(progress, f"Validating TFLite against PyTorch ({len(cases)} input shapes × "
                                  f"{len(lengths)} signatures)"), quiet_native(log):
            runtime = LiteRT(str(tmp), threads=1)
            if runtime.lengths != lengths:
                raise EdgebertError(f"{out_path.name}: the converter wrote signatures of lengths "
                                    f"{list(runtime.lengths)}, expected {list(lengths)}; no file was kept")
            validation = validate_lengths(model, runtime_runner(runtime), cases, lengths, atol, out_path.name)
    return {
        "path": out_path.name,
        "format": "tflite",
        "precision": "fp32",
        "parent": None,
        "exporter": {"name": "litert_torch.signature(...).convert", "litert-torch": litert_torch_version(),
                     "torch": torch.__version__, "builtin_ops_only": True},
        "graph_rewrites": rewrites,
        "inputs": {n: {"dtype": "int32", "shape": [BATCH, seq_len]} for n in INPUT_NAMES},
        "outputs": {"logits": {"dtype": "float32", "shape": [BATCH, "num_labels"]}},
        "fixed_shape": {"batch": BATCH, "seq_len": seq_len, "seq_lens": list(lengths),
                        "signatures": {signature_name(n): n for n in lengths}},
        "op_counts": info["op_counts"],
        "node_count": info["node_count"],
        "validation": validation,
    }
