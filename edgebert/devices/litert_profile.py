"""LiteRT per-operator profile through ``libLiteRt.so``'s C API (ctypes), in a child process.

Why the C API: ai-edge-litert's Python ``Interpreter``/``CompiledModel`` expose no op timings, and no
wheel ships ``benchmark_model``. ``libLiteRt.so`` (in the ai-edge-litert wheel) exports a CompiledModel
with a profiler: the runtime option ``enable_profiling = true`` (opaque option ``runtime_options_string``,
a TOML payload, as ``litert/c/options/litert_runtime_options.cc`` builds it) makes the interpreter record
one ``OPERATOR_INVOKE_EVENT`` per builtin-kernel node (tag = builtin op name) and the XNNPACK delegate
one ``DELEGATE_PROFILED_OPERATOR_INVOKE_EVENT`` per XNNPACK operator (tag = XNNPACK kernel name, e.g.
``Fully Connected (NC, QD8, F32, QC8W) GEMM``). Same kernels as the timed ``Interpreter`` (CPU, XNNPACK).

Why a child process: a bad pointer in a ctypes binding (or the library itself) kills the process with a
signal; ``profile_isolated`` turns that into ``{"status": "failed", "reason": ...}`` so ``check`` lives.

Worker-safe like ``litert.py``: numpy and the standard library only, runs as a file
(``python litert_profile.py request.json``) next to ``worker.py``.
"""

from __future__ import annotations

import ctypes as C
import json
import os
import signal
import subprocess
import sys
import tempfile
from typing import Any, Callable

import numpy as np

#: LiteRtProfilerEventType values (litert/c/litert_profiler_event.h).
DEFAULT, OPERATOR_INVOKE_EVENT, DELEGATE_PROFILED_OPERATOR_INVOKE_EVENT = 1, 2, 8
RUNTIME_OPTIONS_ID = b"runtime_options_string"  # LrtGetRuntimeOptionsIdentifier()
CPU_OPTIONS_ID = b"xnnpack"  # LrtGetCpuOptionsIdentifier()
HW_CPU = 1  # kLiteRtHwAcceleratorCpu
LOCK_READ, LOCK_WRITE = 0, 1  # LiteRtTensorBufferLockMode
P = C.c_void_p


class _MemoryUsage(C.Structure):  # LiteRtMemoryUsage (3 fields in the C header)
    _fields_ = [("total_allocated_bytes", C.c_size_t), ("in_use_allocated_bytes", C.c_size_t),
                ("private_footprint_bytes", C.c_size_t)]


class ProfiledEventData(C.Structure):
    """``ProfiledEventData`` of litert/c/litert_profiler_event.h (104 bytes on 64-bit). The size the library
    really writes is checked (sentinel bytes) before any record is read: a layout change fails cleanly."""

    _fields_ = [("tag", C.c_char_p), ("event_type", C.c_int), ("start_timestamp_us", C.c_uint64),
                ("elapsed_time_us", C.c_uint64), ("begin_mem_usage", _MemoryUsage),
                ("end_mem_usage", _MemoryUsage), ("event_metadata1", C.c_uint64),
                ("event_metadata2", C.c_uint64), ("event_source", C.c_int)]


