"""Emulated ARM devices: each catalog CPU model registered as a :class:`Device`, and its instruction counter.

An ARM device runs the SAME measurement worker as the desktop, inside an aarch64 Python under QEMU
user mode (``edgebert devices setup`` builds it under the edgebert cache)::

    qemu-aarch64 -cpu MODEL -L SYSROOT SYSROOT/usr/bin/python3.11 worker.py REQUEST   (PYTHONPATH=SITE)

That run (QEMU 10) gives the logits: accuracy, agreement with fp32 and drift against the desktop.
Emulated wall time is not device latency, so cost is reported as **guest instructions per
inference**, counted by a TCG plugin (``devices/qemu/insn_count.c``) in a second, short worker run under
the plugin-capable QEMU: the worker brackets each batch-1 inference with a marker syscall
(``mark_syscall`` in the request) and the plugin writes the count between the markers.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

from ..registry import Desktop, Device
from .catalog import CPU_MODELS, CpuModel
from .environment import (
    MARKER_SYSCALL,
    ArmEnv,
    default_env,
    guest_env,
    plugin_command,
    plugin_host_env,
    read_class_counts,
)


class ArmDevice(Device):
    """An ARM CPU model under QEMU user mode (subclasses set ``cpu``; see ``CPU_MODELS``)."""

    cpu: ClassVar[CpuModel]
    emulated = True
    timeout_s = 3 * 3600.0
    counts_instructions = True

    @property
    def runtimes(self) -> dict[str, str]:  # type: ignore[override]
        """The desktop's runtimes: the same worker and runtime code run on every device."""
        return dict(Desktop.runtimes)

    @property
    def default_threads(self) -> int:  # type: ignore[override]
        return self.cpu.threads

    def env(self) -> ArmEnv:
        return default_env()

    def python_command(self) -> list[str]:
        env = self.env()
        return [str(env.qemu), "-cpu", self.cpu.qemu_cpu, "-L", str(env.sysroot), str(env.python)]

    def worker_env(self) -> dict[str, str]:
        return guest_env(self.env())

    def unavailable_reason(self) -> str | None:
        return self.env().missing()

    def setup_missing(self) -> str | None:
        """The accuracy environment, the counting QEMU for this CPU model (its count is required) and the
        cycle model (its estimate)."""
        env = self.env()
        return self.unavailable_reason() or env.counting_missing(self.cpu.qemu_cpu) or env.llvm_missing()

    def counting_expected(self) -> bool:
        """Whether this CPU model should have instruction counts (a missing one then fails its record)."""
        return self.cpu.counting

    def info(self) -> dict[str, Any]:
        env = self.env()
        setup_info = env.info()
        return {**super().info(), "cpu_model": asdict(self.cpu),
                "qemu": {"cpu": self.cpu.qemu_cpu, "version": setup_info.get("qemu_version"),
                         "counting_version": env.counting_version(self.cpu.qemu_cpu)},
                "sysroot_wheels": setup_info.get("wheels")}

    # --- instruction counts -----------------------------------------------------------------
    def count_instructions(self, request: dict[str, Any], work: Path) -> dict[str, Any]:
        """Run the worker under the plugin QEMU on ``request`` (latency-only); never raises.

        Returns ``{"status": "ok", "per_inference": int, "counts": [...], "spread": float, ...}`` or
        ``{"status": "unavailable" | "failed", "error": "one line"}``. ``counts`` are the timed runs
        (``runs``) of batch-1 inference on the latency input (warm-up runs are left out);
        ``per_inference`` is their median (the lower middle one for an even count). The counting QEMU
        runs single-threaded with address-space randomisation off, a fixed hash seed and ONNX Runtime's
        telemetry thread disabled, so counts repeat across processes; successive inferences in one
        process differ by ~0.001% (allocator state; ``spread`` = (max - min) / median).
        ``classes``/``class_shares``: the instruction classes of the median run (dot product, i8mm, SVE,
        vector FP multiply-add, other SIMD/FP, scalar; see ``qemu/insn_count.c``).
        ``wall_ms``: the emulator wall time of each counted run (NOT device latency).
        ``blocks_file`` / ``blocks_inference``: the executed blocks the plugin recorded and which marked
        inference is the median one (the cycle model's input, ``check/estimate.py``).
        """
        env = self.env()
        reason = env.missing() or env.counting_missing(self.cpu.qemu_cpu)
        base = {"method": "guest instructions between worker markers, QEMU TCG plugin (insn_count.c)",
                "qemu_version": env.counting_version(self.cpu.qemu_cpu), "cpu": self.cpu.qemu_cpu}
        if reason:
            return {**base, "status": "unavailable", "error": reason}
        counts_file = work / f"{self.name}.{Path(request['model']).name}.insns.txt"
        counts_file.unlink(missing_ok=True)
        blocks_file = counts_file.with_suffix(".blocks.txt")
        blocks_file.unlink(missing_ok=True)
        counter = _Counter(self, counts_file, blocks_file)
        result = counter.run_worker({**request, "mark_syscall": MARKER_SYSCALL},
                                    work / f"{self.name}.{Path(request['model']).name}.count-request.json")
        if result.get("status") != "ok":
            return {**base, "status": "failed", "error": f"counting run: {result.get('error')}"}
        rows = read_class_counts(counts_file) if counts_file.is_file() else []
        warmup, runs = int(request.get("warmup", 0)), int(request.get("runs", 1))
        timed_rows = [(c, classes) for i, c, classes in rows if i >= warmup]
        timed = [c for c, _ in timed_rows]
        if len(timed) != runs:
            return {**base, "status": "failed",
                    "error": f"the plugin recorded {len(timed)} of {runs} marked inferences"}
        median = statistics.median_low(timed)
        classes = next(cls for c, cls in timed_rows if c == median)
        median_inference = next(i for i, c, _ in rows if i >= warmup and c == median)
        out = {**base, "status": "ok", "per_inference": median, "counts": timed,
               **class_fields(classes, median),
               "spread": (round((max(timed) - min(timed)) / median, 7) if median else 0.0) if len(timed) > 1 else None,
               "warmup": warmup, "runs": runs, "threads": request.get("threads"),
               "wall_ms": [round(float(x), 1) for x in (result.get("latency") or {}).get("samples_ms", [])],
               "blocks_file": str(blocks_file) if blocks_file.is_file() else None,
               "blocks_inference": median_inference}
        if int(request.get("threads") or 1) != 1:
            out["note"] = "more than one thread: counts include other threads' work and need not repeat"
        return out


