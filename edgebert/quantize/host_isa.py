"""Whether this host's ONNX Runtime int8 kernels need 7-bit weights (``reduce_range``).

Why: on x86 without VNNI, ONNX Runtime's u8s8 GEMM multiplies with ``vpmaddubsw``, which adds pairs of
u8 x s8 products into int16 and saturates; full-range int8 weights then corrupt the logits (measured on
an AVX2-only AMD EPYC: tiny trained DistilBERT max |logit diff| vs fp32 0.61 instead of < 0.05, an
untrained SqueezeBERT agreement 0.00). 7-bit weights cannot saturate there. With VNNI (``vpdpbusd``
adds in int32) or on ARM (SDOT / widening multiplies) full range is exact, and keeps one more bit.
The quantizers validate against fp32 on this host, so the choice follows the host and is recorded in
the manifest with its reason. The host CPU is read by ``devices/host_cpu.py`` (also the desktop
device's fingerprint).
"""

from __future__ import annotations

from ..devices import host_cpu

VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def cpu_flags(cpuinfo: str) -> set[str]:
    """The ISA flags of the first processor in a Linux ``/proc/cpuinfo`` text."""
    return set(host_cpu.parse(cpuinfo).flags)


def reduce_range_choice(machine: str, flags: set[str]) -> tuple[bool, str]:
    """(reduce_range, why) for a host of architecture ``machine`` with CPU ``flags``."""
    if machine.lower() not in ("x86_64", "amd64", "i686", "x86"):
        return False, f"{machine} host: ONNX Runtime's int8 kernels do not saturate; full-range int8 weights"
    vnni = sorted(f for f in VNNI_FLAGS if f in flags)
    if vnni:
        return False, f"x86 host with {', '.join(vnni)}: int32 accumulation, full-range int8 weights"
    return True, ("x86 host without VNNI: ONNX Runtime's u8s8 kernels (vpmaddubsw) saturate int16 sums "
                  "with full-range weights, so weights are 7-bit (reduce_range)")


def host_reduce_range() -> tuple[bool, str]:
    """:func:`reduce_range_choice` for this machine (flags from /proc/cpuinfo where there is one)."""
    cpu = host_cpu.host()
    return reduce_range_choice(cpu.machine, set(cpu.flags))
