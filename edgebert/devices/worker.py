"""Measurement worker: load one artifact in one runtime, time it, and return its logits.

Every number in ``report.json`` comes from this one loop, on every device: natively on the desktop
(``sys.executable worker.py REQUEST``) and, later, under ``qemu-aarch64`` with an aarch64 Python. It
therefore imports only the standard library, numpy and (lazily) the runtime package: no torch,
transformers, click, rich, nor the rest of edgebert. It runs both as a file
(``python path/to/worker.py REQUEST``; the directory holds ``runtimes.py``) and as
``python -m edgebert.devices.worker REQUEST``.

Protocol (version 1), all paths absolute, all files in a directory the parent owns:

Request (JSON file, the only argument)::

    {"protocol": 1, "runtime": "onnxruntime", "model": "/d/model.onnx", "threads": 1,
     "inputs": "/t/inputs.npz", "outputs": "/t/outputs.npz", "result": "/t/result.json",
     "batch_size": 1, "warmup": 10, "runs": 50, "mark_syscall": null, "profile_runs": 0}

``inputs.npz`` holds int64 arrays: ``input_ids`` and ``attention_mask`` ``[N, S]`` (the labelled
examples, right-padded to S) and ``latency_input_ids`` / ``latency_attention_mask`` ``[1, S]`` (one
text padded to S, the latency input). N may be 0 (latency only).

The worker writes, then exits 0 (ok) or 1 (failed):

- ``outputs``: npz with ``logits`` float32 ``[N, num_labels]``, rows in input order (only when ok).
- ``result``: JSON, also on failure::

    {"protocol": 1, "status": "ok" | "failed", "error": null | "one line",
     "runtime": {"name": ..., "version": ..., "settings": {...}}, "threads": 1,
     "platform": {"machine": "x86_64", "cpu": "...", "python": "3.11.2"},
     "load_ms": 12.3,
     "latency": {"samples_ms": [...], "warmup": 10, "runs": 50, "batch": 1, "seq_len": S},  (S: the length that ran)
     "accuracy_pass": {"n": N, "batches": B, "batch_size": 1, "order": "by real length", "trimmed": true,
                       "rows_by_input_length": {"32": 700, "64": 300}, "truncated_rows": 0, "seconds": 0.4},
     "rss_mb": {"after_import": .., "after_load": .., "after_latency": .., "after_accuracy": ..},
     "peak_rss_mb": ..,
     "profile": {"status": "ok" | "unavailable" | "failed", "top_ops": [...], ...}}   (profile_runs > 0)

Order inside the worker: import the runtime, load the model, latency (``warmup`` untimed runs, then
``runs`` timed runs of batch 1 with ``time.perf_counter_ns`` around the runtime call alone; ``runs`` 0
skips the phase and ``latency`` is null), then the accuracy pass (rows sorted by real length, batches
of ``batch_size``, each trimmed to its longest row; a fixed-shape runtime pads it to the smallest
input length it has that fits, and ``rows_by_input_length`` says how many rows ran at each length). ``rss_mb`` values are the process's peak resident set so far, in MiB, after
each phase (Linux: ``VmHWM`` of /proc/self/status; elsewhere ``ru_maxrss``, see ``peak_rss_mb``); ``peak_rss_mb`` is the one after the
latency phase: the peak of a process that started Python, imported numpy and the runtime, loaded the
model and ran batch-1 inference at S. Under QEMU user-mode it is the emulator process's RSS.
If the process dies (signal, timeout) there is no result file; the parent reports that.

Inference markers (optional ``mark_syscall``: an integer that is not a Linux syscall number): the
worker then calls ``syscall(mark_syscall, 1, i)`` just before and ``syscall(mark_syscall, 2, i)`` just
after the i-th latency-phase inference (warm-up runs first, i from 0), through libc via ctypes. The
kernel (or QEMU) answers ENOSYS and nothing happens, unless a QEMU TCG plugin watching that number
counts the guest instructions in between (``edgebert/devices/qemu/insn_count.c``).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from typing import Any

import numpy as np

# ONNX Runtime's telemetry thread would add network traffic and another thread's instructions to the
# counts (see edgebert/__init__.py); this file also runs standalone, so it says so itself.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

if __package__:
    from . import runtimes as _runtimes
else:  # run as a file: runtimes.py sits next to this one (sys.path[0])
    import runtimes as _runtimes  # type: ignore[no-redef]

PROTOCOL_VERSION = 1
REQUIRED = ("runtime", "model", "threads", "inputs", "outputs", "result")
DEFAULTS = {"batch_size": 1, "warmup": 10, "runs": 50}
MARK_BEGIN, MARK_END = 1, 2
RELEASE = "release"  # serve mode: forget the loaded model (``serve_forever``)


def build_request(*, runtime: str, model: str, threads: int, inputs: str, outputs: str, result: str,
                  batch_size: int = 1, warmup: int = 10, runs: int = 50,
                  mark_syscall: int | None = None, profile_runs: int = 0) -> dict[str, Any]:
    """A request dict (the parent writes it as JSON); paths should be absolute."""
    return {"protocol": PROTOCOL_VERSION, "runtime": runtime, "model": str(model), "threads": int(threads),
            "inputs": str(inputs), "outputs": str(outputs), "result": str(result),
            "batch_size": int(batch_size), "warmup": int(warmup), "runs": int(runs),
            "mark_syscall": None if mark_syscall is None else int(mark_syscall),
            "profile_runs": int(profile_runs)}


def marker(number: int | None):
    """``mark(phase, index)`` issuing ``syscall(number, phase, index)``; a no-op when number is None."""
    if number is None:
        return lambda phase, index: None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    nr = ctypes.c_long(int(number))

    def mark(phase: int, index: int) -> None:
        syscall(nr, ctypes.c_long(phase), ctypes.c_long(index))

    return mark


def one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not text.startswith(type(exc).__name__):
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process image so far, MiB; None where unknown.

    Linux: ``VmHWM`` from /proc/self/status (the high-water mark of this process's address space).
    ``ru_maxrss`` is not used there because Linux carries it across fork+exec: a worker started by a
    parent holding torch would report the parent's peak. Elsewhere: ``ru_maxrss``.
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # pragma: no cover - not on a POSIX system
        return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1 << 20) if sys.platform == "darwin" else rss / 1024, 1)  # bytes on macOS, KiB on Linux


def cpu_name() -> str:
    """The CPU as this process sees it (under QEMU 10: the emulated model's /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            info = f.read()
    except OSError:
        return platform.processor() or platform.machine()
    fields = {}
    for line in info.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    parts = [f"{k} {fields[k]}" for k in ("CPU implementer", "CPU part", "Features") if k in fields]
    if "model name" in fields:  # x86 names itself; ARM's name is generic, its part number is the model
        return "; ".join([fields["model name"], *parts])
    return "; ".join(parts) or platform.machine()


def measure(runtime: "_runtimes.Runtime", input_ids: np.ndarray, attention_mask: np.ndarray,
            latency_ids: np.ndarray, latency_mask: np.ndarray, *, batch_size: int, warmup: int,
            runs: int, mark_syscall: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """The one measurement loop for every runtime and device: latency first, then the logits.

    Latency: ``warmup`` + ``runs`` batch-1 inferences on the latency input (``runs`` may be 0: no
    latency phase). With ``mark_syscall``, each of them is bracketed by marker syscalls (module doc).

    Accuracy: rows in order of their real length (stable), ``batch_size`` rows per call, each batch
    trimmed to its longest row, logits returned in input order. At batch 1 (the default) every example
    runs alone at its own length, as an app feeds one text: its logits then do not depend on which
    examples share its batch (dynamic int8 scales activations per run, over the whole batch), so two
    devices that run the same example give comparable logits whatever else each of them ran.
    A fixed-shape runtime pads the trimmed batch to the smallest input length it has that fits.
    """
    rss: dict[str, Any] = {}
    mark = marker(mark_syscall)
    if mark_syscall is not None:  # a collection inside a marked inference would change its count
        import gc

        gc.collect()
        gc.disable()
    for i in range(warmup if runs else 0):
        mark(MARK_BEGIN, i)
        runtime.run(latency_ids, latency_mask)
        mark(MARK_END, i)
    samples = []
    for i in range(warmup, warmup + runs):
        start = time.perf_counter_ns()
        mark(MARK_BEGIN, i)
        runtime.run(latency_ids, latency_mask)
        mark(MARK_END, i)
        samples.append((time.perf_counter_ns() - start) / 1e6)
    rss["after_latency"] = peak_rss_mb()
    if mark_syscall is not None:
        import gc

        gc.enable()

    start = time.perf_counter()
    n = len(input_ids)
    lengths = attention_mask.sum(axis=1).astype(np.int64) if n else np.zeros(0, np.int64)
    order = np.argsort(lengths, kind="stable")
    logits = None
    batches, widths = 0, {}
    for lo in range(0, n, batch_size):
        rows = order[lo:lo + batch_size]
        width = max(int(lengths[rows].max()), 1)
        ids = np.ascontiguousarray(input_ids[rows, :width])
        mask = np.ascontiguousarray(attention_mask[rows, :width])
        out = runtime.run(ids, mask)
        if out.ndim != 2 or out.shape[0] != len(rows):
            raise ValueError(f"runtime returned logits of shape {list(out.shape)} for a batch of {len(rows)}")
        if logits is None:
            logits = np.zeros((n, out.shape[1]), np.float32)
        logits[rows] = out
        batches += 1
        ran = runtime.input_length(width)
        widths[ran] = widths.get(ran, 0) + len(rows)
    if logits is None:
        logits = np.zeros((0, 0), np.float32)
    rss["after_accuracy"] = peak_rss_mb()
    metrics = {
        "latency": ({"samples_ms": [round(s, 4) for s in samples], "warmup": warmup, "runs": runs,
                     "batch": int(latency_ids.shape[0]),  # the length that ran (a fixed shape pads or cuts)
                     "seq_len": int(runtime.input_length(int(latency_ids.shape[1])))} if runs else None),
        "accuracy_pass": {"n": n, "batches": batches, "batch_size": batch_size, "order": "by real length",
                          "trimmed": True, "rows_by_input_length": {str(k): v for k, v in sorted(widths.items())},
                          "truncated_rows": int(np.sum(lengths > runtime.max_length)) if runtime.max_length else 0,
                          "seconds": round(time.perf_counter() - start, 3)},
        "rss_mb": rss,
    }
    return logits, metrics


def serve(request: dict[str, Any], loaded: dict | None = None) -> tuple[dict[str, Any], np.ndarray | None]:
    """Run one request; never raises. Returns (result dict, logits or None).

    ``loaded`` (serve mode): a cache holding the last loaded model, reused when the next request names
    the same runtime, model and threads (``load_ms`` is then 0 and ``reused_model`` true).
    """
    result: dict[str, Any] = {"protocol": PROTOCOL_VERSION, "status": "failed", "error": None,
                              "runtime": {"name": request.get("runtime"), "version": None, "settings": {}},
                              "threads": request.get("threads"),
                              "platform": {"machine": platform.machine(), "cpu": cpu_name(),
                                           "python": platform.python_version()}}
    stage = "request"
    try:
        if request.get("protocol") != PROTOCOL_VERSION:
            raise ValueError(f"protocol {request.get('protocol')!r} is not {PROTOCOL_VERSION}")
        missing = [k for k in REQUIRED if k not in request]
        if missing:
            raise ValueError(f"request lacks {', '.join(missing)}")
        opts: dict[str, Any] = {k: int(request.get(k, v)) for k, v in DEFAULTS.items()}
        if request.get("mark_syscall") is not None:
            opts["mark_syscall"] = int(request["mark_syscall"])
        threads = int(request["threads"])
        cls = _runtimes.get(request["runtime"])
        stage = "import"
        result["runtime"]["version"] = cls.version()
        rss = {"after_import": peak_rss_mb()}
        stage = "inputs"
        with np.load(request["inputs"]) as z:
            arrays = {k: np.ascontiguousarray(z[k], dtype=np.int64) for k in
                      ("input_ids", "attention_mask", "latency_input_ids", "latency_attention_mask")}
        stage = "load"
        start = time.perf_counter()
        key = (request["runtime"], request["model"], threads)
        if loaded is not None and loaded.get("key") == key:
            runtime = loaded["runtime"]
            result["reused_model"] = True
        else:
            if loaded is not None:
                loaded.clear()
            runtime = cls(request["model"], threads)
            if loaded is not None:
                loaded.update(key=key, runtime=runtime)
        result["load_ms"] = round((time.perf_counter() - start) * 1e3, 3)
        result["runtime"]["settings"] = runtime.settings()
        rss["after_load"] = peak_rss_mb()
        stage = "inference"
        logits, metrics = measure(runtime, arrays["input_ids"], arrays["attention_mask"],
                                  arrays["latency_input_ids"], arrays["latency_attention_mask"], **opts)
        metrics["rss_mb"] = {**rss, **metrics["rss_mb"]}
        result.update(metrics)
        result["peak_rss_mb"] = metrics["rss_mb"]["after_latency"] if opts["runs"] else None
        if int(request.get("profile_runs") or 0) > 0:  # after the timed phases: never slows them
            try:
                result["profile"] = runtime.profile(arrays["latency_input_ids"], arrays["latency_attention_mask"],
                                                    int(request["profile_runs"]))
            except Exception as exc:
                result["profile"] = {"status": "failed", "reason": one_line(exc)}
        result["status"] = "ok"
        return result, logits
    except Exception as exc:  # every failure becomes one line in the result
        result["error"] = f"{stage} failed: {one_line(exc)}"
        return result, None


def _replace_atomic(final: str, write) -> None:
    tmp = f"{final}.tmp{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _save_npz(path: str, **arrays) -> None:
    with open(path, "wb") as f:  # a file object keeps numpy from appending ".npz" to the temp name
        np.savez(f, **arrays)


def _save_json(path: str, data: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)


def handle(request_path: str, loaded: dict | None = None) -> int:
    """Read one request file, run it, write its outputs and result files; 0 when ok."""
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    result, logits = serve(request, loaded)
    if logits is not None:
        _replace_atomic(request["outputs"], lambda p: _save_npz(p, logits=logits))
    _replace_atomic(request["result"], lambda p: _save_json(p, result))
    return 0 if result["status"] == "ok" else 1


def serve_forever(stdin=None, stdout=None) -> int:
    """Serve mode (``worker.py --serve``): one request path per stdin line, one status line back each.

    One process then runs every request of an (artifact, device): under emulation that saves the
    interpreter start-up and the model load (1-3 s each) for every pass after the first. The line
    ``release`` (``RELEASE``) drops the loaded model and answers ``ok``: the process then serves the next
    job on the same device without starting again.
    """
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    loaded: dict = {}
    for line in stdin:
        path = line.strip()
        if not path:
            continue
        if path == RELEASE:  # the next request is another job's: drop the model, keep the process
            loaded.clear()
            stdout.write("ok\n")
            stdout.flush()
            continue
        try:
            code = handle(path, loaded)
        except Exception as exc:  # unreadable request: say so on the status line, keep serving
            stdout.write(f"error {one_line(exc)}\n")
        else:
            stdout.write("ok\n" if code == 0 else "failed\n")
        stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--serve"]:
        return serve_forever()
    if len(argv) != 1:
        print("usage: worker.py REQUEST.json | worker.py --serve", file=sys.stderr)
        return 2
    return handle(argv[0])


if __name__ == "__main__":
    sys.exit(main())
