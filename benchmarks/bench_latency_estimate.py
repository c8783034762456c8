"""Check the cycle-model estimator where the truth can be measured: on this x86-64 host.

    python benchmarks/bench_latency_estimate.py ARTIFACT... [--lengths 32,128] [--mcpu sapphirerapids]
                                                [--keep DIR] [--jobs N] [--json FILE]

Phase 1 measures every native case first (keep the machine quiet then: the host's load changes the
clock a thread gets between the clock measurement and the timed runs); phase 2 runs the emulated cases,
whose recorded blocks are deterministic and kept in ``--keep DIR`` for a rerun.

For each artifact (an .onnx / .tflite file inside an edgebert artifact directory) and length, it runs:

1. **estimated**: the same measurement worker under ``qemu-x86_64`` user mode (bookworm's QEMU 7.2, set
   up by ``edgebert devices setup``) with the same counting plugin recording the executed blocks between
   the worker's inference markers; the same estimator as the emulated ARM devices
   (``edgebert.devices.estimate``: hot blocks >= 99% through llvm-mca with the host core's model, the
   rest at their mean CPI) at the cycles per second a thread gets on this core (dependent IMULs, measured
   around each native run);
2. **measured**: the same worker natively, batch 1, 1 thread, p50 of ``--runs`` timed runs.

QEMU's TCG emulates up to AVX2, not AVX-512/VNNI/AMX, so runtimes would pick other kernels natively.
The native run is made to see only what the emulator offers: a tiny LD_PRELOAD library (compiled here
with the system ``cc``) turns on CPUID faulting (``arch_prctl(ARCH_SET_CPUID, 0)``) and answers every
trapped CPUID with the host's bits ANDed with what ``qemu-x86_64 -cpu max`` reports for leaves 1, 7.0,
7.1 and 0x80000001. That the kernels match is then checked: the native and emulated logits of each case
must agree to 1e-4 (a different kernel path rounds differently); the maximum difference is printed.

Prints estimate, measured and error per case and the median and maximum |error|.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from edgebert.data.datasets import load_builtin
from edgebert.data.tokenize import encode
from edgebert.devices import get as get_device
from edgebert.devices.arm.environment import MARKER_SYSCALL, default_env, read_counts
from edgebert.devices.estimate import LlvmTools, Target, cycles, read_blocks
from edgebert.devices.registry import Device
from edgebert.devices.worker import build_request
from edgebert.hf_safe import load_tokenizer
from edgebert.manifest import Manifest

LEAVES = ((1, 0), (7, 0), (7, 1), (0x80000001, 0))
PROBE_C = r"""
#include <cpuid.h>
#include <stdio.h>
int main(void) {
  unsigned l[][2] = {{1,0},{7,0},{7,1},{0x80000001,0}};
  for (int i = 0; i < 4; i++) { unsigned a,b,c,d; __cpuid_count(l[i][0], l[i][1], a, b, c, d);
    printf("%u %u %u %u %u %u\n", l[i][0], l[i][1], a, b, c, d); }
  return 0;
}
"""
HIDE_C = r"""
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>
static const uint32_t masks[][6] = { MASKS };
static void on_segv(int sig, siginfo_t *si, void *ctx) {
  greg_t *g = ((ucontext_t *)ctx)->uc_mcontext.gregs;
  const uint8_t *ip = (const uint8_t *)g[REG_RIP];
  if (ip[0] != 0x0f || ip[1] != 0xa2) { signal(SIGSEGV, SIG_DFL); return; }   /* a real fault */
  uint32_t leaf = g[REG_RAX], sub = g[REG_RCX], r[4];
  syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
  __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
  syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
  for (unsigned i = 0; i < sizeof(masks) / sizeof(masks[0]); i++)
    if (masks[i][0] == leaf && (masks[i][1] == sub || leaf == 0x80000001u || leaf == 1))
      for (int k = 0; k < 4; k++) r[k] &= masks[i][2 + k];
  g[REG_RAX] = r[0]; g[REG_RBX] = r[1]; g[REG_RCX] = r[2]; g[REG_RDX] = r[3]; g[REG_RIP] += 2;
}
__attribute__((constructor)) static void init(void) {
  struct sigaction sa; memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = on_segv; sa.sa_flags = SA_SIGINFO; sigaction(SIGSEGV, &sa, NULL);
  syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
}
"""
CLOCK_C = r"""
#include <stdio.h>
#include <time.h>
int main(void) {  /* dependent 64-bit IMULs (3-cycle latency on Intel cores since Sandy Bridge), best of 5 */
  unsigned long x = 1, n = 40000000UL; struct timespec a, b; double best = 1e9;
  for (int rep = 0; rep < 5; rep++) {
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (unsigned long i = 0; i < n; i += 4)
      __asm__ volatile("imul %0, %0\n imul %0, %0\n imul %0, %0\n imul %0, %0" : "+r"(x));
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (b.tv_sec - a.tv_sec) + 1e-9 * (b.tv_nsec - a.tv_nsec);
    if (s < best) best = s;
  }
  printf("%.4f\n", 3.0 * n / best / 1e9 + 0 * x);
  return 0;
}
"""
IMUL_NOTE = ("a chain of dependent IMULs (3 cycles each; not add-immediates, which Golden Cove cores can fold at "
             "rename), measured just before and after each native run: the cycles per second one thread really "
             "got then (on a shared machine, less than the nominal clock)")


def _cc(src: str, out: Path, shared: bool = False) -> Path:
    c = out.with_suffix(".c")
    c.write_text(src)
    cmd = ["cc", "-O2", *(["-shared", "-fPIC"] if shared else []), str(c), "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


def _probe(cmd: list[str], env: dict | None = None) -> dict[tuple[int, int], list[int]]:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    rows = [list(map(int, ln.split())) for ln in out.splitlines()]
    return {(r[0], r[1]): r[2:] for r in rows}


class Emulated(Device):
    """The host's own Python under qemu-x86_64 with the counting plugin (blocks recorded)."""

    name, emulated = "x86-under-qemu", True
    timeout_s = 3600.0

    def __init__(self, root: Path, counts: Path, blocks: Path):
        self.root, self.counts, self.blocks = root, counts, blocks

    @property
    def runtimes(self):  # type: ignore[override]
        return dict(get_device("desktop").runtimes)

    def python_command(self) -> list[str]:
        return ["setarch", platform.machine(), "-R", str(self.root / "qemu-x86_64"), "-plugin",
                f"{self.root / 'libinsn_count.so'},out={self.counts},nr={MARKER_SYSCALL},blocks={self.blocks}",
                "-cpu", "max", sys.executable]

    def worker_env(self) -> dict[str, str]:
        return {**os.environ, "LD_LIBRARY_PATH": str(self.root / "lib"), "PYTHONHASHSEED": "0",
                "OMP_NUM_THREADS": "1", "ORT_DISABLE_TELEMETRY": "1"}


