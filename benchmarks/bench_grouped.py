"""Grouped vs dense, ONNX forms of a grouped 1x1 conv: p50 side by side in one process (issue 25).

    python benchmarks/bench_grouped.py [--runs 40] [--paper] [--tflite] [--work DIR]

1. The built-in ``distilbert`` (dense) and ``squeezebert`` (grouped as in the paper), exported and
   quantized by edgebert (int8 dynamic; ``--tflite`` adds LiteRT fp32 and int8-dynamic): ONNX Runtime /
   LiteRT p50 at batch 1, 128 real tokens, 1 thread, every artifact timed in turn, round after round,
   so a shared machine slows them alike.
2. Three ONNX forms of the same grouped model, each quantized by ONNX Runtime's own ``quantize_dynamic``
   (MatMul, s8 weights) so only the form differs: ``per-group`` (edgebert's ``conv1x1_to_matmul``:
   Split -> one MatMul per group -> Concat), ``batched`` (Reshape/Transpose to [N, g, W, C/g], one
   MatMul with a [g, C/g, O/g] weight), ``block-diagonal`` (one dense MatMul with zeros off the
   diagonal: g times the MACs, one GEMM).
``--paper`` repeats 2. at the paper's size (hidden 768, 12 layers, intermediate 3072, random weights).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def onnx_form(fp32: Path, form: str, out: Path) -> Path:
    """``fp32`` with every 1x1 Conv in ``form``, Add->Sum residuals, then ORT quantize_dynamic."""
    import onnx
    from onnx import helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from edgebert.export.residual_sum import sum_residuals
    from edgebert.quantize.rewrites import _constants, _is_conv1x1, _Names, conv1x1_to_matmul

    model = onnx.load(str(fp32))
    if form == "per-group":
        conv1x1_to_matmul(model)
    else:
        g = model.graph
        consts, fresh, nodes, inits = _constants(g), _Names(g, "form"), [], []
        for node in g.node:
            if not _is_conv1x1(node, consts):
                nodes.append(node)
                continue
            groups = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "group"), 1)
            w = numpy_helper.to_array(consts[node.input[1]])
            out_ch, per_in = w.shape[0], w.shape[1]
            per_out = out_ch // groups
            blocks = [w[i * per_out:(i + 1) * per_out, :, 0].T for i in range(groups)]  # [C/g, O/g]
            xt = fresh("xt")
            nodes.append(helper.make_node("Transpose", [node.input[0]], [xt], perm=[0, 2, 1]))
            y = fresh("y")
            if groups == 1 or form == "block-diagonal":
                dense = np.zeros((per_in * groups, out_ch), np.float32)
                for i, b in enumerate(blocks):
                    dense[i * per_in:(i + 1) * per_in, i * per_out:(i + 1) * per_out] = b
                wn = fresh("w")
                inits.append(numpy_helper.from_array(dense, wn))
                nodes.append(helper.make_node("MatMul", [xt, wn], [y]))
            else:  # batched
                s1, s2, wn = fresh("shape"), fresh("shape"), fresh("w")
                inits += [numpy_helper.from_array(np.array([0, 0, groups, per_in], np.int64), s1),
                          numpy_helper.from_array(np.array([0, 0, out_ch], np.int64), s2),
                          numpy_helper.from_array(np.stack(blocks).astype(np.float32), wn)]
                r, t, mm, t2 = fresh("r"), fresh("t"), fresh("mm"), fresh("t2")
                nodes += [helper.make_node("Reshape", [xt, s1], [r]),
                          helper.make_node("Transpose", [r], [t], perm=[0, 2, 1, 3]),
                          helper.make_node("MatMul", [t, wn], [mm]),
                          helper.make_node("Transpose", [mm], [t2], perm=[0, 2, 1, 3]),
                          helper.make_node("Reshape", [t2, s2], [y])]
            if len(node.input) > 2 and node.input[2]:
                yb = fresh("yb")
                nodes.append(helper.make_node("Add", [y, node.input[2]], [yb]))
                y = yb
            nodes.append(helper.make_node("Transpose", [y], [node.output[0]], perm=[0, 2, 1]))
        del g.node[:]
        g.node.extend(nodes)
        used = {i for n in nodes for i in n.input}
        kept = [t for t in g.initializer if t.name in used] + inits
        del g.initializer[:]
        g.initializer.extend(kept)
    sum_residuals(model)
    plain = out / f"{form}.fp32.onnx"
    onnx.save(model, str(plain))
    quantize_dynamic(str(plain), str(out / f"{form}.int8.onnx"), weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul"])
    return out / f"{form}.int8.onnx"


def runner(path: Path, length: int = 128):
    """A zero-argument callable running one batch-1 inference of ``path`` on 128 real tokens."""
    ids = np.random.default_rng(0).integers(1000, 20000, (1, length)).astype(np.int64)
    if path.suffix == ".onnx":
        from edgebert.devices import ort_session

        sess = ort_session.create(path.read_bytes(), threads=1)
        feed = {i.name: (ids if "input_ids" in i.name else np.ones_like(ids)) for i in sess.get_inputs()}
        return lambda: sess.run(None, feed)
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    key = next(k for k in it.get_signature_list() if k.endswith(str(length)))
    run = it.get_signature_runner(key)
    details = run.get_input_details()
    feed = {n: (ids if "ids" in n else np.ones_like(ids)).astype(d["dtype"]) for n, d in details.items()}
    return lambda: run(**feed)


def interleaved(artifacts: dict[str, Path], runs: int) -> dict[str, tuple[float, float]]:
    fns = {name: runner(p) for name, p in artifacts.items()}
    times = {name: [] for name in fns}
    for _ in range(3):  # warm-up
        for fn in fns.values():
            fn()
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {n: (statistics.median(t), float(np.percentile(t, 90))) for n, t in times.items()}


def table(title: str, results: dict, base: str | None = None) -> None:
    print(f"\n{title}")
    print(f"{'artifact':44s} {'p50 ms':>8s} {'p90 ms':>8s}" + ("  vs " + base if base else ""))
    for name, (p50, p90) in results.items():
        rel = f"  {p50 / results[base][0]:.2f}x" if base else ""
        print(f"{name:44s} {p50:8.2f} {p90:8.2f}{rel}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--paper", action="store_true", help="also the paper-size grouped model (random weights)")
    ap.add_argument("--tflite", action="store_true", help="also LiteRT fp32 and int8-dynamic artifacts")
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    import torch

    from edgebert.export import ExportSettings, export
    from edgebert.quantize import QuantizeSettings, quantize

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-grouped-"))
    formats = ("onnx", "tflite") if args.tflite else ("onnx",)
    arts = {}
    for name in ("distilbert", "squeezebert"):
        d = work / name
        if not (d / "model.int8-dynamic.onnx").exists():
            export(name, d, ExportSettings(formats=formats))
            quantize(d, QuantizeSettings(mode="dynamic", formats=formats))
        for fmt in formats:
            arts[f"{name} fp32 {fmt}"] = d / f"model.{fmt}"
            arts[f"{name} int8-dynamic {fmt}"] = d / f"model.int8-dynamic.{fmt}"
    print(f"torch {torch.__version__}; 1 thread; batch 1; 128 real tokens; {args.runs} interleaved runs")
    table("Built-in models (edgebert artifacts)", interleaved(arts, args.runs), "distilbert int8-dynamic onnx")

    sizes = [("built-in size", work / "squeezebert" / "model.onnx")]
    if args.paper:
        from transformers import SqueezeBertConfig, SqueezeBertForSequenceClassification

        from edgebert.models.grouped import PAPER_GROUPS

        src = work / "paper-src"
        if not (src / "config.json").exists():
            torch.manual_seed(0)
            cfg = SqueezeBertConfig(hidden_size=768, embedding_size=768, intermediate_size=3072,
                                    num_hidden_layers=12, num_attention_heads=12, num_labels=2, **PAPER_GROUPS)
            SqueezeBertForSequenceClassification(cfg).eval().save_pretrained(src)
            import shutil

            for f in ("tokenizer.json", "tokenizer_config.json"):
                shutil.copy(work / "squeezebert" / "tokenizer" / f, src / f)
        if not (work / "paper" / "model.onnx").exists():
            export(str(src), work / "paper", ExportSettings(formats=("onnx",)))
        sizes.append(("paper size (768 x 12, random weights)", work / "paper" / "model.onnx"))
    for title, fp32 in sizes:
        out = work / ("forms-" + fp32.parent.name)
        out.mkdir(exist_ok=True)
        forms = {"fp32 (exported Conv)": fp32}
        for form in ("per-group", "batched", "block-diagonal"):
            q = out / f"{form}.int8.onnx"
            forms[f"int8 {form}"] = q if q.exists() else onnx_form(fp32, form, out)
        table(f"Grouped SqueezeBERT ONNX forms, {title}", interleaved(forms, args.runs), "fp32 (exported Conv)")


if __name__ == "__main__":
    main()
