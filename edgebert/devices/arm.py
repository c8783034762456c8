"""Emulated ARM devices: one catalog entry per CPU model, each a registered :class:`Device`.

An ARM device runs the SAME measurement worker as the desktop, inside an aarch64 Python under QEMU
user mode (``edgebert devices setup`` builds it under the edgebert cache)::

    qemu-aarch64 -cpu MODEL -L SYSROOT SYSROOT/usr/bin/python3.11 worker.py REQUEST   (PYTHONPATH=SITE)

That run (QEMU 10) gives the logits: accuracy, agreement with fp32 and drift against the desktop.
Emulated wall time is not device latency, so cost is reported as **guest instructions per
inference**, counted by a TCG plugin (``qemu/insn_count.c``) in a second, short worker run under the
plugin-capable QEMU: the worker brackets each batch-1 inference with a marker syscall
(``mark_syscall`` in the request) and the plugin writes the count between the markers.

Adding a CPU model is one :class:`CpuModel` entry in ``CPU_MODELS``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import statistics

from .registry import Desktop, Device
from . import setup as _setup


@dataclass(frozen=True)
class CpuModel:
    """One emulated CPU: what QEMU calls it, what it stands for, what its int8 kernels can use."""

    name: str                 # device name (``--device``)
    qemu_cpu: str             # ``qemu-aarch64 -cpu`` model
    isa: str                  # architecture level
    features: tuple[str, ...]  # ISA features that change int8/fp32 kernel choice
    stands_for: str           # the real-world device class
    cores: int                # cores of the typical device (for reference; see ``threads``)
    counting: bool = True     # the counting QEMU (built by `devices setup`) emulates it
    threads: int = 1          # default runtime threads: 1, the only setting with exact instruction counts

    @property
    def dotprod(self) -> bool:
        return "dotprod" in self.features


CPU_MODELS: tuple[CpuModel, ...] = (
    CpuModel("cortex-a53", "cortex-a53", "Armv8.0-A", ("neon",),
             "low-end phones and the Raspberry Pi 3 (in-order, no dot product)", 4),
    CpuModel("cortex-a55", "cortex-a55", "Armv8.2-A", ("neon", "fp16", "dotprod"),
             "efficiency cores of most phones since 2018; low-end phones (in-order)", 4),
    CpuModel("cortex-a72", "cortex-a72", "Armv8.0-A", ("neon",),
             "the Raspberry Pi 4 and 2016-era phone big cores (no dot product)", 4),
    CpuModel("cortex-a76", "cortex-a76", "Armv8.2-A", ("neon", "fp16", "dotprod"),
             "Pixel-class phone big cores (2019-2021) and the Raspberry Pi 5", 4),
    CpuModel("cortex-a710", "cortex-a710", "Armv9.0-A", ("neon", "fp16", "dotprod", "i8mm", "bf16", "sve2"),
             "2022 flagship phone big cores (int8 matrix multiply, SVE2)", 4),
    CpuModel("neoverse-n1", "neoverse-n1", "Armv8.2-A", ("neon", "fp16", "dotprod"),
             "AWS Graviton2 and Ampere Altra servers", 64),
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

    def env(self) -> _setup.ArmEnv:
        return _setup.default_env()

    def python_command(self) -> list[str]:
        env = self.env()
        return [str(env.qemu), "-cpu", self.cpu.qemu_cpu, "-L", str(env.sysroot), str(env.python)]

    def worker_env(self) -> dict[str, str]:
        return _setup._guest_env(self.env())

    def unavailable_reason(self) -> str | None:
        return self.env().missing()

    def setup_missing(self) -> str | None:
        """The accuracy environment, and the counting QEMU for this CPU model (its count is required)."""
        return self.unavailable_reason() or self.env().counting_missing(self.cpu.qemu_cpu)

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
        """
        env = self.env()
        reason = env.missing() or env.counting_missing(self.cpu.qemu_cpu)
        base = {"method": "guest instructions between worker markers, QEMU TCG plugin (insn_count.c)",
                "qemu_version": env.counting_version(self.cpu.qemu_cpu), "cpu": self.cpu.qemu_cpu}
        if reason:
            return {**base, "status": "unavailable", "error": reason}
        counts_file = work / f"{self.name}.{Path(request['model']).name}.insns.txt"
        counts_file.unlink(missing_ok=True)
        counter = _Counter(self, counts_file)
        result = counter.run_worker({**request, "mark_syscall": _setup.MARKER_SYSCALL},
                                    work / f"{self.name}.{Path(request['model']).name}.count-request.json")
        if result.get("status") != "ok":
            return {**base, "status": "failed", "error": f"counting run: {result.get('error')}"}
        rows = _setup.read_class_counts(counts_file) if counts_file.is_file() else []
        warmup, runs = int(request.get("warmup", 0)), int(request.get("runs", 1))
        timed_rows = [(c, classes) for i, c, classes in rows if i >= warmup]
        timed = [c for c, _ in timed_rows]
        if len(timed) != runs:
            return {**base, "status": "failed",
                    "error": f"the plugin recorded {len(timed)} of {runs} marked inferences"}
        median = statistics.median_low(timed)
        classes = next(cls for c, cls in timed_rows if c == median)
        out = {**base, "status": "ok", "per_inference": median, "counts": timed,
               **class_fields(classes, median),
               "spread": (round((max(timed) - min(timed)) / median, 7) if median else 0.0) if len(timed) > 1 else None,
               "warmup": warmup, "runs": runs, "threads": request.get("threads"),
               "wall_ms": [round(float(x), 1) for x in (result.get("latency") or {}).get("samples_ms", [])]}
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

    def __init__(self, device: ArmDevice, counts: Path):
        self.device, self.counts = device, counts
        self.timeout_s = device.timeout_s

    @property
    def runtimes(self) -> dict[str, str]:  # type: ignore[override]
        return self.device.runtimes

    def python_command(self) -> list[str]:
        return _setup.plugin_command(self.device.env(), self.device.cpu.qemu_cpu, self.counts)

    def worker_env(self) -> dict[str, str]:
        env = self.device.env()
        return {**_setup._guest_env(env), **_setup.plugin_host_env(env, self.device.cpu.qemu_cpu)}


def _register() -> None:
    for model in CPU_MODELS:
        cls_name = "Arm_" + model.name.replace("-", "_")
        globals()[cls_name] = type(cls_name, (ArmDevice,), {
            "name": model.name, "cpu": model,
            "description": f"{model.name} ({model.isa}; {', '.join(model.features)}) under QEMU: {model.stands_for}",
            "__doc__": f"Emulated {model.name}: {model.stands_for}.", "__module__": __name__,
        })


_register()
