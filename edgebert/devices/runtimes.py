"""Inference runtimes as the worker sees them: load a model file, run a batch, name yourself.

This module runs inside the measurement worker, which may be an aarch64 Python under QEMU where only
numpy and the runtime packages are installed. So: it imports numpy and the standard library at module
level, each runtime package only inside its own class, and nothing from edgebert but its worker-safe
neighbours (``ort_session.py``, ``litert.py``), imported as files when the worker runs as a file.

A runtime is one registered class: subclass :class:`Runtime`, set ``name``/``formats``/``module``, and
implement ``__init__`` (load) and ``run``. The measurement loop (``worker.measure``) is shared.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import numpy as np

if __package__:
    from . import ort_session as _ort_session
else:  # run as a file next to worker.py
    import ort_session as _ort_session  # type: ignore[no-redef]

_RUNTIMES: dict[str, type["Runtime"]] = {}


class Runtime:
    """One loaded model in one runtime.

    - ``name``: registry key, also what reports show (``runtime.name``).
    - ``formats``: artifact formats it loads (``"onnx"``, ``"tflite"``).
    - ``module``: the Python module to import; its ``__version__`` is the reported version.
    - ``fixed_shape``: True if the model has fixed [batch, seq] input shapes (one or several
      lengths); it pads what it is fed to the smallest length it has that fits (``input_length``).
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

    @property
    def max_length(self) -> int | None:
        """The longest sequence the model takes (longer rows are truncated); None: any length."""
        return None

    def input_length(self, width: int) -> int:
        """The sequence length a batch ``width`` tokens wide really runs at (fixed shapes pad up)."""
        return width

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:  # pragma: no cover
        """Logits ``[batch, num_labels]`` (float32) for int64 ``[batch, seq]`` inputs."""
        raise NotImplementedError

    def profile(self, input_ids: np.ndarray, attention_mask: np.ndarray, runs: int) -> dict[str, Any]:
        """Per-operator time over ``runs`` batch-1 inferences (``summarize_ops`` format), or why not."""
        return {"status": "unavailable",
                "reason": PROFILING_UNAVAILABLE.get(self.name, f"{self.name}: no per-op profiler wired in")}


#: Why a runtime has no per-op profile (a runtime with a profiler overrides ``profile``: ONNX Runtime
#: here, LiteRT in ``litert.py`` through ``litert_profile.py``).
PROFILING_UNAVAILABLE: dict[str, str] = {}


def summarize_ops(kernel_events: list[tuple[str, str, float]], runs: int, top: int = 10) -> dict[str, Any]:
    """Top operators by time from ``(node name, op type, microseconds)`` kernel events of ``runs`` runs."""
    by_op: dict[str, list[float]] = {}
    by_node: dict[str, list] = {}
    for node, op, us in kernel_events:
        entry = by_op.setdefault(op, [0.0, 0])
        entry[0] += us
        by_node.setdefault(node, [op, 0.0])[1] += us
    for op, entry in by_op.items():
        entry[1] = sum(1 for v in by_node.values() if v[0] == op)
    total = sum(v[0] for v in by_op.values()) or 1.0
    runs = max(int(runs), 1)
    ops = sorted(by_op.items(), key=lambda kv: -kv[1][0])
    nodes = sorted(by_node.items(), key=lambda kv: -kv[1][1])
    return {
        "status": "ok", "runs": runs, "kernel_ms_per_inference": round(total / runs / 1e3, 4),
        "top_ops": [{"op": op, "ms": round(us / runs / 1e3, 4), "share": round(us / total, 4), "nodes": n}
                    for op, (us, n) in ops[:top]],
        "top_nodes": [{"node": node, "op": op, "ms": round(us / runs / 1e3, 4), "share": round(us / total, 4)}
                      for node, (op, us) in nodes[:top]],
    }


#: Runtimes in their own modules (same import rules as this file: worker-safe), registered on first
#: lookup: imported here at module level they would import this module back (an import cycle).
_PLUGIN_MODULES = ("litert",)


def _load_plugins() -> None:
    for module in _PLUGIN_MODULES:  # as files next to worker.py when the worker runs as a file
        importlib.import_module(f"{__package__}.{module}" if __package__ else module)


def get(name: str) -> type[Runtime]:
    _load_plugins()
    try:
        return _RUNTIMES[name]
    except KeyError:
        raise KeyError(f"unknown runtime {name!r}; known: {', '.join(sorted(_RUNTIMES))}") from None


def names() -> tuple[str, ...]:
    _load_plugins()
    return tuple(_RUNTIMES)


class OnnxRuntimeCPU(Runtime):
    """ONNX Runtime, CPU execution provider, ``threads`` intra-op threads, sequential execution."""

    name = "onnxruntime"
    formats = ("onnx",)
    module = "onnxruntime"

    @classmethod
    def import_module(cls):
        return _ort_session.import_onnxruntime()

    def __init__(self, model_path: str | bytes, threads: int):
        """``model_path``: the file (the worker), or the serialized model (export/quantize validation)."""
        self._threads = int(threads)
        self._model_path = model_path
        self.session = self.new_session()
        self._inputs = [i.name for i in self.session.get_inputs()]
        missing = {"input_ids"} - set(self._inputs)
        if missing:
            raise ValueError(f"model has no input 'input_ids' (inputs: {', '.join(self._inputs)})")
        self._output = self.session.get_outputs()[0].name

    def new_session(self, profile_prefix: str | None = None):
        """A session on this runtime's model with its options (``ort_session.create``); with
        ``profile_prefix``, ORT's profiler on (a second session, never the timed one)."""
        return _ort_session.create(self._model_path, self._threads, profile_prefix=profile_prefix)

    def settings(self) -> dict[str, Any]:
        return {"providers": self.session.get_providers(), "intra_op_num_threads": self._threads,
                **_ort_session.SETTINGS}

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        out = self.session.run([self._output], {k: feeds[k] for k in self._inputs if k in feeds})
        return np.asarray(out[0], dtype=np.float32)

    def profile(self, input_ids: np.ndarray, attention_mask: np.ndarray, runs: int) -> dict[str, Any]:
        """ORT's own profiler (``SessionOptions.enable_profiling``) in a second session, so the timed
        session is never slowed by it: kernel events of ``runs`` runs after one warm-up, summed per op."""
        import json
        import os
        import tempfile

        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        feeds = {k: feeds[k] for k in self._inputs if k in feeds}
        with tempfile.TemporaryDirectory(prefix="edgebert-profile-") as tmp:
            session = self.new_session(profile_prefix=os.path.join(tmp, "ort"))
            for _ in range(runs + 1):
                session.run([self._output], feeds)
            with open(session.end_profiling(), encoding="utf-8") as f:
                events = json.load(f)
        model_runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                            if e.get("cat") == "Session" and e.get("name") == "model_run")
        skip_before = model_runs[0][1] if len(model_runs) > runs else -1  # drop the warm-up run's kernels
        kernel = [(e["name"][: -len("_kernel_time")], (e.get("args") or {}).get("op_name", "?"), float(e["dur"]))
                  for e in events if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time")
                  and e.get("ts", 0) > skip_before]
        out = summarize_ops(kernel, runs)
        out["tool"] = "onnxruntime SessionOptions.enable_profiling (CPU execution provider kernel events)"
        return out

