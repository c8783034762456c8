"""int8 TFLite recipes with ai-edge-quantizer (AEQ), applied to the directory's fp32 ``model.tflite``.

Why AEQ on the .tflite file and not PT2E in litert-torch: it needs only the fp32 artifact (no PyTorch
model, no second 1-3 minute conversion), quantizes in seconds, and lets a recipe choose op types.
Measured on the built-in DistilBERT (1 thread, seq 128, desktop LiteRT): fp32 26 ms; AEQ dynamic 14 ms;
AEQ static on the FULLY_CONNECTED layers 5 ms. PT2E was not needed and has known traps here (SqueezeBERT's
asymmetric int8 embedding table fails in LiteRT's EMBEDDING_LOOKUP; its Conv1d is not annotated, so a
PT2E-static SqueezeBERT comes out half float).

- dynamic (``aeq-dynamic-wi8-afp32``): every supported op gets per-channel symmetric int8 weights;
  activations stay float and the kernels (FULLY_CONNECTED, CONV_2D) quantize them per run. The
  embedding table is int8 (EMBEDDING_LOOKUP dequantizes the rows it reads).
- static (``aeq-static-wi8-ai8-fc``): full int8 for the matmul layers: FULLY_CONNECTED and CONV_2D
  (SqueezeBERT's 1x1 convolutions) take int8 activations (per-tensor, calibrated min/max) and int8
  per-channel weights; the embedding table is int8. The layers fed by GELU (the FFN output layers,
  found from the graph by ``consumers_of``) keep int8 weights with a per-run activation scale: on the
  built-in validation split (500 texts; ``benchmarks/bench_int8_agreement.py``) one static scale for
  GELU's long tail gave agreement with fp32 0.928 / accuracy 0.820 (fp32 0.824) for DistilBERT and
  0.920 / 0.814 (fp32 0.842) for SqueezeBERT; with the exception 0.970 / 0.830 and 0.976 / 0.834, at
  the same speed (5.4 ms). Attention's BATCH_MATMUL (activation x activation), Softmax, the LayerNorm
  arithmetic and GELU stay float (the ``float`` entry of ``op_groups``; ``float_ops`` lists only the
  matmul-class ops): int8 versions of those are not taken by XNNPACK and split the graph (all FC +
  BATCH_MATMUL static measured 21 ms vs 5 ms for FC only; FIELD_NOTES §4 saw AEQ's all-ops static at
  45/78 ms, slower than fp32 for SqueezeBERT).

Calibration feeds int32 ``[1, seq_len]`` rows (the model's own input type; int64 fails in AEQ) at the
artifact's fixed length; AEQ keeps running min/max per tensor, so memory does not grow with samples.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.tokenize import batches
from ..devices.litert import inspect_model, model_and_op_names
from ..errors import EdgebertError, UsageError
from ..export.tflite import check_builtin_only, quiet_native
from .calibration import load_calibration_texts
from . import groups, tflite_ops, validate

STATIC_OPS = ("FULLY_CONNECTED", "CONV_2D")
WEIGHT_ONLY_TABLES = ("EMBEDDING_LOOKUP",)
CALIBRATION_THREADS = 1
#: How the calibration samples run: LiteRT's C++ calibration (AEQ's CALIBRATION_PROFILER_BASED): XNNPACK runs
#: each op as its own delegate node and the engine keeps every output tensor's min/max during invoke. AEQ's
#: default mode copies every tensor (weights included) to Python after each sample: the built-in models'
#: 768 calibration runs took 90 s (DistilBERT) and 73 s (SqueezeBERT) that way, 27 s and 20 s this way, with
#: the same ranges to 6e-7 (relative; float re-association in XNNPACK's kernels).
CALIBRATION_ENGINE = ("LiteRT's C++ calibration (ai-edge-quantizer CALIBRATION_PROFILER_BASED): each op's "
                      "output min/max taken during invoke, XNNPACK running one op per delegate node")
#: How ai-edge-quantizer's MIN_MAX_UNIFORM_QUANT combines samples (its default QSV update, not configurable per
#: call): what the static recipe's ranges really are. tests/test_tflite.py checks it against the library.
RANGE_UPDATE = ("moving average of each calibration sample's min and max (running value x 0.95 + the sample's "
                "x 0.05, the first sample taken as is; ai-edge-quantizer's MIN_MAX_UNIFORM_QUANT update), not the "
                "min/max over all samples: the range is narrower than the extremes, and later samples weigh more")
#: Activations whose consumers keep a per-run (dynamic-range) activation scale in the static recipe.
OUTLIER_SOURCES = ("GELU",)
#: Ops that only move data: followed from an outlier source to its matmul consumers.
PASS_THROUGH = ("RESHAPE", "TRANSPOSE", "SQUEEZE", "EXPAND_DIMS",
                # channels-last SqueezeBERT: a grouped layer reads its group's channel SLICE
                "SLICE", "STRIDED_SLICE")


def consumers_of(data: bytes, sources: tuple[str, ...] = OUTLIER_SOURCES,
                 targets: tuple[str, ...] = STATIC_OPS) -> list[str]:
    """Output tensor names of the ``targets`` ops fed by a ``sources`` op (through shape-only ops).

    In BERT models these are the FFN output layers (DistilBERT ``lin2``, SqueezeBERT ``output.conv1d``),
    whose input is the GELU output: a long-tailed activation that one static per-tensor int8 scale
    represents badly (built-in validation split: agreement with fp32 0.92-0.93 all-static, 0.97-0.98 with
    these layers dynamic).
    Found from the graph, so no architecture's layer names are hard-coded here.
    """
    model, codes = model_and_op_names(data)
    found = []
    for s in range(model.SubgraphsLength()):
        sg = model.Subgraphs(s)
        ops = [sg.Operators(j) for j in range(sg.OperatorsLength())]
        readers: dict[int, list] = {}
        for op in ops:
            for k in range(op.InputsLength()):
                readers.setdefault(op.Inputs(k), []).append(op)
        frontier = [op.Outputs(0) for op in ops if codes[op.OpcodeIndex()] in sources and op.OutputsLength()]
        seen = set()
        while frontier:
            tensor = frontier.pop()
            if tensor in seen:
                continue
            seen.add(tensor)
            for op in readers.get(tensor, []):
                code = codes[op.OpcodeIndex()]
                if code in PASS_THROUGH and op.OutputsLength():
                    frontier.append(op.Outputs(0))
                elif code in targets and op.OutputsLength():
                    found.append((sg.Tensors(op.Outputs(0)).Name() or b"").decode())
    return sorted(set(found))


def _version() -> str:
    import importlib.metadata

    return importlib.metadata.version("ai-edge-quantizer")


def _quantizer(fp32_path: Path):
    from ai_edge_quantizer import quantizer

    try:
        return quantizer.Quantizer(str(fp32_path))
    except Exception as exc:
        raise UsageError(f"{fp32_path}: cannot read the fp32 TFLite model ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); re-run `edgebert export`") from None


def _quantize_to(q, out_path: Path, log: Path, mode: str, calibration_rows=None, cache: dict | None = None) -> None:
    """Calibrate (static; ``calibration_rows``: signature -> rows) and quantize with AEQ, its native
    logs captured; one clear error on failure. ``cache`` keeps the calibrated ranges between calls (they
    do not depend on which layers stay float)."""
    from ai_edge_quantizer import calibrator

    try:
        with quiet_native(log):
            qsv = None
            if calibration_rows is not None:
                qsv = (cache or {}).get("qsv")
                if qsv is None:
                    qsv = q.calibrate(calibration_rows(), num_threads=CALIBRATION_THREADS,
                                      mode=calibrator.CalibrationMode.CALIBRATION_PROFILER_BASED)
                    if cache is not None:
                        cache["qsv"] = qsv
            result = q.quantize(qsv, enable_progress_report=False)
    except Exception as exc:
        raise EdgebertError(f"ai-edge-quantizer {mode} quantization failed: {exc}") from exc
    out_path.write_bytes(result.quantized_model)


def keep_float(q, exclude) -> None:
    """Leave the ops writing the ``exclude`` tensors float: an AEQ ``NO_QUANTIZE`` config on their exact
    scope name, added last (later configs win in AEQ)."""
    if not exclude:
        return
    from ai_edge_quantizer import algorithm_manager, qtyping

    exact = "^(?:" + "|".join(re.escape(n) for n in sorted(exclude)) + ");"
    q.update_quantization_recipe(exact, qtyping.TFLOperationName.ALL_SUPPORTED,
                                 algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE)


#: Ops the recipes give int8 weights: the layers the accuracy goal may keep float.
GOAL_OPS = (*STATIC_OPS, *WEIGHT_ONLY_TABLES)


def layers(data: bytes) -> dict[str, tuple[str, list[str]]]:
    """Layer name -> (op, output tensor names) of every ``GOAL_OPS`` op. A file holds one subgraph per
    signature with the same ops in the same order but its own tensor names: the j-th such op of every
    subgraph is one layer, named by the first subgraph's tensor (subgraphs that differ: one layer per op)."""
    model, codes = model_and_op_names(data)
    per_subgraph = []
    for s in range(model.SubgraphsLength()):
        sg = model.Subgraphs(s)
        ops = [sg.Operators(j) for j in range(sg.OperatorsLength())]
        per_subgraph.append([(codes[op.OpcodeIndex()], (sg.Tensors(op.Outputs(0)).Name() or b"").decode())
                             for op in ops if codes[op.OpcodeIndex()] in GOAL_OPS and op.OutputsLength()])
    same = len({tuple(code for code, _ in sub) for sub in per_subgraph}) == 1
    found: dict[str, tuple[str, list[str]]] = {}
    if same and per_subgraph:
        for j, (code, name) in enumerate(per_subgraph[0]):
            found[name] = (code, [sub[j][1] for sub in per_subgraph])
    else:
        for sub in per_subgraph:
            for code, name in sub:
                found.setdefault(name, (code, [name]))
    return {name: v for name, v in found.items() if name}


