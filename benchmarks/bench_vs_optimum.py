"""edgebert's ONNX artifacts vs Optimum's one-liners, side by side in one process (issue 10).

    python benchmarks/bench_vs_optimum.py [--models distilbert,squeezebert] [--runs 60] [--n 1000]
                                          [--cpus cortex-a53,cortex-a76] [--targets auto] [--work DIR]

Optimum's artifacts are made the way a user makes them: ``optimum-cli export onnx --model DIR --task
text-classification`` then ``optimum-cli onnxruntime quantize --avx512_vnni`` (and ``--arm64``), run in
a venv of their own that this script creates under ``~/.cache/edgebert/bench-optimum`` (optimum-onnx
pins transformers<4.58; edgebert runs transformers 5). That venv gets the pinned Optimum stack from
PyPI with ``--no-deps``; torch (pinned 2.13.0 in both) and the other shared libraries come from this
venv through a ``.pth`` appended after its own site-packages, so its own transformers wins.

Measured, for each built-in model, interleaved in ONE process so a shared machine slows every artifact
alike: desktop latency (ONNX Runtime, batch 1, seq 128, 1 thread, warm runs; p50/p90), accuracy on the
first ``--n`` built-in test texts (batch 1 at each text's own length; n and 95% Wilson interval), and
guest instructions per batch-1 seq-128 inference on emulated ARM (edgebert's counting QEMU: the
``edgebert check --device cortex-a76`` machinery; needs ``edgebert devices setup``). Emulated counts
are a relative cost signal, not milliseconds.

Optimum's SqueezeBERT export has a ``token_type_ids`` input; the emulated worker feeds only
``input_ids``/``attention_mask``, so its counted copy computes token_type_ids as zeros inside the graph
(ConstantOfShape of input_ids' shape): what a caller passing zeros gets.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

OPTIMUM_PINS = ("optimum-onnx==0.1.0", "optimum==2.1.0", "transformers==4.57.6", "huggingface_hub==0.36.2",
                "hf-xet==1.8.0", "tokenizers==0.22.2")
SEQ = 128


# --- Optimum's side ------------------------------------------------------------------------------
def optimum_venv(root: Path) -> Path:
    """The pinned Optimum venv (created once); returns its python."""
    venv = root / "venv"
    python = venv / "bin" / "python"
    stamp = venv / "edgebert-pins.txt"
    if stamp.is_file() and stamp.read_text().split() == list(OPTIMUM_PINS):
        return python
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    *OPTIMUM_PINS], check=True)
    site = next((venv / "lib").glob("python3.*/site-packages"))
    import torch  # the shared site-packages is the one torch comes from

    shared = Path(torch.__file__).resolve().parents[1]
    (site / "zz_edgebert_shared.pth").write_text(f"{shared}\n")  # after pip: pip never sees edgebert's packages
    stamp.write_text("\n".join(OPTIMUM_PINS) + "\n")
    return python


def optimum_artifacts(python: Path, hf_dir: Path, out: Path) -> dict[str, Path]:
    """fp32 (``optimum-cli export onnx``) and int8 (``quantize --avx512_vnni`` / ``--arm64``) files."""
    cli = [str(python), "-m", "optimum.commands.optimum_cli"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    fp32 = out / "fp32"
    if not (fp32 / "model.onnx").is_file():
        subprocess.run([*cli, "export", "onnx", "--model", str(hf_dir), "--task", "text-classification", str(fp32)],
                       check=True, env=env, capture_output=True)
    arts = {"optimum fp32": fp32 / "model.onnx"}
    for preset in ("avx512_vnni", "arm64"):
        q = out / preset
        if not (q / "model_quantized.onnx").is_file():
            subprocess.run([*cli, "onnxruntime", "quantize", "--onnx_model", str(fp32), f"--{preset}", "-o", str(q)],
                           check=True, env=env, capture_output=True)
        arts[f"optimum int8 --{preset}"] = q / "model_quantized.onnx"
    return arts


def without_token_type_ids(src: Path, dst: Path) -> Path:
    """A copy whose token_type_ids input is zeros computed in the graph (for the 2-input worker)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(src))
    if "token_type_ids" not in [i.name for i in model.graph.input]:
        return src
    keep = [i for i in model.graph.input if i.name != "token_type_ids"]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    zero = helper.make_tensor("edgebert_zero_i64", onnx.TensorProto.INT64, [1], [0])
    model.graph.node.insert(0, helper.make_node("Shape", ["input_ids"], ["edgebert_ids_shape"]))
    model.graph.node.insert(1, helper.make_node("ConstantOfShape", ["edgebert_ids_shape"], ["token_type_ids"],
                                                value=zero))
    onnx.save(model, str(dst))
    return dst


