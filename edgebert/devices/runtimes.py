"""Inference runtimes as the worker sees them: load a model file, run a batch, name yourself.

This module runs inside the measurement worker, which may be an aarch64 Python under QEMU where only
numpy and the runtime packages are installed. So: it imports numpy and the standard library at module
level, each runtime package only inside its own class, and nothing from edgebert (no relative imports).

A runtime is one registered class: subclass :class:`Runtime`, set ``name``/``formats``/``module``, and
implement ``__init__`` (load) and ``run``. The measurement loop (``worker.measure``) is shared.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import numpy as np

_RUNTIMES: dict[str, type["Runtime"]] = {}


class Runtime:
    """One loaded model in one runtime.

    - ``name``: registry key, also what reports show (``runtime.name``).
    - ``formats``: artifact formats it loads (``"onnx"``, ``"tflite"``).
    - ``module``: the Python module to import; its ``__version__`` is the reported version.
    - ``fixed_shape``: True if the model has a fixed [batch, seq] input shape; the worker then feeds
      rows padded to the full sequence length instead of trimming each batch to its longest row.
    """

    name: ClassVar[str] = ""
    formats: ClassVar[tuple[str, ...]] = ()
    module: ClassVar[str] = ""
    fixed_shape: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name:
            _RUNTIMES[cls.name] = cls

    def __init__(self, model_path: str, threads: int):  # pragma: no cover - interface
        raise NotImplementedError

    @classmethod
    def import_module(cls):
        return importlib.import_module(cls.module)

    @classmethod
    def version(cls) -> str:
        return str(getattr(cls.import_module(), "__version__", "unknown"))

    def settings(self) -> dict[str, Any]:
        """What was configured (threads, providers, optimisation level): recorded with each result."""
        return {}

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:  # pragma: no cover
        """Logits ``[batch, num_labels]`` (float32) for int64 ``[batch, seq]`` inputs."""
        raise NotImplementedError


def get(name: str) -> type[Runtime]:
    try:
        return _RUNTIMES[name]
    except KeyError:
        raise KeyError(f"unknown runtime {name!r}; known: {', '.join(sorted(_RUNTIMES))}") from None


def names() -> tuple[str, ...]:
    return tuple(_RUNTIMES)


class OnnxRuntimeCPU(Runtime):
    """ONNX Runtime, CPU execution provider, ``threads`` intra-op threads, sequential execution."""

    name = "onnxruntime"
    formats = ("onnx",)
    module = "onnxruntime"

    def __init__(self, model_path: str, threads: int):
        ort = self.import_module()
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3  # errors only: warnings would drown the worker's stderr
        self._threads = int(threads)
        self.session = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in self.session.get_inputs()]
        missing = {"input_ids"} - set(self._inputs)
        if missing:
            raise ValueError(f"model has no input 'input_ids' (inputs: {', '.join(self._inputs)})")
        self._output = self.session.get_outputs()[0].name

    def settings(self) -> dict[str, Any]:
        return {
            "providers": self.session.get_providers(),
            "intra_op_num_threads": self._threads,
            "inter_op_num_threads": 1,
            "execution_mode": "ORT_SEQUENTIAL",
            "graph_optimization_level": "ORT_ENABLE_ALL",
        }

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        out = self.session.run([self._output], {k: feeds[k] for k in self._inputs if k in feeds})
        return np.asarray(out[0], dtype=np.float32)


# Runtimes in their own modules register on import (same import rules as this file: worker-safe).
if __package__:
    from . import litert as _litert  # noqa: E402,F401
else:  # run as a file next to worker.py
    import litert as _litert  # type: ignore[no-redef]  # noqa: E402,F401
