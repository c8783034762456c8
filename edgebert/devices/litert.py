"""LiteRT (ai-edge-litert) runtime for ``.tflite`` artifacts, and what a ``.tflite`` file contains.

Runs inside the measurement worker (possibly an aarch64 Python under QEMU with only numpy and the
runtime package installed): numpy and the standard library at module level, the runtime package
only inside functions, nothing from edgebert. ``runtimes.py`` imports this module to register it.

edgebert's TFLite artifacts have fixed input shapes: one signature per sequence length (``seq32``,
``seq64``, ``seq<seq_len>``), each taking int32 ``input_ids`` and ``attention_mask`` of ``[1, L]`` and
giving ``[1, num_labels]`` float32. The runtime declares ``fixed_shape``: each batch the worker feeds
runs on the smallest length that holds it (padded), rows one by one. A single-signature model
(older edgebert exports, other tools) works the same way with its one length.

Only builtin ops are allowed, as on a phone without the Flex (TensorFlow) delegate: a model that
needs Flex or other custom ops fails at load with a line naming them.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np

if __package__:
    from . import litert_profile as _litert_profile
    from .runtimes import Runtime, summarize_ops
else:  # the worker runs as a file: runtimes.py and this file sit side by side (sys.path[0])
    import litert_profile as _litert_profile  # type: ignore[no-redef]
    from runtimes import Runtime, summarize_ops  # type: ignore[no-redef]

#: TFLite ``TensorType`` values (schema.fbs) -> numpy-style names.
TENSOR_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16",
                9: "int8", 10: "float64", 15: "uint32", 16: "uint16", 17: "int4"}
#: Ops whose weight/activation types say whether a matmul-class op runs as an int8 kernel.
COMPUTE_OPS = ("FULLY_CONNECTED", "BATCH_MATMUL", "CONV_2D", "DEPTHWISE_CONV_2D", "EMBEDDING_LOOKUP")


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # pragma: no cover - older/other runtime packages
        from tflite_runtime import schema_py_generated as schema  # type: ignore[no-redef]
    return schema


def _builtin_names(schema) -> dict[int, str]:
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


def operator_codes(model, schema=None) -> list[tuple[str, int]]:
    """(name, version) per operator code of a parsed ``schema.Model``: the one decoder of TFLite opcodes.

    Why the ``max``: codes above 127 live only in ``builtin_code``, while older files carry theirs only
    in ``deprecated_builtin_code`` (the other field is 0). Custom ops are named ``CUSTOM:<custom code>``,
    an unknown builtin ``BUILTIN_<n>``.
    """
    schema = schema or _schema()
    names = _builtin_names(schema)
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        if code == schema.BuiltinOperator.CUSTOM:
            custom = (oc.CustomCode() or b"?").decode("utf-8", "replace")
            codes.append((f"CUSTOM:{custom}", int(oc.Version())))
        else:
            codes.append((names.get(code, f"BUILTIN_{code}"), int(oc.Version())))
    return codes


def model_and_op_names(data: bytes) -> tuple[Any, list[str]]:
    """(parsed ``schema.Model``, operator name per opcode index) of a ``.tflite`` flatbuffer, for graph walks."""
    schema = _schema()
    model = schema.Model.GetRootAs(data, 0)
    return model, [name for name, _ in operator_codes(model, schema)]


def inspect_model(data: bytes) -> dict[str, Any]:
    """Op accounting of a ``.tflite`` flatbuffer (no interpreter needed).

    Returns ``op_counts`` (builtin name or ``CUSTOM:<code>``), ``op_versions`` (max version per op),
    ``custom_ops`` (Flex and other custom codes), ``quantized_ops`` / ``float_ops`` (compute ops by
    how they run: ``int8`` = int8 inputs and weights, ``dynamic-range`` = float activations quantized
    per run with int8 weights, ``int8 table`` = lookup from an int8 table), ``inputs`` (name, shape, dtype).
    Raises ``ValueError`` when ``data`` is not a TFLite model.
    """
    schema = _schema()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError("not a TFLite flatbuffer (no TFL3 identifier)")
    try:
        model = schema.Model.GetRootAs(data, 0)
        codes = operator_codes(model, schema)
        counts: Counter = Counter()
        versions: dict[str, int] = {}
        quantized: Counter = Counter()
        floating: Counter = Counter()
        inputs = []
        for s in range(model.SubgraphsLength()):
            sg = model.Subgraphs(s)
            ttype = lambda t: TENSOR_TYPES.get(int(sg.Tensors(t).Type()), str(sg.Tensors(t).Type()))  # noqa: E731
            if s == 0:
                for k in range(sg.InputsLength()):
                    t = sg.Tensors(sg.Inputs(k))
                    inputs.append({"name": (t.Name() or b"").decode(), "shape": [int(x) for x in t.ShapeAsNumpy()],
                                   "dtype": ttype(sg.Inputs(k))})
            for j in range(sg.OperatorsLength()):
                op = sg.Operators(j)
                name, version = codes[op.OpcodeIndex()]
                counts[name] += 1
                versions[name] = max(versions.get(name, 0), version)
                if name not in COMPUTE_OPS:
                    continue
                ins = [op.Inputs(k) for k in range(op.InputsLength())]
                types = [ttype(i) if i >= 0 else None for i in ins]
                if name == "EMBEDDING_LOOKUP":  # inputs: ids, table
                    kind = "int8 table" if len(types) > 1 and types[1] in ("int8", "uint8", "int4") else None
                elif types and types[0] in ("int8", "uint8", "int16"):
                    kind = "int8" if types[0] != "int16" else "int16x8"
                elif len(types) > 1 and types[1] in ("int8", "uint8", "int4"):
                    kind = "dynamic-range"
                else:
                    kind = None
                if kind:
                    quantized[f"{name}({kind})"] += 1
                else:
                    floating[name] += 1
    except Exception as exc:  # a truncated or corrupt flatbuffer raises anything from struct/index errors
        raise ValueError(f"corrupt TFLite flatbuffer ({type(exc).__name__}: {exc})") from None
    custom = sorted(n.split(":", 1)[1] for n in counts if n.startswith("CUSTOM:"))
    return {"op_counts": dict(sorted(counts.items())), "op_versions": dict(sorted(versions.items())),
            "custom_ops": custom, "quantized_ops": dict(sorted(quantized.items())),
            "float_ops": dict(sorted(floating.items())), "node_count": int(sum(counts.values())),
            "inputs": inputs}


def custom_ops_problem(custom: list[str]) -> str | None:
    """One line when a model needs ops the builtin-op interpreter does not have; else None."""
    if not custom:
        return None
    flex = [c for c in custom if c.startswith("Flex")]
    what = (f"Flex (TensorFlow) ops {', '.join(flex)}" if flex else f"custom ops {', '.join(custom)}")
    return (f"the model needs {what}, which the builtin-op LiteRT interpreter (as on a phone without the "
            "Flex delegate) cannot run; export it with edgebert's TFLite exporter (builtin ops only)")


class LiteRT(Runtime):
    """ai-edge-litert's Interpreter (default CPU path: XNNPACK), ``threads`` threads, builtin ops only.

    A model may have several signatures of fixed ``[1, L]`` inputs (edgebert exports ``seq32``,
    ``seq64``, ... ``seq<seq_len>`` in one file, sharing the weights): each batch runs on the smallest
    length that holds it, padded with masked [PAD] tokens, as an app ships a static-shape model.
    """

    name = "litert"
    formats = ("tflite",)
    module = "ai_edge_litert"
    fixed_shape = True

    def __init__(self, model_path: str, threads: int):
        with open(model_path, "rb") as f:
            data = f.read()
        self._threads = int(threads)
        self._model_path = model_path
        try:
            info = inspect_model(data)
        except ImportError:  # no schema module in this runtime package: let the interpreter judge
            info = None
        self._model_ops = sorted((info or {}).get("op_counts") or ())
        if info is not None:
            problem = custom_ops_problem(info["custom_ops"])
            if problem:
                raise ValueError(problem)
        self.interpreter = self._interpreter(model_path)
        signatures = self.interpreter.get_signature_list()
        if not signatures:
            raise ValueError("model has no signature")
        self._runners: dict[int, tuple[str, Any, dict, str]] = {}  # length -> (key, runner, inputs, output)
        for key in signatures:
            runner = self.interpreter.get_signature_runner(key)
            details = runner.get_input_details()
            if "input_ids" not in details:
                raise ValueError(f"signature {key!r} has no input 'input_ids' (inputs: {', '.join(sorted(details))})")
            inputs = {name: (tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"])) for name, d in details.items()}
            shape = inputs["input_ids"][0]
            if len(shape) != 2:
                raise ValueError(f"signature {key!r}: input_ids has shape {list(shape)}; expected [batch, seq]")
            if shape[0] != 1:
                raise ValueError(f"signature {key!r}: batch {shape[0]}; edgebert's TFLite models take batch 1")
            self._runners.setdefault(int(shape[1]), (key, runner, inputs, next(iter(runner.get_output_details()))))
        self.lengths = tuple(sorted(self._runners))
        self.batch, self.seq_len = 1, self.lengths[-1]

    def _interpreter(self, model_path: str):
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter(model_path=model_path, num_threads=self._threads)

    @property
    def signatures(self) -> dict[str, int]:
        """Signature key -> its fixed sequence length, shortest first."""
        return {r[0]: n for n, r in sorted(self._runners.items())}

    def settings(self) -> dict[str, Any]:
        return {"num_threads": self._threads, "fixed_shape": [self.batch, self.seq_len],
                "seq_lens": list(self.lengths), "signatures": {str(n): r[0] for n, r in self._runners.items()},
                "delegate": "default CPU (XNNPACK)", "inputs": sorted(next(iter(self._runners.values()))[2])}

    @property
    def max_length(self) -> int | None:
        return self.seq_len

    def input_length(self, width: int) -> int:
        return signature_length(self.lengths, width)

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        length = self.input_length(input_ids.shape[1])
        _, runner, inputs, output = self._runners[length]
        feeds = {"input_ids": fit_length(input_ids, length), "attention_mask": fit_length(attention_mask, length)}
        out = []
        for i in range(len(input_ids)):  # batch-1 signatures: one row at a time
            row = {k: np.ascontiguousarray(v[i:i + 1], dtype=inputs[k][1]) for k, v in feeds.items() if k in inputs}
            out.append(np.asarray(runner(**row)[output], dtype=np.float32))
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def profile(self, input_ids: np.ndarray, attention_mask: np.ndarray, runs: int) -> dict[str, Any]:
        """LiteRT's own op profiler (``litert_profile``: libLiteRt.so's CompiledModel, CPU/XNNPACK, the
        same threads) in a child process, on the signature this batch-1 input runs at: ``runs`` runs after
        one warm-up, summed per TFLite builtin op; each op also names the kernels that ran it (XNNPACK's,
        e.g. ``Fully Connected (NC, QD8, F32, QC8W) GEMM``: int8 shows there, the op name is the same)."""
        length = self.input_length(input_ids.shape[1])
        key, _, inputs, _ = self._runners[length]
        feeds = {"input_ids": fit_length(input_ids[:1], length), "attention_mask": fit_length(attention_mask[:1], length)}
        feeds = {k: np.ascontiguousarray(v, dtype=inputs[k][1]) for k, v in feeds.items() if k in inputs}
        raw = _litert_profile.profile_isolated({"model": self._model_path, "signature": key, "inputs": feeds,
                                                "runs": int(runs), "threads": self._threads,
                                                "model_ops": self._model_ops})
        if raw.get("status") != "ok":
            return raw
        return summarize_litert(raw["kernel_events"], int(raw["runs"]), raw.get("invoke_us") or [], key)


def summarize_litert(kernel_events, runs: int, invoke_us, signature: str, top: int = 10) -> dict[str, Any]:
    """``summarize_ops`` of ``(node, op, µs, kernel)`` events, each op and node naming its kernels."""
    out = summarize_ops([(n, op, us) for n, op, us, _ in kernel_events], runs, top)
    kernels: dict[str, dict[str, float]] = {}
    node_kernel: dict[str, str] = {}
    for node, op, us, kernel in kernel_events:
        per = kernels.setdefault(op, {})
        per[kernel] = per.get(kernel, 0.0) + us
        node_kernel[node] = kernel
    for entry in out["top_ops"]:
        entry["kernels"] = [k for k, _ in sorted(kernels.get(entry["op"], {}).items(), key=lambda kv: -kv[1])]
    for entry in out["top_nodes"]:
        entry["kernel"] = node_kernel.get(entry["node"], entry["op"])
    out["signature"] = signature
    if invoke_us:
        out["invoke_ms_per_inference"] = round(sum(invoke_us) / len(invoke_us) / 1e3, 4)
    out["tool"] = ("LiteRT CompiledModel profiler (libLiteRt.so C API via ctypes, child process; CPU with "
                   "XNNPACK: builtin-kernel node events + XNNPACK operator events mapped to TFLite builtin ops)")
    return out


def signature_length(lengths, width: int) -> int:
    """The signature length a ``width``-token input runs at: the smallest that holds it, else the
    longest (the input is then cut): the one rule, for the runtime and for ``check``'s warnings."""
    lengths = sorted(int(n) for n in lengths)
    return next((n for n in lengths if n >= width), lengths[-1])