def dynamic(fp32_path: Path, out_path: Path, settings, *, log: Path, exclude=(), **_) -> dict:
    from ai_edge_quantizer import recipe

    q = _quantizer(fp32_path)
    q.load_quantization_recipe(recipe.dynamic_wi8_afp32())
    keep_float(q, exclude)
    _quantize_to(q, out_path, log, "dynamic")
    return {"quantizer": {"name": "ai-edge-quantizer", "version": _version(), "recipe": "dynamic_wi8_afp32"},
            "weight_type": "int8, symmetric, per-channel", "activation_type": "float32 (quantized per run by the kernel)",
            "op_types": ["* (all AEQ-supported)"]}


def static(fp32_path: Path, out_path: Path, settings, *, log: Path, tokenizer, seq_len: int, progress=None,
           exclude=(), cache: dict | None = None, **_) -> dict:
    from ai_edge_quantizer import qtyping

    texts = load_calibration_texts(settings.calibration, settings.text_column, settings.samples)
    q = _quantizer(fp32_path)
    for op in STATIC_OPS:
        q.add_static_config(".*", getattr(qtyping.TFLOperationName, op), 8, 8)
    dynamic_layers = [n for n in consumers_of(fp32_path.read_bytes()) if n not in set(exclude)]
    if dynamic_layers:  # later configs win in AEQ: these keep int8 weights, per-run activation scales
        exact = "^(?:" + "|".join(re.escape(n) for n in dynamic_layers) + ");"  # AEQ scope: "name;"
        for op in STATIC_OPS:
            q.add_dynamic_config(exact, getattr(qtyping.TFLOperationName, op), 8)
    for op in WEIGHT_ONLY_TABLES:
        q.add_dynamic_config(".*", getattr(qtyping.TFLOperationName, op), 8)
    keep_float(q, exclude)
    signatures = _signatures(fp32_path, log)

    def rows() -> dict[str, list]:
        out = {key: [] for key in signatures}
        for key, length in signatures.items():  # every signature sees every sample, truncated/padded to it
            for batch in batches(tokenizer, texts.texts, length, 64, pad_to_max=True):
                for i in range(len(batch["input_ids"])):
                    out[key].append({k: batch[k][i:i + 1].astype(np.int32) for k in ("input_ids", "attention_mask")})
        return out

    _quantize_to(q, out_path, log, "static", calibration_rows=rows, cache=cache)
    return {"quantizer": {"name": "ai-edge-quantizer", "version": _version(), "recipe": "static_wi8_ai8 (restricted)"},
            "weight_type": "int8, symmetric, per-channel", "activation_type": "int8, asymmetric, per-tensor (calibrated)",
            "op_types": list(STATIC_OPS), "int8_tables": list(WEIGHT_ONLY_TABLES),
            "dynamic_range_layers": {"why": f"input is a {'/'.join(OUTLIER_SOURCES)} output (long-tailed)",
                                     "count": len(dynamic_layers)},
            "per_channel": True,
            "calibration": {"source": texts.source, "samples": len(texts.texts), "seq_len": seq_len,
                            "signatures": signatures, "method": "minmax", "range_update": RANGE_UPDATE,
                            "engine": CALIBRATION_ENGINE,
                            "batch_size": 1,
                            "per_signature": "every sample, truncated or padded to the signature's length",
                            "text_column": settings.text_column if settings.calibration else None}}


