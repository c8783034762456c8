"""edgebert.quantize: rewrites, streaming calibration, dynamic/static int8 recipes, manifest records."""

from __future__ import annotations

import collections
import json
import os
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from edgebert.data import load_builtin
from edgebert.errors import EdgebertError, UsageError
from edgebert.manifest import Manifest
from edgebert.models import get
from edgebert.quantize import QuantizeSettings, quantize, rewrites
from edgebert.quantize.calibration import TokenBatchReader, collect_ranges, is_degenerate
from edgebert.quantize.preprocess import pre_process
from support import assert_clean_error, no_temp_files, restore_exporter_mask, run_cli
from trained_tiny import train_tiny_classifier, with_dead_unit_outlier

# ---------------------------------------------------------------------------------- fixtures
# Small but not tiny: hidden 64 so MatMul weights are a real share of the file.
SIZES = {
    "distilbert": dict(dim=64, hidden_dim=256, n_heads=4),
    "squeezebert": dict(hidden_size=64, embedding_size=64, intermediate_size=256),
}


def make_tokenizer(directory: Path):
    """A real WordPiece tokenizer over the most common words of the built-in texts (no downloads)."""
    from transformers import AutoTokenizer

    texts = load_builtin("calibration").texts
    words = collections.Counter(w for t in texts for w in re.findall(r"[a-z]+|[^\sa-z]", t.lower()))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [w for w, _ in words.most_common(1500)]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 512}))
    tok = AutoTokenizer.from_pretrained(str(directory))
    ids = tok(texts[0])["input_ids"]
    assert len(ids) > 5 and sum(i == tok.unk_token_id for i in ids) < len(ids) // 2
    return tok


def export_onnx(model: torch.nn.Module, path: Path) -> None:
    from torch.export import Dim

    ids = torch.randint(5, 100, (1, 16))
    mask = torch.ones_like(ids)
    dyn = {0: Dim("batch"), 1: Dim("sequence")}
    torch.onnx.export(model, (ids, mask), str(path), dynamo=True, external_data=False,
                      input_names=["input_ids", "attention_mask"], output_names=["logits"],
                      dynamic_shapes={"input_ids": dyn, "attention_mask": dyn}, verbose=False)


def make_model(name: str, vocab_size: int, **overrides) -> torch.nn.Module:
    arch = get(name)
    torch.manual_seed(0)
    model = arch.model_class(arch.tiny_config(vocab_size=vocab_size, **{**SIZES[name], **overrides})).eval()
    with torch.no_grad():  # non-zero biases, so the rewrite's bias handling is exercised
        for pname, p in model.named_parameters():
            if pname.endswith("bias"):
                p.normal_(0, 0.05)
    return model


def make_artifact_dir(directory: Path, name: str) -> Path:
    """edgebert's own exporter (the graph users quantize), validated against PyTorch on the way."""
    from edgebert.export.onnx import export_onnx as edgebert_export_onnx

    tok = make_tokenizer(directory / "tokenizer")
    edgebert_export_onnx(make_model(name, len(tok)), tok, directory / "model.onnx", 32, 1e-4)
    manifest = Manifest.create(directory, model={
        "architecture": name, "num_labels": 2, "id2label": {"0": "negative", "1": "positive"},
        "source": {"kind": "test", "config": "tiny"}}, tokenizer={"path": "tokenizer"})
    manifest.add_artifact("model.onnx", {"path": "model.onnx", "format": "onnx", "precision": "fp32"})
    manifest.save()
    return directory


@pytest.fixture(scope="module")
def artifact_dirs(tmp_path_factory):
    return {name: make_artifact_dir(tmp_path_factory.mktemp(name), name) for name in SIZES}


def tensor_bytes(model: onnx.ModelProto) -> int:
    return sum(numpy_helper.to_array(t).nbytes for t in model.graph.initializer)


