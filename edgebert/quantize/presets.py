"""Dynamic int8 ONNX recipes per target CPU, chosen by measurement (``benchmarks/bench_vs_optimum.py``).

The fastest int8 recipe depends on the CPU's integer dot-product instructions: x86 with VNNI (and AVX2
without it), ARM with dot product (Cortex-A55/A76, Neoverse-N1) and ARM without (Cortex-A53/A72).
Each :class:`Preset` says what to quantize and how, and why it won on that target; the manifest
records the target and that reason. ``auto`` is the machine quantizing; ``target_for_devices`` picks
the target a build's devices need.

Measured on the built-in DistilBERT (b1, seq 128, TorchScript opset-18 export; guest instructions per
inference on the emulated CPU; ``benchmarks/bench_vs_optimum.py`` prints the current numbers):
- cortex-a53 (no dot product): weight MatMuls only, per-tensor 423.7 M; per-channel 426.3 M; with the 12
  attention MatMuls int8 too 445.2 M (Optimum's recipe: 441.9 M); uint8 weights (u8u8) 604.1 M;
  fused QAttention (ORT transformer optimizer) 442.7 M;
- cortex-a76 (dot product): attention MatMuls int8 too, per-tensor (Optimum's arm64 recipe) 212.6 M;
  per-channel 215.7 M; weight MatMuls only 216.2 M per-tensor, 218.5 M per-channel; u8u8 216.2 M;
  fused QAttention 236.1 M;
- desktop (AVX2 host, ONNX Runtime 1.32, 1 thread): weight MatMuls only 0.98x Optimum's p50
  (per-tensor and per-channel alike); u8u8 1.17x; fused QAttention 1.17x.
Per-tensor scales are kept only where they were cheaper; the accuracy gate (``min_agreement``) runs
on every artifact whatever the preset. ``reduce_range`` is not a preset choice: it follows the host
that validates the artifact (``host_isa.py``).
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError


@dataclass(frozen=True)
class Preset:
    target: str
    weight_type: str              # "QInt8" (u8s8 kernels) | "QUInt8" (u8u8)
    per_channel: bool             # weight scales per output channel (unless the user sets them)
    op_types: tuple[str, ...]     # ORT op types to quantize; MatMuls without a constant input stay float
    quantize_attention: bool      # also the activation×activation MatMuls (scores, context)
    why: str


WEIGHT_ONLY = ("MatMul", "Gemm", "Gather")

PRESETS: dict[str, Preset] = {
    "x86-vnni": Preset(
        "x86-vnni", "QInt8", True, WEIGHT_ONLY, False,
        "x86 (VNNI or AVX2): int8 weights for the weight MatMuls only (u8s8), per-channel: as fast as per-tensor "
        "(0.98x Optimum's p50 on an AVX2 host), u8u8 and fused QAttention were 1.17x slower"),
    "arm-dotprod": Preset(
        "arm-dotprod", "QInt8", False, WEIGHT_ONLY, True,
        "ARM with dot product (A55/A76/N1): int8 weight and attention MatMuls (u8s8, per-tensor) ran the fewest "
        "guest instructions on the emulated cortex-a76 (212.6 M vs 218.5 M weight-only per-channel)"),
    "arm-nodot": Preset(
        "arm-nodot", "QInt8", True, WEIGHT_ONLY, False,
        "ARM without dot product (A53/A72): int8 weight MatMuls only (u8s8) ran the fewest guest instructions on "
        "the emulated cortex-a53 (per-channel 426.3 M, 0.96x Optimum's 441.9 M; int8 attention 445 M, u8u8 604 M); "
        "per-channel kept: per-tensor saves only 0.6% (423.7 M) and costs agreement with fp32 (DistilBERT "
        "dynamic 0.952 vs 0.972 on the 500 validation texts)"),
}
TARGETS = ("auto", *PRESETS)


def host_target(cpuinfo: Path = Path("/proc/cpuinfo"), machine: str | None = None) -> str:
    """The target of the machine this runs on (``auto``)."""
    machine = (machine or platform.machine()).lower()
    if machine in ("aarch64", "arm64"):
        try:
            flags = cpuinfo.read_text(errors="replace")
        except OSError:
            flags = ""
        return "arm-dotprod" if "asimddp" in flags.split() or " asimddp" in flags else "arm-nodot"
    return "x86-vnni"


def resolve(target: str | None) -> tuple[str, Preset, str]:
    """(target, preset, how it was chosen) for ``--target`` (``auto``/None: this machine)."""
    if target in (None, "auto"):
        name = host_target()
        return name, PRESETS[name], f"auto: the quantizing machine ({platform.machine()})"
    if target not in PRESETS:
        raise UsageError(f"unknown quantization target {target!r}; use one of {', '.join(TARGETS)}")
    return target, PRESETS[target], "requested"


def device_target(name: str) -> str:
    """The target of one registered device: an emulated ARM CPU by its dot product, the desktop by this host."""
    from .. import devices

    if devices.is_board(name):  # a real board: by the dot product its cores report (the safe recipe when unknown)
        return "arm-dotprod" if devices.get(name).has_dotprod() else "arm-nodot"
    if name not in devices.names():
        raise UsageError(f"unknown device {name!r}; see `edgebert devices list`")
    cpu = getattr(devices.get(name), "cpu", None)
    if cpu is None:
        return host_target()
    return "arm-dotprod" if "dotprod" in tuple(getattr(cpu, "features", ())) else "arm-nodot"


#: When devices need different targets, the first of these among them wins: the recipe of the weakest
#: int8 core (no dot product) also runs correctly everywhere, and that core gains the most from it.
PREFERENCE = ("arm-nodot", "arm-dotprod", "x86-vnni")


def target_for_devices(device_names: Iterable[str]) -> str:
    """The quantization target for a build checked on ``device_names`` (``auto`` when there are none)."""
    targets = {device_target(n) for n in device_names}
    if not targets:
        return "auto"
    return next(t for t in PREFERENCE if t in targets)


def per_channel(requested: bool | None, preset: Preset) -> bool:
    """The user's ``--per-channel/--per-tensor`` if given, else the preset's measured choice."""
    return preset.per_channel if requested is None else bool(requested)


def record(target: str, preset: Preset, chosen: str) -> dict:
    """The manifest's ``quantization["target"]``."""
    return {"name": target, "chosen": chosen, "why": preset.why, "weight_type": preset.weight_type,
            "per_channel": preset.per_channel, "op_types": list(preset.op_types),
            "quantize_attention": preset.quantize_attention}
