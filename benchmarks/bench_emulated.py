"""Emulated examples per second, before and after length-aware emulation; and a build's time by phase.

"Before" is edgebert as it was (commit 2b5a48a): every example padded to seq_len 128, ONNX in batches
of 32 in dataset order (trimmed to the batch's longest row), TFLite with one [1, 128] signature.
"After" is today's worker: each example alone at its own length, TFLite on the smallest of its
seq32/seq64/seq128 signatures. Both run the same texts of the built-in test split, under the same
QEMU, in one process each, interleaved per artifact kind; the cost is the emulator's CPU seconds
(user+sys of the QEMU process, so a busy machine does not distort it), minus a run with no examples
(start-up and model load), divided by the examples.

    python benchmarks/bench_emulated.py [--model distilbert] [--cpus cortex-a53,cortex-a76] [--n 24]
    python benchmarks/bench_emulated.py --phases edgebert-build/summary.json   # a build's phases only

The "before" worker is read from git (``git show 2b5a48a:...``), so run it from a clone.
Needs `edgebert devices setup`. Takes ~10-15 minutes for the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

BEFORE = "2b5a48a"
KINDS = ("model.onnx", "model.int8-dynamic.onnx", "model.int8-static.onnx",
         "model.tflite", "model.int8-dynamic.tflite", "model.int8-static.tflite")


def old_worker(into: Path) -> Path:
    """The worker, runtimes and LiteRT runtime files of commit BEFORE (standalone: they import nothing of edgebert)."""
    root = Path(__file__).resolve().parents[1]
    into.mkdir(parents=True, exist_ok=True)
    for name in ("worker.py", "runtimes.py", "litert.py"):
        text = subprocess.run(["git", "-C", str(root), "show", f"{BEFORE}:edgebert/devices/{name}"],
                              check=True, capture_output=True, text=True).stdout
        (into / name).write_text(text)
    return into / "worker.py"


def artifacts(model: str, work: Path) -> tuple[Path, Path]:
    """(after, before) artifact directories: today's export, and one with a single [1, 128] TFLite signature."""
    from edgebert.export import ExportSettings, export
    from edgebert.export import tflite as tfl
    from edgebert.quantize import QuantizeSettings, quantize

    dirs = []
    for name, short in (("after", tfl.SHORT_LENGTHS), ("before", ())):
        d = work / name
        if not (d / "model.int8-static.tflite").is_file():
            tfl.SHORT_LENGTHS = short
            export(model, d, ExportSettings(formats=("onnx", "tflite"), seq_len=128))
            quantize(d, QuantizeSettings(mode="dynamic"))
            quantize(d, QuantizeSettings(mode="static"))
        dirs.append(d)
    tfl.SHORT_LENGTHS = (32, 64)
    return dirs[0], dirs[1]


def cpu_seconds(cmd: list[str], env: dict) -> float:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise RuntimeError(f"worker failed ({status}): {' '.join(cmd[-2:])}")
    return usage.ru_utime + usage.ru_stime


def run(device, worker: Path, model: Path, ids, mask, lat, batch: int, work: Path) -> float:
    from edgebert.devices.worker import build_request

    np.savez(work / "in.npz", input_ids=ids, attention_mask=mask, latency_input_ids=lat["input_ids"],
             latency_attention_mask=lat["attention_mask"])
    runtime = "onnxruntime" if model.suffix == ".onnx" else "litert"
    req = build_request(runtime=runtime, model=str(model), threads=1, inputs=str(work / "in.npz"),
                        outputs=str(work / "o.npz"), result=str(work / "r.json"), batch_size=batch,
                        warmup=0, runs=1)
    (work / "req.json").write_text(json.dumps(req))
    return cpu_seconds([*device.python_command(), str(worker), str(work / "req.json")], device.worker_env())


def measure(args) -> None:
    from transformers import AutoTokenizer

    from edgebert import devices
    from edgebert.data import load_builtin
    from edgebert.data.tokenize import encode
    from edgebert.devices.registry import WORKER_FILE

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-emulated-"))
    after, before = artifacts(args.model, work)
    old = old_worker(work / "old-worker")
    tok = AutoTokenizer.from_pretrained(str(after / "tokenizer"))
    texts = load_builtin("test").texts[:args.n]
    enc = encode(tok, texts, 128, pad_to_max=True)
    lat = encode(tok, texts[:1], 128, pad_to_max=True)
    empty = np.zeros((0, 128), np.int64)
    lengths = enc["attention_mask"].sum(1)
    print(f"# {args.model}, {args.n} built-in test texts (tokens: mean {lengths.mean():.1f}, max {lengths.max()}); "
          f"emulator CPU seconds per example, start-up and load subtracted")
    print(f"| CPU | artifact | before: ex/s | after: ex/s | speed-up |")
    print("|---|---|---:|---:|---:|")
    for cpu in args.cpus.split(","):
        device = devices.get(cpu)
        scratch = work / cpu
        scratch.mkdir(exist_ok=True)
        for kind in KINDS:
            rates = []
            for worker, d, batch in ((old, before, 32), (WORKER_FILE, after, 1)):
                base = run(device, worker, d / kind, empty, empty, lat, batch, scratch)
                full = run(device, worker, d / kind, enc["input_ids"], enc["attention_mask"], lat, batch, scratch)
                rates.append(args.n / max(full - base, 1e-9))
            print(f"| {cpu} | {kind} | {rates[0]:.2f} | {rates[1]:.2f} | {rates[1] / rates[0]:.1f}× |", flush=True)


def phases(summary_path: Path) -> None:
    summary = json.loads(summary_path.read_text())
    ph = summary.get("phases") or {}
    print(f"# {summary_path}: {summary['status']}, {summary['seconds']:.0f} s wall in all")
    print("| phase | seconds |")
    print("|---|---:|")
    for key, value in ph.items():
        print(f"| {key} | {value:.0f} |")
    print("(emulated_wall overlaps export/quantize of the later models; emulated_after_last_model is the wait "
          "after the last model was ready)")
    for m in summary["models"]:
        steps = ", ".join(f"{s['step']} {s['seconds']:.0f}s" for s in m.get("steps", []))
        print(f"- {m['name']}: {steps}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="distilbert")
    ap.add_argument("--cpus", default="cortex-a53,cortex-a76")
    ap.add_argument("--n", type=int, default=24, help="texts per measurement")
    ap.add_argument("--work", default=None, help="scratch directory (artifacts are reused when present)")
    ap.add_argument("--phases", type=Path, default=None, help="only print the phases of a build's summary.json")
    args = ap.parse_args()
    if args.phases:
        phases(args.phases)
        return 0
    measure(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
