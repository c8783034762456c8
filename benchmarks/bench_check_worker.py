"""Does measuring in a separate worker process distort latency? And what does `check` cost?

Builds a random-init DistilBERT (base size by default), exports fp32 ONNX and a dynamic-int8 copy,
runs ``edgebert check`` on them (worker subprocess per artifact), then times the same artifacts
in-process with the same measurement loop (``worker.measure``), interleaved, and prints both.

    python benchmarks/bench_check_worker.py [--size base|tiny] [--runs 30] [--limit 200] [--out DIR]

Relative figures matter on a shared machine, not absolute ones.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def build(out: Path, size: str) -> None:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from torch.export import Dim
    from transformers import AutoTokenizer

    from edgebert.manifest import Manifest
    from edgebert.models import get

    arch = get("distilbert")
    config = arch.config_class(num_labels=2) if size == "base" else arch.tiny_config()
    torch.manual_seed(0)
    model = arch.model_class(config).eval()
    out.mkdir(parents=True, exist_ok=True)
    tok_dir = out / "tokenizer"
    tok_dir.mkdir(exist_ok=True)
    words = sorted({w for t in __import__("edgebert.data", fromlist=["x"]).load_builtin("test").texts[:500]
                    for w in t.lower().split() if w.isalpha()})
    (tok_dir / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    (tok_dir / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer",
                                                               "do_lower_case": True}))
    assert len(AutoTokenizer.from_pretrained(str(tok_dir)).get_vocab()) > 100
    x = torch.randint(5, 100, (1, 16))
    dims = {0: Dim("batch"), 1: Dim("sequence")}
    start = time.perf_counter()
    torch.onnx.export(model, (x, torch.ones_like(x)), str(out / "model.onnx"), dynamo=True, external_data=False,
                      input_names=["input_ids", "attention_mask"], output_names=["logits"],
                      dynamic_shapes={"input_ids": dims, "attention_mask": dims}, verbose=False)
    quantize_dynamic(str(out / "model.onnx"), str(out / "model.int8-dynamic.onnx"), weight_type=QuantType.QInt8)
    print(f"export + quantize: {time.perf_counter() - start:.1f}s")
    man = Manifest.create(out, model={"architecture": "distilbert", "num_labels": 2,
                                      "id2label": {"0": "negative", "1": "positive"},
                                      "label2id": {"negative": 0, "positive": 1},
                                      "source": {"kind": "benchmark", "id": f"random-{size}"}},
                          tokenizer={"path": "tokenizer"})
    man.add_artifact("model.onnx", {"path": "model.onnx", "format": "onnx", "precision": "fp32"})
    man.add_artifact("model.int8-dynamic.onnx", {"path": "model.int8-dynamic.onnx", "format": "onnx",
                                                 "precision": "int8-dynamic"})
    man.save()


def in_process(out: Path, report: dict, runs: int, warmup: int) -> dict[str, dict]:
    from transformers import AutoTokenizer

    from edgebert.check import metrics
    from edgebert.data.tokenize import encode
    from edgebert.devices import runtimes, worker

    seq_len = report["settings"]["seq_len"]
    tok = AutoTokenizer.from_pretrained(str(out / "tokenizer"))
    from edgebert.data import load_builtin

    lat = encode(tok, load_builtin("test").texts[:1], seq_len)
    empty = np.zeros((0, seq_len), np.int64)
    res = {}
    for rec in report["records"]:
        rt = runtimes.OnnxRuntimeCPU(str(out / rec["artifact"]), report["settings"]["threads"])
        _, m = worker.measure(rt, empty, empty, lat["input_ids"], lat["attention_mask"],
                              batch_size=32, warmup=warmup, runs=runs)
        res[rec["artifact"]] = metrics.latency_summary(m["latency"]["samples_ms"])
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", choices=("base", "tiny"), default="base")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    tmp = None
    out = args.out
    if out is None:
        tmp = tempfile.mkdtemp(prefix="edgebert-bench-")
        out = Path(tmp)
    try:
        if not (out / "manifest.json").exists():
            build(out, args.size)
        from edgebert.check import CheckSettings, check

        start = time.perf_counter()
        report = check(out, CheckSettings(limit=args.limit, runs=args.runs, warmup=args.warmup))
        wall = time.perf_counter() - start
        inproc = in_process(out, report, args.runs, args.warmup)
        print(f"check wall time ({len(report['records'])} artifacts, n={report['dataset']['n']}): {wall:.1f}s")
        print(f"{'artifact':28} {'worker p50/p90 ms':>18} {'in-proc p50/p90 ms':>19} {'load ms':>8} "
              f"{'acc pass s':>10} {'peak RSS MB':>11} {'after acc MB':>12} {'MB':>7}")
        for rec in report["records"]:
            lat, ip = rec["latency_ms"], inproc[rec["artifact"]]
            print(f"{rec['artifact']:28} {lat['p50']:8.2f} / {lat['p90']:7.2f} {ip['p50']:9.2f} / {ip['p90']:7.2f} "
                  f"{rec['load_ms']:8.0f} {rec['accuracy_pass']['seconds']:10.2f} {rec['peak_rss_mb']:11.0f} "
                  f"{rec['rss_mb']['after_accuracy']:12.0f} {rec['size_bytes'] / 1e6:7.1f}")
        print("agreement int8 vs fp32:", [r["agreement"] for r in report["records"]])
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