class Native(Device):
    """The host's Python natively, seeing only the CPU features the emulator has (LD_PRELOAD)."""

    name, emulated = "x86-native", False
    timeout_s = 3600.0

    def __init__(self, preload: Path):
        self.preload = preload

    @property
    def runtimes(self):  # type: ignore[override]
        return dict(get_device("desktop").runtimes)

    def python_command(self) -> list[str]:
        return [sys.executable]

    def worker_env(self) -> dict[str, str]:
        return {**os.environ, "LD_PRELOAD": str(self.preload), "OMP_NUM_THREADS": "1"}


def _inputs(path: Path, artifact: Path, seq_len: int) -> Path:
    man = Manifest.load(artifact.parent)
    tok = load_tokenizer(man.tokenizer_dir(), within=man.directory)
    text = load_builtin("test").texts[:1]
    enc = encode(tok, text, seq_len, pad_to_max=True)
    np.savez(path, input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
             latency_input_ids=enc["input_ids"], latency_attention_mask=enc["attention_mask"])
    return path


def _ghz(clock: Path) -> float:
    return float(subprocess.run([str(clock)], check=True, capture_output=True, text=True).stdout)


def _request(runtime: str, artifact: Path, inputs: Path, out: Path, tag: str, warmup: int, n: int, mark=None) -> dict:
    return build_request(runtime=runtime, model=str(artifact.resolve()), threads=1, inputs=str(inputs),
                         outputs=str(out / f"{tag}.logits.npz"), result=str(out / f"{tag}.json"),
                         warmup=warmup, runs=n, mark_syscall=mark)


def _runtime(artifact: Path) -> str:
    return "litert" if artifact.suffix == ".tflite" else "onnxruntime"