#: XNNPACK operator name (before `` (``) -> the TFLite builtin op(s) the XNNPACK delegate lowers to it;
#: with several, the first the model contains. A dynamic-quantization ``Convert (NC, F32, QD8)`` is
#: counted to the op it feeds (the next XNNPACK operator), as TFLite's own hybrid kernels do it inside.
XNNPACK_OPS = {
    "Fully Connected": ("FULLY_CONNECTED",), "Batch Matrix Multiply": ("BATCH_MATMUL",),
    "Convolution": ("CONV_2D",), "Depthwise Convolution": ("DEPTHWISE_CONV_2D",),
    "Softmax": ("SOFTMAX",), "Add": ("ADD",), "Multiply": ("MUL",), "Subtract": ("SUB",), "Divide": ("DIV",),
    "Squared Difference": ("SQUARED_DIFFERENCE",), "Reciprocal Square Root": ("RSQRT",),
    "Square Root": ("SQRT",), "Square": ("SQUARE",), "Mean": ("MEAN",), "Sum": ("SUM",),
    "Static Reshape": ("RESHAPE", "SQUEEZE", "EXPAND_DIMS"), "Copy": ("RESHAPE", "SQUEEZE", "EXPAND_DIMS"),
    "Static Expand Dims": ("EXPAND_DIMS",), "Transpose": ("TRANSPOSE",), "GELU": ("GELU",),
    "Slice": ("STRIDED_SLICE", "SLICE"), "Tanh": ("TANH",), "Sigmoid": ("LOGISTIC",),
    "Constant Pad": ("PAD", "PADV2"), "Concatenate": ("CONCATENATION",), "Even Split": ("SPLIT",),
    "Maximum": ("MAXIMUM",), "Minimum": ("MINIMUM",), "Clamp": ("RELU", "RELU6", "RELU_N1_TO_1"),
    "Exp": ("EXP",), "Negate": ("NEG",), "Abs": ("ABS",), "Floor": ("FLOOR",), "Ceiling": ("CEIL",),
    "Max Pooling": ("MAX_POOL_2D",), "Average Pooling": ("AVERAGE_POOL_2D",), "Leaky ReLU": ("LEAKY_RELU",),
    "HardSwish": ("HARD_SWISH",), "Static Resize Bilinear": ("RESIZE_BILINEAR",),
}


def library_path() -> str:
    """``libLiteRt.so`` of the installed ai-edge-litert (found without importing the package)."""
    import importlib.util

    spec = importlib.util.find_spec("ai_edge_litert")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("ai-edge-litert is not installed")
    return os.path.join(list(spec.submodule_search_locations)[0], "libLiteRt.so")


def builtin_op(xnn_name: str, model_ops=frozenset()) -> str | None:
    """The TFLite builtin op an XNNPACK operator name stands for (None: a QD8 convert or unknown)."""
    base = xnn_name.split(" (")[0].strip()
    candidates = XNNPACK_OPS.get(base)
    if not candidates:
        return None
    return next((c for c in candidates if c in model_ops), candidates[0])


def kernel_events(events: list[tuple[str, int, int, int]], model_ops=frozenset()) -> tuple[list, int, list]:
    """``(node, op, us, kernel)`` per kernel event, the number of runs, and the ``Invoke`` µs per run.

    ``events``: ``(tag, event_type, elapsed_us, metadata1)`` in recording order. A run starts at a
    ``DEFAULT`` event tagged ``Invoke``; XNNPACK operators are named by their order within the run
    (``xnnpack:<k>``: indices restart per delegate partition), builtin nodes by node index.
    """
    out, invokes, pending = [], [], []
    k = 0
    for tag, etype, us, meta in events:
        if etype == DEFAULT and tag == "Invoke":
            invokes.append(us)
            k = 0
        elif etype == OPERATOR_INVOKE_EVENT:
            out.append((f"node:{meta}", tag, float(us), tag))
        elif etype == DELEGATE_PROFILED_OPERATOR_INVOKE_EVENT:
            node = f"xnnpack:{k}"
            k += 1
            op = builtin_op(tag, model_ops)
            if op is None and "QD8" in tag and tag.startswith("Convert"):
                pending.append((node, float(us), tag))  # dynamic quantization of the next op's input
                continue
            op = op or f"XNNPACK:{tag.split(' (')[0]}"
            for p_node, p_us, p_tag in pending:
                out.append((p_node, op, p_us, p_tag))
            pending = []
            out.append((node, op, float(us), tag))
    out += [(n, "QUANTIZE", us, t) for n, us, t in pending]
    return out, len(invokes), invokes


class _Lib:
    """The few C calls needed, each checked: a non-zero LiteRtStatus raises with the call's name."""

    def __init__(self, path: str):
        self.lib = C.CDLL(path)
        self.lib.LiteRtCreateOpaqueOptions.argtypes = [C.c_char_p, P, P, C.POINTER(P)]
        self.lib.LiteRtGetProfilerEvents.argtypes = [P, C.c_int, P]
        self.libc = C.CDLL(None)
        self.libc.strdup.restype = P
        self.libc.strdup.argtypes = [C.c_char_p]

    def __call__(self, name: str, *args) -> None:
        status = getattr(self.lib, name)(*args)
        if status != 0:
            raise RuntimeError(f"{name} returned LiteRtStatus {status}")

    def out(self, name: str, *args, ctype=P):
        value = ctype()
        self(name, *args, C.byref(value))
        return value

    def opaque(self, identifier: bytes, payload: bytes):
        """An opaque option owning a malloc'd copy of ``payload`` (freed by the library with ``free``)."""
        free = C.cast(self.libc.free, P)
        return self.out("LiteRtCreateOpaqueOptions", identifier, P(self.libc.strdup(payload)), free)


