"""What a board is: architecture, cores (part numbers -> core names, big.LITTLE clusters), Python, glibc.

Why from inside the board's Python: the login shell may not be where the worker runs (a board whose
``python3`` is a wrapper, e.g. the emulated test board), and ``/proc/cpuinfo`` as that Python sees it
is what the runtimes' kernels see. The probe script is sent on stdin (``python3 -``) and prints one
JSON object, which is parsed here as data; nothing the board sends is ever executed.

``check_supported`` turns the probe into one line saying what is missing and how to fix it.
"""

from __future__ import annotations

import json
from typing import Any

from .transport import BoardError

EMULATED_ENV = "EDGEBERT_BOARD_EMULATED"   # set on the board (any non-empty value: what emulates it)
BOARD_DIR_ENV = "EDGEBERT_BOARD_DIR"       # set on the board: where edgebert keeps its files there
PYTHON_ENV = "EDGEBERT_BOARD_PYTHON"       # set on the board: the Python edgebert runs (default python3)
DEFAULT_BOARD_DIR = "~/.cache/edgebert-board"
MIN_GLIBC = (2, 27)                        # the oldest manylinux tag of the pinned runtimes' aarch64 wheels
MIN_PYTHON = (3, 10)

#: MIDR part numbers of Arm Ltd (implementer 0x41) -> core name (edgebert's catalog spelling).
ARM_PARTS = {
    0xd03: "cortex-a53", 0xd04: "cortex-a35", 0xd05: "cortex-a55", 0xd07: "cortex-a57", 0xd08: "cortex-a72",
    0xd09: "cortex-a73", 0xd0a: "cortex-a75", 0xd0b: "cortex-a76", 0xd0c: "neoverse-n1", 0xd0d: "cortex-a77",
    0xd0e: "cortex-a76ae", 0xd40: "neoverse-v1", 0xd41: "cortex-a78", 0xd42: "cortex-a78ae", 0xd44: "cortex-x1",
    0xd46: "cortex-a510", 0xd47: "cortex-a710", 0xd48: "cortex-x2", 0xd49: "neoverse-n2", 0xd4a: "neoverse-e1",
    0xd4b: "cortex-a78c", 0xd4c: "cortex-x1c", 0xd4d: "cortex-a715", 0xd4e: "cortex-x3", 0xd4f: "neoverse-v2",
    0xd80: "cortex-a520", 0xd81: "cortex-a720", 0xd82: "cortex-x4", 0xd84: "neoverse-v3", 0xd85: "cortex-x925",
    0xd87: "cortex-a725", 0xd8e: "neoverse-n3",
}

# Runs on the board (any Python 3): standard library only, prints one JSON line.
PROBE_SCRIPT = r'''
import glob, json, os, platform, struct, sys
def read(p):
    try:
        with open(p, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None
cpus, cur = [], {}
for line in (read("/proc/cpuinfo") or "").splitlines():
    k, _, v = line.partition(":")
    k, v = k.strip(), v.strip()
    if k == "processor" and cur:
        cpus.append(cur); cur = {}
    if k in ("processor", "CPU implementer", "CPU part", "CPU variant", "Features", "model name"):
        cur[k] = v
if cur:
    cpus.append(cur)
for c in cpus:
    i = c.get("processor")
    if i is not None:
        c["max_khz"] = read("/sys/devices/system/cpu/cpu" + i + "/cpufreq/cpuinfo_max_freq")
home = os.path.expanduser("~")
board_dir = os.path.expanduser(os.environ.get("%(board_dir_env)s") or "%(default_dir)s")
probe = board_dir
while not os.path.exists(probe) and os.path.dirname(probe) != probe:
    probe = os.path.dirname(probe)
try:
    st = os.statvfs(probe); free = st.f_bavail * st.f_frsize
except OSError:
    free = None
osr = {}
for line in (read("/etc/os-release") or "").splitlines():
    k, _, v = line.partition("="); osr[k] = v.strip('"')
print(json.dumps({"machine": platform.machine(), "bits": struct.calcsize("P") * 8,
    "python": platform.python_version(), "implementation": platform.python_implementation(),
    "executable": sys.executable, "libc": list(platform.libc_ver()), "kernel": platform.release(),
    "os": osr.get("PRETTY_NAME"), "cpus": cpus, "nproc": os.cpu_count(), "board_dir": board_dir,
    "free_bytes": free, "emulated": os.environ.get("%(emulated_env)s") or None,
    "hostname": platform.node()}))
''' % {"board_dir_env": BOARD_DIR_ENV, "default_dir": DEFAULT_BOARD_DIR, "emulated_env": EMULATED_ENV}