def _native(artifact: Path, seq_len: int, work: Path, preload: Path, clock: Path, runs: int) -> dict:
    """Phase 1 (needs a quiet machine): the native p50 and the cycles per second a thread got around it."""
    out = work / f"{artifact.name}.{seq_len}"
    out.mkdir(parents=True, exist_ok=True)
    inputs = _inputs(out / "inputs.npz", artifact, seq_len)
    req = _request(_runtime(artifact), artifact, inputs, out, "native", 10, runs)
    before = _ghz(clock)
    native = Native(preload).run_worker(req, out / "native.req.json")
    ghz = (before + _ghz(clock)) / 2  # the mean: the contention p50 saw, not the best moment
    if native.get("status") != "ok":
        raise RuntimeError(f"native run of {artifact.name}: {native.get('error')}")
    samples = native["latency"]["samples_ms"]
    return {"artifact": artifact.name, "path": str(artifact), "seq_len": native["latency"]["seq_len"],
            "measured_p50_ms": float(statistics.median(samples)), "measured_min_ms": float(min(samples)),
            "clock_ghz": ghz, "load_average": os.getloadavg()[0], "inputs": str(inputs),
            "native_logits": req["outputs"]}


def _cache_dir(keep: Path, artifact: Path, seq_len: int, qroot: Path) -> Path:
    """Where one case's emulated blocks are kept: they depend only on the artifact's bytes, the input,
    the length, QEMU + plugin and the runtime (deterministic counts), never on the host's load."""
    h = hashlib.sha256()
    for f in (artifact, qroot / "qemu-x86_64", qroot / "libinsn_count.so"):
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    h.update(f"{seq_len}:{sys.version}".encode())
    return keep / f"{artifact.name}.{seq_len}.{h.hexdigest()[:16]}"


def _emulated(case: dict, qroot: Path, keep: Path) -> dict:
    """Phase 2 (any load): the marked inference under qemu-x86_64 with its blocks recorded, kept in ``keep``."""
    artifact, seq_len = Path(case["path"]), case["seq_len"]
    out = _cache_dir(keep, artifact, seq_len, qroot)
    done = out / "emulated.done.json"
    if done.is_file():
        return {**json.loads(done.read_text()), "reused": True}
    out.mkdir(parents=True, exist_ok=True)
    inputs = Path(shutil.copy(case["inputs"], out / "inputs.npz"))
    req = _request(_runtime(artifact), artifact, inputs, out, "emulated", 1, 1, MARKER_SYSCALL)
    counts, blocks = out / "counts", out / "blocks"
    start = time.perf_counter()
    emu = Emulated(qroot, counts, blocks).run_worker(req, out / "emulated.req.json")
    if emu.get("status") != "ok":
        raise RuntimeError(f"emulated run of {artifact.name}: {emu.get('error')}")
    rec = {"counts": str(counts), "blocks": str(blocks), "logits": req["outputs"],
           "emulated_s": time.perf_counter() - start}
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec))
    tmp.rename(done)
    return {**rec, "reused": False}