def profile_in_process(model_path: str, signature_key: str, inputs: dict[str, np.ndarray], runs: int,
                       threads: int = 1, library: str | None = None, model_ops=()) -> dict[str, Any]:
    """Run ``signature_key`` once (warm-up), then ``runs`` times with the profiler on; events summarized.

    Crashes take this process down: call it through ``profile_isolated``."""
    lib = _Lib(library or library_path())
    env = lib.out("LiteRtCreateEnvironment", 0, None)
    model = lib.out("LiteRtCreateModelFromFile", env, model_path.encode())
    options = lib.out("LiteRtCreateOptions")
    lib("LiteRtSetOptionsHardwareAccelerators", options, HW_CPU)
    lib("LiteRtAddOpaqueOptions", options, lib.opaque(RUNTIME_OPTIONS_ID, b"enable_profiling = true\n"))
    lib("LiteRtAddOpaqueOptions", options, lib.opaque(CPU_OPTIONS_ID, f"num_threads = {int(threads)}\n".encode()))
    compiled = lib.out("LiteRtCreateCompiledModel", env, model, options)
    n = lib.out("LiteRtGetNumModelSignatures", model, ctype=C.c_size_t).value
    keys = []
    for i in range(n):
        sig = lib.out("LiteRtGetModelSignature", model, C.c_size_t(i))
        keys.append((lib.out("LiteRtGetSignatureKey", sig, ctype=C.c_char_p).value or b"").decode())
    if signature_key not in keys:
        raise ValueError(f"no signature {signature_key!r} (has {', '.join(keys)})")
    index = keys.index(signature_key)
    sig = lib.out("LiteRtGetModelSignature", model, C.c_size_t(index))

    def buffers(kind: str) -> list[tuple[str, Any, int]]:
        found = []
        for i in range(lib.out(f"LiteRtGetNumSignature{kind}s", sig, ctype=C.c_size_t).value):
            name = lib.out(f"LiteRtGetSignature{kind}Name", sig, C.c_size_t(i), ctype=C.c_char_p).value
            tensor = lib.out(f"LiteRtGetSignature{kind}Tensor", sig, name)
            ranked = C.create_string_buffer(4096)  # LiteRtRankedTensorType, only passed back: layout unread
            lib("LiteRtGetRankedTensorType", tensor, ranked)
            req = lib.out(f"LiteRtGetCompiledModel{kind}BufferRequirements", compiled, C.c_size_t(index),
                          C.c_size_t(i))
            buf = lib.out("LiteRtCreateManagedTensorBufferFromRequirements", env, ranked, req)
            found.append((name.decode(), buf, lib.out("LiteRtGetTensorBufferSize", buf, ctype=C.c_size_t).value))
        return found

    ins, outs = buffers("Input"), buffers("Output")
    for name, buf, size in ins:
        if name not in inputs:
            raise ValueError(f"signature {signature_key!r} input {name!r} not given")
        data = np.ascontiguousarray(inputs[name])
        if data.nbytes != size:
            raise ValueError(f"input {name!r}: {data.nbytes} bytes given, the buffer holds {size}")
        addr = P()
        lib("LiteRtLockTensorBuffer", buf, C.byref(addr), LOCK_WRITE)
        C.memmove(addr, data.ctypes.data, size)
        lib("LiteRtUnlockTensorBuffer", buf)
    in_arr = (P * len(ins))(*[b for _, b, _ in ins])
    out_arr = (P * len(outs))(*[b for _, b, _ in outs])

    def run() -> None:
        lib("LiteRtRunCompiledModel", compiled, C.c_size_t(index), C.c_size_t(len(ins)), in_arr,
            C.c_size_t(len(outs)), out_arr)

    profiler = lib.out("LiteRtCompiledModelGetProfiler", compiled)
    if not profiler.value:
        raise RuntimeError("LiteRtCompiledModelGetProfiler gave no profiler (enable_profiling not applied)")
    run()  # warm-up: first-run allocations and XNNPACK setup stay out of the profile
    lib("LiteRtResetProfiler", profiler)
    lib("LiteRtStartProfiler", profiler)
    for _ in range(runs):
        run()
    lib("LiteRtStopProfiler", profiler)
    events = read_events(lib, profiler)
    kernels, seen_runs, invokes = kernel_events(events, frozenset(model_ops))
    if seen_runs != runs:
        raise RuntimeError(f"profiler saw {seen_runs} Invoke events for {runs} runs")
    if not kernels:
        raise RuntimeError("the profiler recorded no operator events")
    return {"kernel_events": kernels, "runs": runs, "invoke_us": invokes}


