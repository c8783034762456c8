"""The ``estimated_latency`` of an emulated record: the cycle model's cycles at a named device's clock.

Why its own module: the estimate is a different kind of number from measured latency (``latency_ms``,
set only by a real device) and must never be mistaken for one: it has its own record key, its own
qualifier ("estimated ms (cycle model, <model> as <core>, <clock> GHz)") and its error band, in every
output. The cycles come from ``devices/estimate`` (llvm-mca over the blocks the counted inference ran);
here they become milliseconds:

    compute_ms = cycles / clock;  memory_floor_ms = artifact bytes / the device's DRAM bandwidth
    ms = max(compute_ms, memory_floor_ms)   (every weight is read at least once per inference)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

METHOD = "cycle model"
ESTIMATE_DEFINITION = (
    "estimated ms of one batch-1 inference at seq_len on the emulated core at a named device's clock, NOT a "
    "measurement: the counted inference's executed blocks (QEMU plugin), the hottest ones holding >= 99% of its "
    "instructions costed by llvm-mca's scheduling model that stands for the core (steady-state cycles per "
    "block execution x executions), the rest at those blocks' mean cycles per instruction; ms = max(cycles / "
    "clock, artifact bytes / DRAM bandwidth). Left out: cache misses, branch mispredictions, memory-carried "
    "dependencies between blocks. error_band_pct is the estimator's error band for that kind of core")


def label(core_model: str, core: str, clock_ghz: float) -> str:
    """The qualifier every estimate is shown with."""
    return f"estimated ms ({METHOD}, {core_model} as {core}, {clock_ghz:g} GHz)"


def to_ms(breakdown: dict[str, Any], *, core_model: str, core: str, clock_ghz: float, reference_device: str,
          error_band_pct: float, dram_gbps: float, bytes_streamed: int | None, seq_len: int,
          threads: int = 1, llvm_version: str | None = None) -> dict[str, Any]:
    """The ``estimated_latency`` record from a cycle breakdown (``devices.estimate.cycles``)."""
    compute_ms = breakdown["cycles"] / (clock_ghz * 1e6)
    floor_ms = bytes_streamed / (dram_gbps * 1e6) if bytes_streamed else 0.0
    ms = max(compute_ms, floor_ms)
    return {"kind": "estimate", "status": "ok", "ms": _sig(ms), "batch": 1, "seq_len": seq_len,
            "threads": threads, "method": METHOD, "core_model": core_model, "core": core,
            "clock_ghz": clock_ghz, "reference_device": reference_device, "error_band_pct": error_band_pct,
            "label": label(core_model, core, clock_ghz),
            "compute_ms": _sig(compute_ms), "memory_floor_ms": _sig(floor_ms),
            "bound": "memory" if floor_ms > compute_ms else "compute", "dram_gbps": dram_gbps,
            "bytes_streamed": bytes_streamed, "llvm_version": llvm_version, "breakdown": breakdown}


def _sig(x: float) -> float:
    """Four significant digits: an estimate's precision is its error band, far wider than that."""
    return float(f"{x:.4g}")


def not_estimated(status: str, error: str, core: str) -> dict[str, Any]:
    return {"kind": "estimate", "status": status, "error": error, "core": core, "method": METHOD}


def estimate_emulated(device, counted: dict[str, Any], seq_len: int, bytes_streamed: int | None,
                      clock_ghz: float | None = None) -> dict[str, Any]:
    """The estimate of an emulated ARM device's counted run (``ArmDevice.count_instructions``); never raises."""
    from ..devices.estimate import LlvmTools, McaError, Target, cycles, read_blocks

    timing = device.cpu.timing
    if timing is None:
        return not_estimated("unavailable", f"no cycle model is declared for {device.name}", device.name)
    env = device.env()
    reason = env.llvm_missing()
    if reason:
        return not_estimated("unavailable", reason, device.name)
    if counted.get("status") != "ok" or not counted.get("blocks_file"):
        return not_estimated("unavailable", "no executed-block record from the counting run", device.name)
    start = time.perf_counter()
    tools = LlvmTools(env.llvm)
    try:
        recorded = read_blocks(Path(counted["blocks_file"]), int(counted["blocks_inference"]))
        breakdown = cycles(recorded, int(counted["per_inference"]), tools,
                           Target("aarch64", timing.mca_cpu, "+all"))
    except (McaError, ValueError, OSError, KeyError) as exc:
        return not_estimated("failed", f"cycle model: {exc}", device.name)
    out = to_ms(breakdown, core_model=timing.mca_cpu, core=device.name, clock_ghz=clock_ghz or timing.clock_ghz,
                reference_device=timing.reference_device if clock_ghz is None else
                f"{timing.reference_device} (clock overridden)", error_band_pct=timing.error_band_pct,
                dram_gbps=timing.dram_gbps, bytes_streamed=bytes_streamed, seq_len=seq_len,
                llvm_version=env.info().get("llvm_version"))
    out["seconds"] = round(time.perf_counter() - start, 2)  # the cost of estimating (not of the emulated run)
    return out