# --- edgebert's side -----------------------------------------------------------------------------
def edgebert_artifacts(model: str, work: Path, targets: list[str]) -> dict[str, Path]:
    """``edgebert export MODEL`` once, then ``quantize --mode dynamic --target T`` per target (a copy each)."""
    from edgebert.export import export
    from edgebert.quantize import QuantizeSettings, quantize

    base = work / "export"
    if not (base / "manifest.json").is_file():
        export(model, base)
    arts = {"edgebert fp32": base / "model.onnx"}
    for target in targets:
        d = work / f"int8-{target}"
        if not (d / "model.int8-dynamic.onnx").is_file():
            shutil.rmtree(d, ignore_errors=True)
            shutil.copytree(base, d)
            quantize(d, build_settings() if target == "build" else
                     QuantizeSettings(mode="dynamic", **({} if target == "auto" else {"target": target})))
        arts[f"edgebert int8 --target {target}"] = d / "model.int8-dynamic.onnx"
    return arts


def build_settings():
    """The dynamic recipe the default ``edgebert build`` ships (its devices: desktop, cortex-a53, cortex-a76):
    the weakest core's preset (arm-nodot)."""
    from edgebert.pipeline.config import default_config
    from edgebert.pipeline.steps import _quantize_settings

    return replace(_quantize_settings(default_config(), "dynamic"), formats=("onnx",))