def weight_bytes(model: onnx.ModelProto) -> int:
    """fp32 bytes of the weights of MatMul/Gemm/Conv and of embedding tables (what int8 shrinks 4x)."""
    inits = {t.name: t for t in model.graph.initializer}
    names = {i for n in model.graph.node if n.op_type in ("MatMul", "Gemm", "Conv") for i in n.input[1:2]}
    names |= {n.input[0] for n in model.graph.node if n.op_type == "Gather"}
    return sum(numpy_helper.to_array(inits[n]).nbytes for n in names if n in inits)


def run(path, feeds):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


# ---------------------------------------------------------------------------------- rewrite
@pytest.mark.parametrize("groups", [1, 4])
def test_conv1x1_to_matmul_is_exact(tmp_path, groups):
    g = dict(q_groups=groups, k_groups=groups, v_groups=groups, post_attention_groups=groups,
             intermediate_groups=groups, output_groups=groups)
    export_onnx(make_model("squeezebert", 300, **g), tmp_path / "m.onnx")
    model = onnx.load(str(tmp_path / "m.onnx"))
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert convs and {a.i for n in convs for a in n.attribute if a.name == "group"} == {groups}
    applied = rewrites.apply(model, ["conv1x1_to_matmul"])
    assert applied == [{"name": "conv1x1_to_matmul", "sites": len(convs)}]
    assert not any(n.op_type == "Conv" for n in model.graph.node)
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp_path / "r.onnx"))
    rng = np.random.default_rng(0)
    for batch, seq in [(1, 16), (3, 41)]:
        feeds = {"input_ids": rng.integers(0, 300, (batch, seq)).astype(np.int64),
                 "attention_mask": np.ones((batch, seq), np.int64)}
        feeds["attention_mask"][:, seq // 2:] = 0
        a, b = run(tmp_path / "m.onnx", feeds), run(tmp_path / "r.onnx", feeds)
        assert np.abs(a).max() > 1e-3
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_unknown_rewrite_is_an_error():
    with pytest.raises(EdgebertError, match="unknown ONNX rewrite"):
        rewrites.apply(onnx.ModelProto(), ["nope"])


# ---------------------------------------------------------------------------------- calibration
def test_reader_is_lazy(tmp_path):
    class CountingTokenizer:
        calls = 0

        def __call__(self, texts, **kw):
            CountingTokenizer.calls += 1
            n = len(texts)
            return {"input_ids": np.ones((n, 8), np.int64), "attention_mask": np.ones((n, 8), np.int64)}

    reader = TokenBatchReader(CountingTokenizer(), [f"t{i}" for i in range(20)], seq_len=8, batch_size=8)
    assert len(reader) == 3 and CountingTokenizer.calls == 0
    assert reader.get_next()["input_ids"].shape == (8, 8) and CountingTokenizer.calls == 1
    assert [b["input_ids"].shape[0] for b in iter(reader.get_next, None)] == [8, 4]
    assert reader.get_next() is None and CountingTokenizer.calls == 3
    reader.rewind()
    assert reader.get_next() is not None


def test_degenerate_detection():
    assert is_degenerate(np.array([0.0, np.finfo(np.float32).min], np.float32))
    assert is_degenerate(np.array([1.0, np.nan], np.float32))
    assert not is_degenerate(np.zeros(4, np.float32))
    assert not is_degenerate(np.array([-3.0, 250.0], np.float32))


def test_entropy_survives_the_attention_mask(artifact_dirs, tmp_path):
    """ORT's own entropy calibration of every float tensor hits the exporter's finfo.min mask and crashes;
    ours calibrates batch by batch and drops degenerate tensors. (edgebert's own export sets the mask to -50,
    export/masked_scores.py; a graph with the exporter's constant, as another tool writes it, is used here.)"""
    import onnx
    from transformers import AutoTokenizer

    d = artifact_dirs["distilbert"]
    model = onnx.load(str(d / "model.onnx"))
    restore_exporter_mask(model)  # the exporter's finfo.min back
    onnx.save(model, str(tmp_path / "stock.onnx"))
    pre_process(tmp_path / "stock.onnx", tmp_path / "pre.onnx")
    tok = AutoTokenizer.from_pretrained(str(d / "tokenizer"))
    texts = load_builtin("calibration").texts[:12]
    reader = TokenBatchReader(tok, texts, seq_len=32, batch_size=4)
    # all op types: the mask Add / Softmax inputs are calibrated too
    result = collect_ranges(tmp_path / "pre.onnx", reader, "entropy", [], tmp_path)
    assert result.batches == 3
    assert result.degenerate, "the finfo.min attention mask should have been detected"
    for td in result.tensors_range.values():
        lo, hi = td.range_value
        assert np.isfinite(lo) and np.isfinite(hi) and abs(float(lo)) < 1e30 and abs(float(hi)) < 1e30


def test_calibration_beside_emulation_takes_only_the_threads_left(artifact_dirs, tmp_path):
    """ORT's calibrator session would spin on every core; beside emulated jobs it gets ``cores.budget()``."""
    from onnxruntime.quantization.calibrate import create_calibrator

    from edgebert import cores
    from edgebert.quantize.calibration import _cap_threads

    calibrator = create_calibrator(artifact_dirs["distilbert"] / "model.onnx", ["MatMul"],
                                   augmented_model_path=str(tmp_path / "augmented.onnx"))
    _cap_threads(calibrator)  # no cap in force: ORT's own session stays
    own = calibrator.infer_session
    assert calibrator.infer_session is own
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # more than the one thread left beside as many emulated jobs as cores
    try:
        with cores.beside_emulation(cores.usable_cores) as threads:
            _cap_threads(calibrator)
    finally:
        torch.set_num_threads(before)
    assert threads.describe() == [1]
    options = calibrator.infer_session.get_session_options()
    assert calibrator.infer_session is not own and options.intra_op_num_threads == 1
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the graph as written
    assert [o.name for o in calibrator.infer_session.get_outputs()] == [o.name for o in own.get_outputs()]


# ---------------------------------------------------------------------------------- recipes
@pytest.mark.parametrize("name", list(SIZES))
@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_quantize_recipes(artifact_dirs, name, mode):
    d = artifact_dirs[name]
    added = quantize(d, QuantizeSettings(mode=mode, samples=24, seq_len=64))
    artifact = f"model.int8-{mode}.onnx"
    assert added == [artifact]
    assert not list(d.glob(".*.tmp")) and not list(d.glob("*.data"))
    manifest = Manifest.load(d)
    rec = manifest.artifacts[artifact]
    q = rec["quantization"]
    assert rec["precision"] == f"int8-{mode}" and rec["parent"] == "model.onnx" and rec["format"] == "onnx"
    assert q["mode"] == mode and q["node_count"] > 0
    # every MatMul/Gemm with a weight runs int8; nothing runs ConvInteger
    assert "Conv" not in q["float_ops"] and "ConvInteger" not in q["quantized_ops"]
    assert sum(q["quantized_ops"].values()) >= (10 if name == "distilbert" else 30)
    model = onnx.load(str(d / artifact))
    assert not any(n.op_type in ("Conv", "ConvInteger") for n in model.graph.node)
    if name == "squeezebert":
        assert q["rewrites"][0]["name"] == "conv1x1_to_matmul" and q["rewrites"][0]["sites"] == 12
        assert q["rewrites"][0]["max_abs_logit_diff_fp32"] < 1e-5
    # weights and embedding tables stored in int8: ~4x smaller file
    fp32 = onnx.load(str(d / "model.onnx"))
    # tensor bytes, not file bytes: a tiny model's file is dominated by the TorchScript export's long node names
    saved = tensor_bytes(fp32) - tensor_bytes(model)
    assert saved > 0.65 * weight_bytes(fp32)  # ideal: 0.75 (fp32 -> int8)
    assert (d / artifact).stat().st_size < 0.5 * (d / "model.onnx").stat().st_size
    assert q["quantized_ops"].get("Gather(int8 table)", 0) + q["quantized_ops"].get("Gather(QDQ)", 0) >= 2
    if mode == "static":
        cal = q["calibration"]
        assert cal["samples"] == 24 and cal["batches"] == 3 and cal["method"] == "minmax"
        assert cal["source"] == "builtin:rt-snippets/calibration"  # calibration data: never validation or test
    v = rec["validation"]  # on the validation split (never test), batch 1, each text at its own length
    assert v["texts"] == 200 and v["source"] == "builtin:rt-snippets/validation" and v["batch"] == 1
    assert v["min_agreement"] == 0.9 and v["prediction_agreement"] >= 0.9 and v["max_abs_logit_diff"] < 0.5
    assert_op_groups(q, name, mode)


#: Tiny models (2 layers): weight MatMuls (after the conv rewrite; incl. the 2 head Gemms), GELU-fed ones.
WEIGHT_MATMULS = {"distilbert": 14, "squeezebert": 44}
GELU_FED = {"distilbert": 2, "squeezebert": 8}  # SqueezeBERT: output_groups=4 per layer
ATTENTION_MATMULS = 4                           # scores and context, per layer
EMBEDDINGS = {"distilbert": 2, "squeezebert": 3}


def assert_op_groups(q: dict, name: str, mode: str) -> None:
    """``op_groups`` counts every op of the quantized graph once, in the right group, with reasons."""
    groups = {g["group"]: g for g in q["op_groups"]}
    assert [g["group"] for g in q["op_groups"]] == [
        g for g in ("static int8", "dynamic int8", "int8 weights only", "float") if g in groups]
    assert all(g["why"] and g["ops"] and all(n > 0 for n in g["ops"].values()) for g in q["op_groups"])
    assert q["op_groups_scope"] == {"per": "graph"} and q["recipe_description"].startswith("ONNX Runtime")
    float_ops = groups["float"]["ops"]
    assert float_ops["MatMul"] == ATTENTION_MATMULS
    assert groups["float"]["notes"] == {"MatMul": "attention (activation×activation)"}
    assert float_ops["Softmax"] == 2 and float_ops["LayerNormalization"] == 5
    assert float_ops.get("Gelu", 0) + float_ops.get("Erf", 0) == 2  # the opset-18 export's GELU is erf-based
    if mode == "dynamic":
        assert set(groups) == {"dynamic int8", "int8 weights only", "float"}
        assert groups["dynamic int8"]["ops"] == {"MatMul": WEIGHT_MATMULS[name]}
        assert groups["int8 weights only"]["ops"] == {"Gather": EMBEDDINGS[name]}
    else:
        assert set(groups) == {"static int8", "dynamic int8", "float"}
        assert groups["static int8"]["ops"] == {"Gather": EMBEDDINGS[name],
                                                "MatMul": WEIGHT_MATMULS[name] - GELU_FED[name]}
        assert groups["dynamic int8"]["ops"] == {"MatMul": GELU_FED[name]} == {
            "MatMul": len(q["dynamic_activation_nodes"])}
        assert groups["dynamic int8"]["notes"] == {"MatMul": "GELU-fed (FFN output)"}
        assert q["float_activation_matmuls"] == ATTENTION_MATMULS


#: What ONNX Runtime (ORT_ENABLE_ALL) turns each kind of MatMul into on the CPU provider.
STATIC_KERNELS = ("QLinearMatMul", "QGemm", "MatMulIntegerToFloat")
DYNAMIC_KERNELS = ("DynamicQuantizeMatMul", "MatMulInteger")
FLOAT_KERNELS = ("MatMul", "FusedMatMul", "Gemm")


@pytest.mark.parametrize("name", list(SIZES))
def test_static_qdq_matmuls_run_integer_kernels(artifact_dirs, name, tmp_path):
    """The graph ORT actually runs (its optimized model): every QDQ MatMul fused into an integer kernel,
    the GELU-fed ones into DynamicQuantizeMatMul, and float MatMuls left exactly for activation x
    activation (no constant input), matching the manifest's op_groups."""
    import shutil

    d = tmp_path / "d"
    shutil.copytree(artifact_dirs[name], d)
    quantize(d, QuantizeSettings(mode="static", samples=16, seq_len=32))
    q = Manifest.load(d).artifacts["model.int8-static.onnx"]["quantization"]
    groups = {g["group"]: g["ops"] for g in q["op_groups"]}
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(d / "model.int8-static.onnx"), so, providers=["CPUExecutionProvider"])
    graph = onnx.load(so.optimized_model_filepath).graph
    kinds = collections.Counter(n.op_type for n in graph.node)
    assert sum(kinds[k] for k in STATIC_KERNELS) == groups["static int8"]["MatMul"] > 0
    assert sum(kinds[k] for k in DYNAMIC_KERNELS) == groups["dynamic int8"]["MatMul"] == GELU_FED[name]
    floats = [n for n in graph.node if n.op_type in FLOAT_KERNELS]
    assert len(floats) == groups["float"]["MatMul"] == ATTENTION_MATMULS
    constants = {t.name for t in graph.initializer}
    assert all(not constants.intersection(n.input) for n in floats), [n.name for n in floats]
    assert not kinds["ConvInteger"] and not kinds["Conv"]