def fit_length(a: np.ndarray, length: int) -> np.ndarray:
    """Pad (with 0 = [PAD] / masked) or truncate the columns of ``a`` to ``length``: the one way rows are
    fitted to a fixed-shape signature (the runtime here, and export validation of every signature)."""
    if a.shape[1] >= length:
        return a[:, :length]
    return np.pad(a, ((0, 0), (0, length - a.shape[1])))


_OP_VERSION = re.compile(r"builtin opcode '([A-Z0-9_]+)' version '(\d+)'")


class TfliteRuntimeLegacy(LiteRT):
    """The legacy ``tflite-runtime`` package (last release 2.14, numpy<2), for old device images.

    It cannot load models from current converters (e.g. FULLY_CONNECTED version 12, GATHER_ND
    version 5); such a load fails with one line naming the op and version instead of a crash.
    Not the desktop default; a device that only has tflite-runtime names it.
    """

    name = "tflite-runtime"
    formats = ("tflite",)
    module = "tflite_runtime"

    def profile(self, input_ids: np.ndarray, attention_mask: np.ndarray, runs: int) -> dict[str, Any]:
        return {"status": "unavailable", "reason": "tflite-runtime has no libLiteRt.so (its op profiler is "
                                                   "in ai-edge-litert's CompiledModel C API)"}

    def _interpreter(self, model_path: str):
        from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found]

        try:
            interpreter = Interpreter(model_path=model_path, num_threads=self._threads)
            interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            raise ValueError(legacy_load_error(str(exc), self.version())) from None
        return interpreter


def legacy_load_error(message: str, version: str) -> str:
    """tflite-runtime's multi-line registration error -> 'cannot load: op X version N ...'."""
    found = _OP_VERSION.findall(message)
    if found:
        ops = ", ".join(f"{op} version {v}" for op, v in dict(found).items())
        return (f"cannot load: op {ops} is newer than tflite-runtime {version} supports; "
                "use ai-edge-litert (runtime 'litert')")
    return f"cannot load: {' '.join(message.split())[:250]}"