#: mode -> (recipe name, function); ``edgebert.quantize`` wraps these in its Recipe registry.
RECIPES: dict[str, tuple[str, Callable[..., dict]]] = {
    "dynamic": ("aeq-dynamic-wi8-afp32", dynamic),
    "static": ("aeq-static-wi8-ai8-fc", static),
}

#: mode -> ``op_groups`` reasons (see ``groups.py``).
WHY = {
    "dynamic": {
        "dynamic int8": "int8 per-channel weights; the kernels quantize the float activations on every run",
        "int8 weights only": "int8 embedding table: EMBEDDING_LOOKUP dequantizes the rows it reads",
        "float": "BATCH_MATMUL (attention) has no constant weight to quantize; Softmax, LayerNorm and GELU "
                 "are float in AEQ's dynamic-range recipe",
    },
    "static": {
        "static int8": "int8 per-channel weights and int8 activations with per-tensor scales calibrated "
                       "once (moving-average min/max over the samples); XNNPACK runs them as int8 kernels",
        "dynamic int8": "input is a GELU output: its long tail does not fit one calibrated scale, so int8 "
                        "weights with an activation scale computed per run",
        "int8 weights only": "int8 embedding table: EMBEDDING_LOOKUP dequantizes the rows it reads",
        "float": "attention's BATCH_MATMUL, Softmax, LayerNorm and GELU: int8 versions are not taken by XNNPACK "
                 "and split the graph (all FC + BATCH_MATMUL static measured 21 ms vs 5 ms for FC only)",
    },
}
DESCRIPTIONS = {
    "dynamic": "ai-edge-quantizer dynamic-range int8: int8 per-channel weights for every supported op "
               "(FULLY_CONNECTED, CONV_2D, the embedding table); activations quantized per run by the kernels; "
               "BATCH_MATMUL, Softmax, LayerNorm and GELU stay float",
    "static": "ai-edge-quantizer static int8: FULLY_CONNECTED / CONV_2D with int8 per-channel weights and "
              "moving-average min/max-calibrated int8 activations, except the GELU-fed FFN output layers (int8 weights, "
              "per-run activation scale); int8 embedding table; BATCH_MATMUL, Softmax, LayerNorm and GELU "
              "stay float",
}


