"""Latency/size of edgebert's int8 recipes vs fp32 on base-size random-init models (ORT, CPU).

    python benchmarks/bench_quantize_recipes.py [--workdir DIR] [--runs 30] [--samples 64]

Builds DistilBERT (768 hidden, 6 layers) and SqueezeBERT (default config: 768, 12 layers, groups 4)
with random weights, exports them like ``edgebert export`` (dynamo, opset 20), runs
``edgebert.quantize`` for each recipe, and times batch 1 x seq 128 with 1 thread (warm-up, then
``--runs`` runs; p50/p90). Extra rows are ablations made with ORT directly: SqueezeBERT without
the Conv->MatMul rewrite (ConvInteger), QUInt8 weights, reduce_range.
Random weights: latency and size are meaningful; accuracy is not (see ``edgebert check``).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from edgebert.data import load_builtin
from edgebert.manifest import Manifest
from edgebert.models import get
from edgebert.quantize import QuantizeSettings, dynamic, inspect, quantize, rewrites
from edgebert.quantize.preprocess import pre_process, quiet_ort


def build_tokenizer(directory: Path):
    """WordPiece tokenizer over the built-in texts' common words (ids are all the model needs)."""
    from transformers import AutoTokenizer

    texts = load_builtin("calibration").texts
    words = collections.Counter(w for t in texts for w in re.findall(r"[a-z]+|[^\sa-z]", t.lower()))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [w for w, _ in words.most_common(3000)]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 512}))
    return AutoTokenizer.from_pretrained(str(directory))


def build_artifact_dir(name: str, directory: Path) -> Path:
    import torch
    from torch.export import Dim

    if (directory / "manifest.json").exists():
        return directory
    arch = get(name)
    build_tokenizer(directory / "tokenizer")
    torch.manual_seed(0)
    model = arch.model_class(arch.config_class(num_labels=2)).eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("bias"):
                p.normal_(0, 0.02)
    ids = torch.randint(5, 1000, (1, 128))
    dyn = {0: Dim("batch"), 1: Dim("sequence")}
    torch.onnx.export(model, (ids, torch.ones_like(ids)), str(directory / "model.onnx"), dynamo=True,
                      external_data=False, input_names=["input_ids", "attention_mask"], output_names=["logits"],
                      dynamic_shapes={"input_ids": dyn, "attention_mask": dyn}, verbose=False)
    manifest = Manifest.create(directory, model={"architecture": name, "num_labels": 2,
                                                 "id2label": {"0": "negative", "1": "positive"},
                                                 "source": {"kind": "random-init", "config": "default"}},
                               tokenizer={"path": "tokenizer"})
    manifest.add_artifact("model.onnx", {"path": "model.onnx", "format": "onnx", "precision": "fp32"})
    manifest.save()
    return directory


def latency(path: Path, runs: int, warmup: int = 5) -> tuple[float, float]:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {"input_ids": rng.integers(5, 1000, (1, 128)).astype(np.int64),
             "attention_mask": np.ones((1, 128), np.int64)}
    for _ in range(warmup):
        sess.run(None, feeds)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.percentile(times, 50)), float(np.percentile(times, 90))


def ablations(name: str, d: Path, scratch: Path) -> dict[str, Path]:
    """Variants made with ORT directly, to show why the recipes are what they are."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out: dict[str, Path] = {}
    model = onnx.load(str(d / "model.onnx"))
    onnx.save(model, str(scratch / "plain.onnx"))
    pre_process(scratch / "plain.onnx", scratch / "plain_pre.onnx")
    applied = rewrites.apply(model, get(name).onnx_rewrites)
    if any(r["sites"] for r in applied):
        with quiet_ort():
            quantize_dynamic(str(scratch / "plain_pre.onnx"), str(scratch / "dyn_norewrite.onnx"),
                             weight_type=QuantType.QInt8)
        out["dynamic QInt8, no rewrite (ORT default op types)"] = scratch / "dyn_norewrite.onnx"
        onnx.save(model, str(scratch / "rw.onnx"))
        pre_process(scratch / "rw.onnx", scratch / "rw_pre.onnx")
        out["fp32 after conv1x1_to_matmul"] = scratch / "rw_pre.onnx"
        src = scratch / "rw_pre.onnx"
    else:
        src = scratch / "plain_pre.onnx"
    for label, kw in [("dynamic QUInt8 weights", dict(weight_type=QuantType.QUInt8)),
                      ("dynamic QInt8 reduce_range", dict(weight_type=QuantType.QInt8, reduce_range=True))]:
        dst = scratch / (re.sub(r"\W+", "_", label) + ".onnx")
        with quiet_ort():
            quantize_dynamic(str(src), str(dst), op_types_to_quantize=list(dynamic.OP_TYPES), **kw)
        out[label] = dst
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/edgebert-bench-quantize"))
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--samples", type=int, default=64, help="static calibration samples")
    ap.add_argument("--arch", action="append", choices=["distilbert", "squeezebert"])
    ap.add_argument("--no-ablations", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    for name in args.arch or ["distilbert", "squeezebert"]:
        d = build_artifact_dir(name, args.workdir / name)
        for mode in ("dynamic", "static"):
            start = time.perf_counter()
            # random weights: agreement with fp32 is meaningless, so the gate is off
            quantize(d, QuantizeSettings(mode=mode, samples=args.samples, min_agreement=0.0))
            print(f"# {name} {mode}: quantized in {time.perf_counter() - start:.1f}s", file=sys.stderr)
        manifest = Manifest.load(d)
        models = {"fp32 (exported)": d / "model.onnx"}
        for art in ("model.int8-dynamic.onnx", "model.int8-static.onnx"):
            models[f"{manifest.artifacts[art]['quantization']['recipe']} (edgebert)"] = d / art
        if not args.no_ablations:
            scratch = args.workdir / f"{name}-ablations"
            scratch.mkdir(parents=True, exist_ok=True)
            models.update(ablations(name, d, scratch))
        for label, path in models.items():
            p50, p90 = latency(path, args.runs)
            summary = inspect.summarize(onnx.load(str(path)))
            int8 = ", ".join(f"{k} {v}" for k, v in summary["quantized_ops"].items()) or "-"
            flt = ", ".join(f"{k} {v}" for k, v in summary["float_ops"].items()) or "-"
            rows.append((name, label, p50, p90, path.stat().st_size / 1e6, int8, flt))
            print(f"# {name:11} {label:50} p50 {p50:7.1f}", file=sys.stderr, flush=True)
    print("| model | variant | p50 ms | p90 ms | size MB | int8 ops | float compute ops |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.1f} | {r[4]:.1f} | {r[5]} | {r[6]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
