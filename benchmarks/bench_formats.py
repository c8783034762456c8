"""ONNX vs TFLite, fp32 vs int8 dynamic vs int8 static, on the built-in models (desktop).

For each architecture: ``export`` (ONNX + TFLite), ``quantize --mode dynamic`` and ``--mode static``
(every format), then ``check`` on the built-in test split (2,000 texts) with the same worker and
settings as the CLI. Prints accuracy, Δ accuracy vs the same format's fp32, latency p50 (batch 1,
seq 128, 1 thread), size and size ratio, plus how long export/quantize took per step.

    python benchmarks/bench_formats.py                      # both built-in models, ~10 min on 2 cores
    python benchmarks/bench_formats.py --arch distilbert --limit 500 --runs 20
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from edgebert.check import CheckSettings, check
from edgebert.export import ExportSettings, export
from edgebert.quantize import QuantizeSettings, quantize


def run_arch(arch: str, out: Path, args) -> tuple[list[dict], dict[str, float]]:
    timings = {}
    start = time.perf_counter()
    export(arch, out, ExportSettings(formats=("onnx", "tflite"), seq_len=args.seq_len))
    timings["export onnx+tflite"] = time.perf_counter() - start
    for mode in ("dynamic", "static"):
        for fmt in ("onnx", "tflite"):
            start = time.perf_counter()
            quantize(out, QuantizeSettings(mode=mode, formats=(fmt,), samples=args.samples))
            timings[f"quantize {fmt} {mode}"] = time.perf_counter() - start
    report = check(out, CheckSettings(limit=args.limit, runs=args.runs, warmup=args.warmup, seq_len=args.seq_len))
    return report["records"], timings


def table(arch: str, records: list[dict]) -> list[str]:
    by = {r["artifact"]: r for r in records}
    lines = []
    for fmt in ("onnx", "tflite"):
        for prec in ("fp32", "int8-dynamic", "int8-static"):
            rec = next((r for r in records if r["format"] == fmt and r["precision"] == prec), None)
            if rec is None:
                continue
            ref = by.get(rec.get("reference") or "")
            if rec["status"] != "ok":
                lines.append(f"| {arch} | {fmt} | {prec} | failed: {rec['error'][:80]} | | | | | |")
                continue
            acc, p50, size = rec["accuracy"], rec["latency_ms"]["p50"], rec["size_bytes"]
            d_acc = (acc - ref["accuracy"]) * 100 if ref and ref["status"] == "ok" else None
            speed = ref["latency_ms"]["p50"] / p50 if ref and ref["status"] == "ok" else None
            ratio = ref["size_bytes"] / size if ref else None
            lines.append(f"| {arch} | {fmt} | {prec} | {acc * 100:.2f}% | "
                         f"{'' if d_acc is None else f'{d_acc:+.2f}'} | {p50:.2f} | "
                         f"{'' if speed is None else f'{speed:.2f}×'} | {size / 1e6:.1f} | "
                         f"{'' if ratio is None else f'{ratio:.2f}×'} |")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", action="append", choices=("distilbert", "squeezebert"))
    ap.add_argument("--out", type=Path, default=None, help="keep artifacts here (default: a temp dir)")
    ap.add_argument("--limit", type=int, default=None, help="first N test texts (default: all 2,000)")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--samples", type=int, default=256, help="static calibration samples")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--json", type=Path, default=None, help="also write the records here")
    args = ap.parse_args(argv)
    archs = args.arch or ["distilbert", "squeezebert"]
    with tempfile.TemporaryDirectory(prefix="bench-tflite-") as tmp:
        root = args.out or Path(tmp)
        rows, all_records, all_timings = [], {}, {}
        for arch in archs:
            records, timings = run_arch(arch, root / arch, args)
            all_records[arch], all_timings[arch] = records, timings
            rows += table(arch, records)
            print(f"{arch}: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()), file=sys.stderr, flush=True)
    print("| arch | format | precision | accuracy | Δ acc (pts) | p50 ms | speed-up | size MB | smaller |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    print()
    for arch, timings in all_timings.items():
        print(f"{arch}: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    if args.json:
        args.json.write_text(json.dumps({"records": all_records, "timings": all_timings}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