def test_static_entropy_and_percentile_run(artifact_dirs):
    d = artifact_dirs["squeezebert"]
    for method in ("entropy", "percentile"):
        quantize(d, QuantizeSettings(mode="static", samples=8, seq_len=32, method=method))
        q = Manifest.load(d).artifacts["model.int8-static.onnx"]["quantization"]
        assert q["calibration"]["method"] == method and q["quantized_ops"]


def test_user_calibration_file_with_relative_paths(artifact_dirs, tmp_path, monkeypatch):
    d = artifact_dirs["distilbert"]
    calib = tmp_path / "c.csv"
    calib.write_text("body\n" + "\n".join(f'"{t}"' for t in load_builtin("test").texts[:10]), encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # ORT runs in a scratch cwd: relative user paths must still work
    rel_dir = Path(os.path.relpath(d, tmp_path))
    quantize(rel_dir, QuantizeSettings(mode="static", calibration=Path("c.csv"), text_column="body",
                                       samples=100, seq_len=32))
    assert Path.cwd() == tmp_path
    cal = Manifest.load(d).artifacts["model.int8-static.onnx"]["quantization"]["calibration"]
    assert cal["source"] == str(calib) and cal["samples"] == 10 and cal["batches"] == 2
    with pytest.raises(UsageError, match="no column"):
        quantize(d, QuantizeSettings(mode="static", calibration=calib, text_column="text"))


# ---------------------------------------------------------------------------------- int8 vs fp32 gate
@pytest.fixture(scope="module")
def trained_dirs(tmp_path_factory):
    """A trained tiny DistilBERT exported to ONNX, and a copy int8 cannot represent (a dead-unit outlier)."""
    from edgebert.export import ExportSettings, export

    root = tmp_path_factory.mktemp("trained")
    good = train_tiny_classifier(root / "src", "distilbert")
    bad = with_dead_unit_outlier(good, root / "src-outlier")
    out = {}
    for key, src in (("good", good), ("outlier", bad)):
        export(str(src), root / key, ExportSettings(formats=("onnx",), seq_len=64))
        out[key] = root / key
    return out


#: max |Δlogit| vs fp32 on the 200 validation texts, measured on the trained tiny DistilBERT
#: (dynamic 0.016, static 0.12; its fp32 logits have std ~0.85): about 2.5x headroom.
MAX_LOGIT_DIFF = {"dynamic": 0.05, "static": 0.3}


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_int8_agrees_with_fp32_on_the_validation_texts(trained_dirs, mode):
    from transformers import AutoTokenizer

    from edgebert.quantize import validate

    d = trained_dirs["good"]
    quantize(d, QuantizeSettings(mode=mode, samples=64, seq_len=64))
    v = Manifest.load(d).artifacts[f"model.int8-{mode}.onnx"]["validation"]
    assert v["source"] == "builtin:rt-snippets/validation" and v["texts"] == 200 and v["min_agreement"] == 0.9
    assert v["texts_label"] == "200 built-in validation texts" and "hint" not in v  # built-in labels: no --data hint
    assert v["agreement"]["confident"]["rate"] >= 0.95 and v["agreement"]["overall"]["n"] == 200
    assert v["prediction_agreement"] >= 0.95 and v["max_abs_logit_diff"] < MAX_LOGIT_DIFF[mode]
    # the texts checked are the validation split's first 200, at batch 1 and each at its own length
    tok = AutoTokenizer.from_pretrained(str(d / "tokenizer"))
    rows = validate.rows(tok, 64, 200)
    assert [r[0].shape for r in rows] == [tok(t, return_tensors="np")["input_ids"].shape
                                          for t in load_builtin("validation").texts[:200]]
    assert not set(validate.texts(200)) & set(load_builtin("test").texts)
    assert v["lengths"]["max"] > v["lengths"]["min"]  # unpadded: lengths differ


def test_a_quantization_below_min_agreement_keeps_no_file(trained_dirs, tmp_path):
    import shutil

    d = tmp_path / "outlier"
    shutil.copytree(trained_dirs["outlier"], d)
    before = (d / "manifest.json").read_bytes()
    for mode in ("dynamic", "static"):
        result = run_cli("quantize", d, "--mode", mode, "--samples", "32", "--seq-len", "64")
        assert_clean_error(result, 1, f"model.int8-{mode}.onnx: ")
        assert "agreement with fp32 on confident texts 0." in result.output or "no fp32 prediction is confident" \
            in result.output
        assert "200 built-in validation texts" in result.output and "no file was kept" in result.output
        assert not (d / f"model.int8-{mode}.onnx").exists()
        assert (d / "manifest.json").read_bytes() == before and no_temp_files(d)
    # the breakage is real: with the gate off the same quantization is kept and records the low agreement
    assert run_cli("quantize", d, "--mode", "dynamic", "--min-agreement", "0").exit_code == 0
    v = Manifest.load(d).artifacts["model.int8-dynamic.onnx"]["validation"]
    assert v["prediction_agreement"] < 0.7 and v["min_agreement"] == 0.0
    assert_clean_error(run_cli("quantize", d, "--mode", "dynamic", "--min-agreement", "1.5"), 2, "--min-agreement")
    with pytest.raises(UsageError, match="between 0 and 1"):
        quantize(d, QuantizeSettings(mode="dynamic", min_agreement=-0.1))


def test_an_artifact_with_zeroed_int8_weights_fails_the_gate(trained_dirs, tmp_path):
    """The gate itself on a deliberately broken artifact: the real int8 model with its int8 weights zeroed."""
    from transformers import AutoTokenizer

    from edgebert.errors import ValidationError
    from edgebert.quantize import validate

    d = trained_dirs["good"]
    quantize(d, QuantizeSettings(mode="dynamic", seq_len=64))
    model = onnx.load(str(d / "model.int8-dynamic.onnx"))
    zeroed = 0
    for t in model.graph.initializer:
        if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 2:
            t.CopyFrom(numpy_helper.from_array(np.zeros(tuple(t.dims), np.int8), t.name))
            zeroed += 1
    assert zeroed >= 14
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    tok = AutoTokenizer.from_pretrained(str(d / "tokenizer"))
    v = validate.compare(str(d / "model.onnx"), str(broken), tok, 64, 0.9)
    assert v["prediction_agreement"] < 0.9 and v["max_abs_logit_diff"] > 1.0
    with pytest.raises(ValidationError, match=r"broken\.onnx: .*200 built-in validation texts"):
        validate.gate("broken.onnx", v)
    healthy = validate.compare(str(d / "model.onnx"), str(d / "model.int8-dynamic.onnx"), tok, 64, 0.9)
    validate.gate("model.int8-dynamic.onnx", healthy)  # passes


@pytest.mark.parametrize("edit,key", [
    (lambda q: q["op_groups"][0].update(group="int4"), "op_groups[0].group: unknown value 'int4'"),
    (lambda q: q["op_groups"][0]["ops"].update(MatMul="12"), "op_groups[0].ops[\"MatMul\"]: expected an integer"),
    (lambda q: q["op_groups"][0].pop("why"), "op_groups[0].why: missing"),
    (lambda q: q["op_groups_scope"].update(per="galaxy"), "op_groups_scope.per: unknown value"),
])
def test_a_crafted_op_groups_record_is_refused(trained_dirs, tmp_path, edit, key):
    """Reports render op_groups as they are: the manifest schema checks them on load."""
    import shutil

    d = tmp_path / "d"
    shutil.copytree(trained_dirs["good"], d)
    quantize(d, QuantizeSettings(mode="dynamic", seq_len=64))
    data = json.loads((d / "manifest.json").read_text())
    edit(data["artifacts"]["model.int8-dynamic.onnx"]["quantization"])
    (d / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(UsageError, match=re.escape(f'artifacts["model.int8-dynamic.onnx"].quantization.{key}')):
        Manifest.load(d)


def test_cli_default_min_agreement_is_the_library_default():
    from edgebert.cli import main

    option = next(p for p in main.commands["quantize"].params if p.name == "min_agreement")
    assert option.default == QuantizeSettings(mode="dynamic").min_agreement == 0.9


# ---------------------------------------------------------------------------------- errors
def test_usage_errors(artifact_dirs, tmp_path):
    d = artifact_dirs["distilbert"]
    with pytest.raises(UsageError, match="method"):
        quantize(d, QuantizeSettings(mode="static", method="kl"))
    with pytest.raises(UsageError, match="mode"):
        quantize(d, QuantizeSettings(mode="int4"))
    with pytest.raises(UsageError, match="no such dataset"):
        quantize(d, QuantizeSettings(mode="static", calibration=tmp_path / "missing.csv"))


def test_corrupt_or_missing_fp32_model(artifact_dirs, tmp_path):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(artifact_dirs["distilbert"], d)
    for f in d.glob("model.int8-*"):
        f.unlink()
    before = sorted(p.name for p in d.iterdir())
    (d / "model.onnx").write_bytes(b"\x08\x07not an onnx model at all" * 10)
    with pytest.raises(UsageError, match="not a valid ONNX model"):
        quantize(d, QuantizeSettings(mode="dynamic"))
    (d / "model.onnx").unlink()
    with pytest.raises(UsageError, match="missing"):
        quantize(d, QuantizeSettings(mode="dynamic"))
    after = sorted(p.name for p in d.iterdir())
    assert after == [n for n in before if n != "model.onnx"]  # nothing half-written left behind


def test_reduce_range_follows_the_host_isa():
    from edgebert.quantize.host_isa import cpu_flags, reduce_range_choice

    flags = cpu_flags("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n\nprocessor\t: 1\nflags\t: other\n")
    assert flags == {"fpu", "sse2", "avx2", "fma"}
    on, why = reduce_range_choice("x86_64", flags)
    assert on and "without VNNI" in why                       # u8s8 saturates: 7-bit weights
    assert reduce_range_choice("x86_64", flags | {"avx512_vnni"})[0] is False
    assert reduce_range_choice("x86_64", flags | {"avx_vnni"})[0] is False
    assert reduce_range_choice("aarch64", set())[0] is False   # ARM kernels do not saturate