# --- measurements --------------------------------------------------------------------------------
def session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def feeds_for(sess, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    given = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return {i.name: given[i.name] for i in sess.get_inputs()}


def latency(sessions: dict, ids, mask, warmup: int, runs: int) -> dict[str, list[float]]:
    """Interleaved: every round runs each artifact once, so load changes hit all of them alike."""
    feeds = {k: feeds_for(s, ids, mask) for k, s in sessions.items()}
    for _ in range(warmup):
        for k, s in sessions.items():
            s.run(None, feeds[k])
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(runs):
        for k, s in sessions.items():
            t0 = time.perf_counter()
            s.run(None, feeds[k])
            times[k].append((time.perf_counter() - t0) * 1e3)
    return times


def accuracy(sessions: dict, tokenizer, texts, labels) -> dict[str, np.ndarray]:
    """Per artifact, whether each text's prediction is right (batch 1, the text's own length)."""
    correct = {k: [] for k in sessions}
    for text, label in zip(texts, labels):
        enc = tokenizer([text], truncation=True, max_length=SEQ, return_tensors="np")
        ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
        for k, s in sessions.items():
            correct[k].append(int(s.run(None, feeds_for(s, ids, mask))[0].argmax(-1)[0]) == int(label))
    return {k: np.array(c, bool) for k, c in correct.items()}


def fp32_of(artifact: str) -> str:
    """The fp32 artifact an int8 one was made from (its accuracy drop is paired with it)."""
    return "optimum fp32" if artifact.startswith("optimum") else "edgebert fp32"


def instructions(path: Path, cpu: str, work: Path, ids, mask) -> int | None:
    """Guest instructions per batch-1 inference on emulated ``cpu`` (median of 2 after 1 warm-up)."""
    from edgebert import devices
    from edgebert.check.runner import write_inputs
    from edgebert.devices.worker import build_request

    device = devices.get(cpu)
    stem = f"{cpu}.{path.parent.name}.{path.stem}"
    empty = np.zeros((0, ids.shape[1]), np.int64)
    inputs = write_inputs(work / f"{stem}.inputs.npz", empty, empty, ids, mask)
    request = build_request(runtime="onnxruntime", model=str(path.resolve()), threads=1, inputs=str(inputs),
                            outputs=str(work / f"{stem}.logits.npz"), result=str(work / f"{stem}.result.json"),
                            batch_size=1, warmup=1, runs=2)
    counted = device.count_instructions(request, work)
    if counted.get("status") != "ok":
        print(f"  {cpu} {path}: {counted.get('error')}", file=sys.stderr)
        return None
    return int(counted["per_inference"])


def op_summary(path: Path) -> str:
    from collections import Counter

    import onnx

    c = Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node)
    keys = ("MatMulInteger", "ConvInteger", "QAttention", "Attention", "MatMul", "Conv")
    return " ".join(f"{k}×{c[k]}" for k in keys if c.get(k))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="distilbert,squeezebert")
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--n", type=int, default=1000, help="built-in test texts for accuracy (0: skip)")
    ap.add_argument("--cpus", default="cortex-a53,cortex-a76", help="emulated CPUs to count on ('' to skip)")
    ap.add_argument("--count-fp32", action="store_true", help="also count fp32 artifacts (10-25 s each)")
    ap.add_argument("--targets", default="auto", help="edgebert quantize --target values, comma-separated; "
                    "'build': the recipe the default build ships (arm-nodot)")
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "edgebert" / "bench-optimum")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)

    import onnxruntime as ort

    from edgebert.check.stats import wilson
    from edgebert.quantize.accuracy_goal import drop
    from edgebert.data import load_builtin
    from edgebert.hf_safe import load_tokenizer
    from edgebert.models.builtin import builtin_dir

    python = optimum_venv(args.work)
    test = load_builtin("test")
    texts, labels = list(test.texts[: args.n]), list(test.labels[: args.n])
    cpus = [c for c in args.cpus.split(",") if c]
    results = []
    for model in args.models.split(","):
        work = args.work / model
        work.mkdir(parents=True, exist_ok=True)
        arts = {**optimum_artifacts(python, builtin_dir(model), work / "optimum"),
                **edgebert_artifacts(model, work / "edgebert", args.targets.split(","))}
        tokenizer = load_tokenizer(work / "edgebert" / "export" / "tokenizer", within=work / "edgebert" / "export")
        # "full": 128 real tokens; "padded": the report's latency input (the first test text right-padded to 128)
        inputs = {}
        for kind, text in (("full", " ".join(texts[:40])), ("padded", test.texts[0])):
            enc = tokenizer([text], truncation=True, max_length=SEQ, padding="max_length", return_tensors="np")
            inputs[kind] = (enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64))
        ids, mask = inputs["full"]
        sessions = {k: session(p) for k, p in arts.items()}
        lat = latency(sessions, ids, mask, args.warmup, args.runs)
        lat_padded = latency(sessions, *inputs["padded"], args.warmup, args.runs)
        real_padded = int(inputs["padded"][1].sum())
        acc = accuracy(sessions, tokenizer, texts, labels) if texts else {}
        del sessions
        counts: dict[str, dict[str, int | None]] = {k: {} for k in arts}
        with tempfile.TemporaryDirectory(prefix="bench-vs-optimum-") as tmp:
            for k, p in arts.items():
                if "fp32" in k and not args.count_fp32:
                    continue
                counted = without_token_type_ids(p, Path(tmp) / f"{p.parent.name}.{p.name}")
                for cpu in cpus:
                    counts[k][cpu] = instructions(counted, cpu, Path(tmp), ids, mask)
        for k, p in arts.items():
            right = acc.get(k, np.zeros(0, bool))
            k_ok, n = int(right.sum()), len(right)
            lo, hi = wilson(k_ok, n) if n else (float("nan"), float("nan"))
            paired = drop(acc[fp32_of(k)], right) if n and "fp32" not in k else None
            results.append({"model": model, "artifact": k, "path": str(p), "size_mb": p.stat().st_size / 1e6,
                            "ops": op_summary(p), "p50_ms": statistics.median(lat[k]),
                            "p90_ms": float(np.percentile(lat[k], 90)), "runs": len(lat[k]),
                            "padded_p50_ms": statistics.median(lat_padded[k]),
                            "padded_p90_ms": float(np.percentile(lat_padded[k], 90)), "padded_real_tokens": real_padded,
                            "accuracy": k_ok / n if n else None, "n": n, "wilson95": [lo, hi],
                            "drop_vs_fp32": paired,
                            "instructions": counts[k]})
    print(f"\nONNX Runtime {ort.__version__}, batch 1, seq {SEQ}, 1 thread, {args.runs} interleaved warm runs after "
          f"{args.warmup}; shared {os.cpu_count()}-core machine (other jobs running: compare ratios, not ms). "
          f"Accuracy on the first {len(texts)} built-in test texts; drop = its fp32's accuracy minus its own on the "
          "same texts, in points, paired 95% CI (normal approximation on the per-text differences). "
          "Instructions: guest instructions per "
          "inference under QEMU (emulation; relative cost, not device time).")
    print(f"full = {SEQ} real tokens; padded = the report's latency input ({results[0]['padded_real_tokens'] if results else '?'} "
          f"real tokens right-padded to {SEQ}).")
    head = (f"| model | artifact | MB | full p50 ms | full p90 ms | ×opt full | padded p50 ms | padded p90 ms | ×opt padded "
            f"| accuracy [95% CI] | drop vs its fp32, pts [paired 95% CI] | {' | '.join(f'{c} Minsn (×opt)' for c in cpus)} "
            "| ops |")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in results:
        ref = next(x for x in results if x["model"] == r["model"] and
                   x["artifact"] == ("optimum fp32" if "fp32" in r["artifact"] else "optimum int8 --avx512_vnni"))
        cells = []
        for c in cpus:
            v, rv = r["instructions"].get(c), ref["instructions"].get(c)
            cells.append("–" if v is None else f"{v / 1e6:.1f}" + (f" ({v / rv:.2f})" if rv else ""))
        acc_s = "–" if r["accuracy"] is None else f"{r['accuracy']:.3f} [{r['wilson95'][0]:.3f}, {r['wilson95'][1]:.3f}] n={r['n']}"
        d = r["drop_vs_fp32"]
        drop_s = "–" if d is None else f"{d['drop_points']:+.1f} [{d['drop_ci95_points'][0]:+.1f}, {d['drop_ci95_points'][1]:+.1f}]"
        print(f"| {r['model']} | {r['artifact']} | {r['size_mb']:.1f} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | "
              f"{r['p50_ms'] / ref['p50_ms']:.2f} | {r['padded_p50_ms']:.2f} | {r['padded_p90_ms']:.2f} | "
              f"{r['padded_p50_ms'] / ref['padded_p50_ms']:.2f} | {acc_s} | {drop_s} | {' | '.join(cells)} | {r['ops']} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
