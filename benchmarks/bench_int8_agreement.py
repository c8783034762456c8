"""Agreement of every int8 recipe with fp32, and each static recipe's GELU exception, on the validation split.

    python benchmarks/bench_int8_agreement.py [--workdir DIR] [--arch distilbert] [--format onnx]

Exports the built-in classifiers (ONNX and TFLite, seq 128), quantizes each recipe with the gate off,
then measures on the built-in *validation* split (never the test split: these numbers choose the
recipes and the default ``--min-agreement``), each text at batch 1 and its own length:
- agreement with fp32 on the first 200 texts (what ``quantize`` checks) and on all 500,
- accuracy on all 500, and the time ``quantize``'s check takes,
- ablations: "all-static", the static recipes without their GELU exception (every weight layer static),
  and ONNX dynamic with per-tensor weight scales (the ``--per-channel`` default's alternative).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import numpy as np

from edgebert.data import load_builtin
from edgebert.export import ExportSettings, export
from edgebert.manifest import Manifest
from edgebert.quantize import QuantizeSettings, quantize, static, tflite, validate


@contextlib.contextmanager
def without_gelu_exception():
    """The static recipes with no per-run-scale layers (the ablation)."""
    saved = static._post_gelu_matmuls, tflite.consumers_of
    static._post_gelu_matmuls = lambda model: []
    tflite.consumers_of = lambda data, *a, **k: []
    try:
        yield
    finally:
        static._post_gelu_matmuls, tflite.consumers_of = saved


def runner(path: Path):
    if path.suffix == ".tflite":
        from edgebert.devices.litert import LiteRT

        return LiteRT(str(path), threads=1).run
    return validate.onnx_runner(str(path))


def measure(fp32: Path, int8: Path, tokenizer) -> dict:
    data = load_builtin("validation")
    rows = validate.rows(tokenizer, 128, len(data))
    ref, cand = runner(fp32), runner(int8)
    a = np.concatenate([ref(i, m) for i, m in rows]).argmax(-1)
    b = np.concatenate([cand(i, m) for i, m in rows]).argmax(-1)
    labels = np.array(data.labels)
    start = time.perf_counter()
    validate.agreement(ref, cand, rows[:validate.AGREEMENT_TEXTS], 0.0)
    return {"agree200": float(np.mean(a[:200] == b[:200])), "agree500": float(np.mean(a == b)),
            "acc_fp32": float(np.mean(a == labels)), "acc": float(np.mean(b == labels)),
            "check_s": time.perf_counter() - start}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/edgebert-bench-agreement"))
    ap.add_argument("--arch", action="append", choices=["distilbert", "squeezebert"])
    ap.add_argument("--format", action="append", choices=["onnx", "tflite"])
    args = ap.parse_args(argv)
    from transformers import AutoTokenizer

    formats = tuple(args.format or ("onnx", "tflite"))
    print("| model | format | recipe | agreement (200) | agreement (500) | accuracy (500) | fp32 accuracy | check s |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.arch or ["distilbert", "squeezebert"]:
        d = args.workdir / name
        if not (d / "manifest.json").exists():
            export(name, d, ExportSettings(formats=formats, seq_len=128))
        tok = AutoTokenizer.from_pretrained(str(d / "tokenizer"))
        plain = contextlib.nullcontext
        variants = [("dynamic", "dynamic", plain, formats, {}),
                    ("dynamic", "dynamic --per-tensor", plain, ("onnx",), {"per_channel": False}),
                    ("static", "all-static (no GELU exception)", without_gelu_exception, formats, {}),
                    ("static", "static", plain, formats, {})]
        for mode, label, ctx, fmts, extra in variants:
            fmts = tuple(f for f in fmts if f in formats)
            if not fmts:
                continue
            with ctx():
                quantize(d, QuantizeSettings(mode=mode, formats=fmts, min_agreement=0.0, **extra))
            for fmt in fmts:
                fp32 = d / ("model.onnx" if fmt == "onnx" else "model.tflite")
                r = measure(fp32, d / Manifest.load(d).artifacts[f"model.int8-{mode}.{fmt}"]["path"], tok)
                print(f"| {name} | {fmt} | {label} | {r['agree200']:.3f} | {r['agree500']:.3f} | {r['acc']:.3f} | "
                      f"{r['acc_fp32']:.3f} | {r['check_s']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