def _estimate(case: dict, emu: dict, tools: LlvmTools, mcpu: str) -> dict:
    idx, insns = read_counts(Path(emu["counts"]))[-1]
    t0 = time.perf_counter()
    breakdown = cycles(read_blocks(Path(emu["blocks"]), idx), insns, tools, Target("x86_64", mcpu))
    est_s = time.perf_counter() - t0
    with np.load(case["native_logits"]) as a, np.load(emu["logits"]) as b:
        logit_diff = float(np.max(np.abs(a["logits"] - b["logits"])))
    estimate = breakdown["cycles"] / (case["clock_ghz"] * 1e6)
    measured = case["measured_p50_ms"]
    return {**case, "estimated_ms": estimate, "error_pct": (estimate - measured) / measured * 100,
            "instructions": insns, "logit_diff": logit_diff, "emulated_s": emu["emulated_s"],
            "emulation_reused": emu["reused"], "estimate_s": est_s, "breakdown": breakdown}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", nargs="+", type=Path)
    ap.add_argument("--lengths", default="32,128")
    ap.add_argument("--mcpu", default="sapphirerapids", help="llvm-mca model of this host's core")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--json", type=Path, help="also write the cases here")
    ap.add_argument("--keep", type=Path, help="keep (and reuse) the emulated runs' blocks here: they are "
                    "deterministic, so a rerun on a quieter machine repeats only the native runs")
    ap.add_argument("--jobs", type=int, default=1, help="emulated runs at a time (phase 2)")
    args = ap.parse_args()
    env = default_env()
    qroot = env.counting_root("qemu72")
    if not (qroot / "qemu-x86_64").exists() or env.llvm_missing():
        print("Error: run `edgebert devices setup` first (qemu-x86_64 with the counter, llvm-mca)", file=sys.stderr)
        return 2
    if shutil.which("cc") is None:
        print("Error: a C compiler (cc) is needed for the CPUID-hiding preload library", file=sys.stderr)
        return 2
    tools = LlvmTools(env.llvm)
    with tempfile.TemporaryDirectory(prefix="edgebert-bench-estimate-") as tmp:
        work = Path(tmp)
        probe = _cc(PROBE_C, work / "probe")
        qenv = {**os.environ, "LD_LIBRARY_PATH": str(qroot / "lib")}
        emulated = _probe([str(qroot / "qemu-x86_64"), "-cpu", "max", str(probe)], qenv)
        masks = ", ".join("{%du, %du, %du, %du, %du, %du}" % (leaf, sub, *emulated[(leaf, sub)]) for leaf, sub in LEAVES)
        preload = _cc(HIDE_C.replace("MASKS", masks), work / "libhide.so", shared=True)
        native = _probe([str(probe)], {**os.environ, "LD_PRELOAD": str(preload)})
        extra = {k: [n & ~e for n, e in zip(native[k], emulated[k])] for k in LEAVES}
        assert not any(any(v) for v in extra.values()), f"native CPUID still shows bits QEMU lacks: {extra}"
        clock = _cc(CLOCK_C, work / "clock")
        print(f"host: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; llvm-mca "
              f"-mcpu={args.mcpu} (LLVM {tools.version()}); clock: {IMUL_NOTE}")
        print("native runs see only the CPUID bits qemu-x86_64 -cpu max reports (CPUID faulting + LD_PRELOAD); "
              "kernels checked by logits")
        plan = [(art, int(n)) for art in args.artifacts for n in args.lengths.split(",")]
        print(f"phase 1: native p50 of {len(plan)} cases (load average {os.getloadavg()[0]:.1f}: keep the machine "
              "quiet now)", flush=True)
        natives = [_native(art, n, work, preload, clock, args.runs) for art, n in plan]
        keep = args.keep or work / "emulated"
        print(f"phase 2: emulated runs, {args.jobs} at a time, blocks kept in {keep} (the host's load no longer "
              "matters)", flush=True)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            emus = list(pool.map(lambda c: _emulated(c, qroot, keep), natives))
        cases = []
        for case, emu in zip(natives, emus):
            c = _estimate(case, emu, tools, args.mcpu)
            cases.append(c)
            b = c["breakdown"]
            print(f"{c['artifact']:26s} L={c['seq_len']:4d}  estimated {c['estimated_ms']:8.2f} ms  measured "
                  f"p50 {c['measured_p50_ms']:8.2f} ms (min {c['measured_min_ms']:.2f})  error {c['error_pct']:+6.1f}%"
                  f"  (at {c['clock_ghz']:.2f} GHz, load {c['load_average']:.1f}; {c['instructions'] / 1e6:.1f} M "
                  f"instr, CPI {b['cpi_modeled']:.2f}, hot {b['hot_blocks']} blocks, max|Δlogit| "
                  f"{c['logit_diff']:.1e}; emulated {c['emulated_s']:.0f} s{' (kept)' if c['emulation_reused'] else ''}"
                  f", estimate {c['estimate_s']:.1f} s)", flush=True)
    errs = [abs(c["error_pct"]) for c in cases]
    same = all(c["logit_diff"] <= 1e-4 for c in cases)
    print(f"{len(cases)} cases: median |error| {statistics.median(errs):.1f}%, max |error| {max(errs):.1f}% "
          f"(target: median <= 25%, max <= 50%); kernels {'matched' if same else 'DIFFERED'} "
          f"(max |Δlogit| {max(c['logit_diff'] for c in cases):.1e})")
    if args.json:
        args.json.write_text(json.dumps({"mcpu": args.mcpu, "cases": cases}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