def describe(settings) -> str:
    return DESCRIPTIONS[settings.mode]


def check_settings(settings) -> None:
    if settings.mode == "static" and settings.method != "minmax":
        raise UsageError(f"TFLite static calibration supports only --method minmax (got {settings.method!r}); "
                         "pass --format onnx to calibrate only the ONNX model with it")


def _signatures(path: Path, log: Path) -> dict[str, int]:
    """Signature key -> fixed sequence length of a .tflite (edgebert's: ``seq32``, ``seq64``, ...)."""
    from ..devices.litert import LiteRT

    with quiet_native(log):
        return LiteRT(str(path), threads=1).signatures


def compare(fp32_path: Path, candidate: Path, tokenizer, seq_len: int, min_agreement: float,
            n=validate.AGREEMENT_TEXTS) -> dict:
    """The int8 model against the fp32 .tflite on ``n`` texts (a count of built-in validation texts, or the
    chosen ``AgreementTexts``), each at batch 1 on the smallest signature that holds it (the LiteRT runtime
    ``check`` uses, in-process)."""
    from ..devices.litert import LiteRT

    chosen = n if isinstance(n, validate.AgreementTexts) else validate.builtin_texts(n)
    ref_rt, rt = LiteRT(str(fp32_path), threads=1), LiteRT(str(candidate), threads=1)
    result = validate.agreement(ref_rt.run, rt.run, validate.rows(tokenizer, seq_len, chosen), min_agreement,
                                chosen)
    return {**result, "reference": "fp32 tflite (LiteRT)"}


def run(mode: str, fp32_path: Path, out_path: Path, settings, *, tokenizer, seq_len: int, scratch: Path,
        progress=None, exclude=(), cache: dict | None = None, texts=None) -> tuple[dict, dict, dict]:
    """Quantize ``fp32_path`` into ``out_path`` (a scratch file); returns (details, summary, validation).
    ``exclude``: tensor names whose ops stay float (the accuracy goal's fallbacks); ``texts``: the agreement
    texts (``agreement_texts``; None: the built-in validation texts)."""
    name, fn = RECIPES[mode]
    log = scratch / "aeq.log"
    details = fn(fp32_path, out_path, settings, log=log, tokenizer=tokenizer, seq_len=seq_len, progress=progress,
                 exclude=exclude, cache=cache)
    try:
        info = inspect_model(out_path.read_bytes())
    except ValueError as exc:
        raise EdgebertError(f"the quantizer wrote an invalid model: {exc}") from None
    check_builtin_only(info, out_path.name)
    with quiet_native(log):
        validation = compare(fp32_path, out_path, tokenizer, seq_len, settings.min_agreement,
                             texts or validate.AGREEMENT_TEXTS)
    counts, notes, signatures = tflite_ops.group_counts(out_path.read_bytes(), info)
    summary = {"quantized_ops": info["quantized_ops"], "float_ops": info["float_ops"],
               "op_counts": info["op_counts"], "node_count": info["node_count"],
               **groups.record(counts, notes, WHY[mode], signatures, scope_of_file="file"),
               "recipe_description": describe(settings)}
    return {"recipe": name, **details}, summary, validation