def class_fields(classes: dict[str, int], total: int) -> dict[str, Any]:
    """``classes`` (instructions per class in the median run) and ``class_shares`` (of its total).

    Why: the shares show which kernel path ran, e.g. that int8 GEMMs on a dot-product core ran SDOT.
    """
    if not classes or not total:
        return {}
    return {"classes": dict(classes), "class_shares": {k: round(v / total, 4) for k, v in classes.items()}}


class _Counter(Device):
    """The same ARM device, started under the plugin-capable QEMU with the counter loaded."""

    def __init__(self, device: ArmDevice, counts: Path, blocks: Path | None = None):
        self.device, self.counts, self.blocks = device, counts, blocks
        self.timeout_s = device.timeout_s

    @property
    def runtimes(self) -> dict[str, str]:  # type: ignore[override]
        return self.device.runtimes

    def python_command(self) -> list[str]:
        return plugin_command(self.device.env(), self.device.cpu.qemu_cpu, self.counts, self.blocks)

    def worker_env(self) -> dict[str, str]:
        env = self.device.env()
        return {**guest_env(env), **plugin_host_env(env, self.device.cpu.qemu_cpu)}


def _register() -> None:
    for model in CPU_MODELS:
        cls_name = "Arm_" + model.name.replace("-", "_")
        globals()[cls_name] = type(cls_name, (ArmDevice,), {
            "name": model.name, "cpu": model,
            "description": f"{model.name} ({model.isa}; {', '.join(model.features)}) under QEMU: {model.stands_for}",
            "__doc__": f"Emulated {model.name}: {model.stands_for}.", "__module__": __name__,
        })


_register()