def core_name(implementer: str | None, part: str | None) -> str | None:
    """``cortex-a76`` for implementer 0x41 part 0xd0b; ``implementer 0x51 part 0x802`` for others."""
    try:
        imp, prt = int(implementer or "", 16), int(part or "", 16)
    except ValueError:
        return None
    if imp == 0x41 and prt in ARM_PARTS:
        return ARM_PARTS[prt]
    return f"implementer {imp:#x} part {prt:#05x}"


def clusters(cpus: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cores grouped by core name (big.LITTLE: one entry per kind), biggest (fastest) last.

    Order: by maximum frequency where the board states it, else by the order the kernel lists them
    (big cores are usually numbered last).
    """
    groups: dict[str, dict[str, Any]] = {}
    for i, c in enumerate(cpus):
        name = core_name(c.get("CPU implementer"), c.get("CPU part")) or c.get("model name") or "unknown"
        g = groups.setdefault(name, {"core": name, "count": 0, "cpus": [], "max_mhz": None, "first": i})
        g["count"] += 1
        g["cpus"].append(int(c["processor"]) if str(c.get("processor", "")).isdigit() else i)
        try:
            mhz = int(c.get("max_khz") or "") // 1000
            g["max_mhz"] = max(g["max_mhz"] or 0, mhz)
        except ValueError:
            pass
    out = sorted(groups.values(), key=lambda g: (g["max_mhz"] or 0, g["first"]))
    return [{k: v for k, v in g.items() if k != "first"} for g in out]


def parse(stdout: bytes) -> dict[str, Any]:
    """The probe's JSON line as a dict (data only); BoardError when the board answered something else."""
    lines = [ln for ln in stdout.decode("utf-8", "replace").splitlines() if ln.strip().startswith("{")]
    try:
        data = json.loads(lines[-1]) if lines else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise BoardError("the board's python answered the probe with something that is not its JSON")
    cpus = [c for c in data.get("cpus") or [] if isinstance(c, dict)]
    data["clusters"] = clusters(cpus)
    data["features"] = sorted({f for c in cpus for f in str(c.get("Features") or "").split()})
    data.pop("cpus", None)
    return data


def check_supported(info: dict[str, Any], python: str) -> str | None:
    """None when edgebert can provision this board; else one line: what is missing and how to fix it."""
    machine = str(info.get("machine"))
    if machine in ("armv7l", "armv6l", "armv8l", "arm") or (machine == "aarch64" and info.get("bits") == 32):
        return (f"the board runs 32-bit ARM ({machine}): no onnxruntime/ai-edge-litert wheels exist for it; "
                f"install a 64-bit OS (e.g. Raspberry Pi OS 64-bit)")
    if machine not in ("aarch64", "arm64"):
        return (f"the board's {python} runs on {machine}, not aarch64: edgebert boards are 64-bit ARM "
                f"(measure this machine with --device desktop on it instead)")
    if info.get("implementation") != "CPython":
        return f"the board's {python} is {info.get('implementation')}, not CPython: install python3"
    version = tuple(int(x) for x in str(info.get("python", "0.0")).split(".")[:2])
    if version < MIN_PYTHON:
        return (f"the board's {python} is Python {info.get('python')}; the runtimes need "
                f"{'.'.join(map(str, MIN_PYTHON))}+: install a newer python3 or point `python` at one")
    libc, libc_version = (list(info.get("libc") or []) + ["", ""])[:2]
    if libc != "glibc" or glibc_version(info) < MIN_GLIBC:
        return (f"the board's C library is {libc or 'unknown'} {libc_version}; the runtimes' aarch64 wheels need "
                f"glibc {'.'.join(map(str, MIN_GLIBC))}+ (e.g. Debian 10+, Ubuntu 18.04+, Raspberry Pi OS bookworm)")
    return None


def glibc_version(info: dict[str, Any]) -> tuple[int, int]:
    try:
        major, minor = str((info.get("libc") or ["", ""])[1]).split(".")[:2]
        return int(major), int(minor)
    except (ValueError, IndexError):
        return (0, 0)


def python_tag(info: dict[str, Any]) -> str:
    """``3.11`` for Python 3.11.2."""
    return ".".join(str(info.get("python", "")).split(".")[:2])