def read_events(lib: _Lib, profiler) -> list[tuple[str, int, int, int]]:
    """``(tag, type, elapsed µs, metadata1)`` of every recorded event, after checking the record size."""
    n = lib.out("LiteRtGetNumProfilerEvents", profiler, ctype=C.c_int).value
    size = C.sizeof(ProfiledEventData)
    room = 2 * n * size + 256  # room for a larger compiled record: measured, not overrun
    raw = C.create_string_buffer(b"\xab" * room, room)
    lib("LiteRtGetProfilerEvents", profiler, C.c_int(n), C.cast(raw, P))
    written = len(raw.raw.rstrip(b"\xab"))
    if not n * size - 16 < written <= n * size:  # the last record may end in 0xab-free padding
        raise RuntimeError(f"LiteRtGetProfilerEvents wrote {written} bytes for {n} events; expected "
                           f"{n}×{size} (ProfiledEventData layout differs from litert_profiler_event.h)")
    records = (ProfiledEventData * n).from_buffer(raw)
    return [((r.tag or b"").decode("utf-8", "replace"), int(r.event_type), int(r.elapsed_time_us),
             int(r.event_metadata1)) for r in records]


def profile_isolated(request: dict[str, Any], timeout: float = 600.0,
                     on_start: Callable[[int], None] | None = None) -> dict[str, Any]:
    """``profile_in_process`` in a child Python (this file run as a script); its death becomes
    ``{"status": "failed", "reason": ...}``. ``request``: ``model``, ``signature``, ``inputs`` (name ->
    array), ``runs``, ``threads``, optional ``library``, ``model_ops``. ``on_start(pid)``: called once the
    child runs (for tests and cancellation)."""
    with tempfile.TemporaryDirectory(prefix="edgebert-litert-profile-") as tmp:
        np.savez(os.path.join(tmp, "inputs.npz"), **request["inputs"])
        spec = {k: v for k, v in request.items() if k != "inputs"}
        spec["inputs"] = os.path.join(tmp, "inputs.npz")
        spec["result"] = os.path.join(tmp, "result.json")
        with open(os.path.join(tmp, "request.json"), "w", encoding="utf-8") as f:
            json.dump(spec, f)
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), os.path.join(tmp, "request.json")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if on_start:
            on_start(proc.pid)
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return {"status": "failed", "reason": f"LiteRT profiler process timed out after {timeout:.0f} s"}
        tail = " ".join(err.decode("utf-8", "replace").split()[-40:])
        if proc.returncode < 0:
            try:
                name = signal.Signals(-proc.returncode).name
            except ValueError:
                name = f"signal {-proc.returncode}"
            return {"status": "failed", "reason": f"LiteRT profiler process died of {name} ({tail[-300:] or 'no output'})"}
        try:
            with open(spec["result"], encoding="utf-8") as f:
                result = json.load(f)
        except (OSError, ValueError):
            return {"status": "failed",
                    "reason": f"LiteRT profiler process exited {proc.returncode} without a result ({tail[-300:]})"}
    return result


def _main(request_path: str) -> int:
    with open(request_path, encoding="utf-8") as f:
        spec = json.load(f)
    try:
        with np.load(spec["inputs"]) as z:
            inputs = {k: z[k] for k in z.files}
        out = profile_in_process(spec["model"], spec["signature"], inputs, int(spec["runs"]),
                                 int(spec.get("threads") or 1), spec.get("library"), spec.get("model_ops") or ())
        result = {"status": "ok", **out}
    except Exception as exc:  # a clean failure: the parent reports it
        result = {"status": "failed", "reason": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"}
    with open(spec["result"], "w", encoding="utf-8") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1]))
