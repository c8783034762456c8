"""The one place edgebert creates an ONNX Runtime session (``check``'s runtime, export and quantize validation).

Why one place: the options decide what is measured (threads, optimisation level, sequential
execution) and whether ORT phones home, so every caller must get the same ones. Runs inside the
measurement worker too (possibly an aarch64 Python under QEMU): standard library at module level,
``onnxruntime`` only inside :func:`create`, nothing from edgebert.
"""

from __future__ import annotations

import os
from typing import Any

PROVIDERS = ("CPUExecutionProvider",)
#: Fixed options besides the thread count, as reports record them (``Runtime.settings``).
SETTINGS = {"inter_op_num_threads": 1, "execution_mode": "ORT_SEQUENTIAL",
            "graph_optimization_level": "ORT_ENABLE_ALL"}


def import_onnxruntime():
    """``onnxruntime`` with its telemetry off (ORT 1.32 starts a thread at import that contacts Microsoft's
    collector, and under the counting QEMU its instructions land in the counts) unless the user chose."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime

    return onnxruntime


def create(model: str | bytes, threads: int, profile_prefix: str | None = None,
           optimized_model_path: str | None = None, graph_optimization_level: str | None = None) -> Any:
    """An ``InferenceSession`` on ``model`` (a file path or the serialized model), CPU provider.

    ``threads`` intra-op threads, one inter-op thread, sequential execution, every graph optimisation,
    errors-only logging (warnings would drown the worker's stderr). With ``profile_prefix``, ORT's
    profiler writes there (a second session: never the timed one). With ``optimized_model_path``, ORT
    saves the graph as its optimizer left it (which fusions ran). ``graph_optimization_level`` (an
    ``ort.GraphOptimizationLevel`` name) replaces ORT_ENABLE_ALL for a session that must run the graph as
    written (static calibration's augmented graph, whose extra outputs fusions would remove).
    """
    ort = import_onnxruntime()
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = SETTINGS["inter_op_num_threads"]
    so.execution_mode = getattr(ort.ExecutionMode, SETTINGS["execution_mode"])
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel,
                                          graph_optimization_level or SETTINGS["graph_optimization_level"])
    so.log_severity_level = 3
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    if optimized_model_path:
        so.optimized_model_filepath = optimized_model_path
    return ort.InferenceSession(model, so, providers=list(PROVIDERS))
