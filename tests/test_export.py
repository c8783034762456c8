"""ONNX export of tiny real models of both architectures, validated against PyTorch."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from edgebert.errors import ValidationError
from edgebert.export import ExportSettings, export
from edgebert.manifest import Manifest
from support import load_tokenizer, random_texts, restore_exporter_mask, save_tiny_hf_dir


@pytest.mark.parametrize("arch_name", ["distilbert", "squeezebert"])
def test_export_validates_and_records(tmp_path, arch_name):
    src = save_tiny_hf_dir(tmp_path / "src", arch_name)
    out = tmp_path / "out"
    manifest = export(str(src), out, ExportSettings(seq_len=64))
    rec = manifest.artifacts["model.onnx"]
    assert rec["validation"]["max_abs_diff"] < 1e-4
    assert {c["batch"] for c in rec["validation"]["cases"]} == {1, 4}
    assert {c["padded"] for c in rec["validation"]["cases"]} == {True, False}
    assert len({c["seq_len"] for c in rec["validation"]["cases"]}) >= 2
    # the exporter picked by measurement (TorchScript, opset 18) and why, in the manifest
    assert rec["exporter"]["dynamo"] is False and rec["exporter"]["opset"] == 18 and "measured" in rec["exporter"]["why"]
    assert rec["sha256"] and rec["size_bytes"] > 0
    assert Manifest.load(out).model["architecture"] == arch_name
    assert (out / "tokenizer" / "tokenizer_config.json").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left

    # dynamic axes: a batch and length never seen during export still match PyTorch
    tok = load_tokenizer(out / "tokenizer")
    enc = tok(random_texts(3, seed=7), padding=True, truncation=True, max_length=50, return_tensors="np")
    feeds = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
    got = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    from edgebert.models import load_classifier

    model = load_classifier(str(src)).model
    with torch.no_grad():
        ref = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits.numpy()
    assert np.abs(got - ref).max() < 1e-4


def test_failed_validation_leaves_no_file(tmp_path):
    src = save_tiny_hf_dir(tmp_path / "src", "distilbert")
    out = tmp_path / "out"
    with pytest.raises(ValidationError, match="tolerance 1e-12"):
        export(str(src), out, ExportSettings(seq_len=32, atol=1e-12))
    assert not (out / "model.onnx").exists()
    assert Manifest.load(out).artifacts == {}  # the manifest never points at a file that is not there
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_dynamo_exporter_still_validates(tmp_path):
    """The other exporter stays usable (the benchmark compares the two): same validation, recorded as dynamo."""
    from edgebert.export.onnx import export_onnx
    from edgebert.models import load_classifier

    loaded = load_classifier(str(save_tiny_hf_dir(tmp_path / "src", "distilbert")))
    rec = export_onnx(loaded.model, loaded.tokenizer, tmp_path / "m.onnx", 32, 1e-4, exporter="dynamo")
    assert rec["exporter"]["dynamo"] is True and rec["exporter"]["opset"] >= 18
    assert rec["validation"]["max_abs_diff"] < 1e-4 and (tmp_path / "m.onnx").is_file()


def _softmax_outputs(model, feeds):
    """Every Softmax output of ``model`` for ``feeds`` (the graph extended with them as outputs)."""
    import onnx

    from edgebert.devices import ort_session

    names = [n.output[0] for n in model.graph.node if n.op_type == "Softmax"]
    model.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names)
    return ort_session.create(model.SerializeToString(), threads=1).run(names, feeds)


@pytest.mark.parametrize("arch_name", ["distilbert", "squeezebert"])
def test_the_mask_constant_keeps_padded_attention_out_of_denormals(tmp_path, arch_name):
    """ORT's softmax computes each masked (padded) position's exponential from the exporter's finfo.min in the
    subnormal range (slow on x86) and outputs 0; the export's -50 makes them normal floats, adds no operator,
    leaves every probability as it was, and is recorded. (The speed is measured by bench_vs_optimum.py.)"""
    import onnx

    from edgebert.export import masked_scores

    src = save_tiny_hf_dir(tmp_path / "src", arch_name)
    rec = export(str(src), tmp_path / "out", ExportSettings(seq_len=32)).artifacts["model.onnx"]
    model = onnx.load(str(tmp_path / "out" / "model.onnx"))
    assert sum(n.op_type == "Softmax" for n in model.graph.node) == 2
    assert rec["graph_rewrites"][0] == {"name": "masked_scores", "count": 1, "why": masked_scores.WHY}
    tok = load_tokenizer(tmp_path / "out" / "tokenizer")
    enc = tok(["the movie was good"], padding="max_length", max_length=64, return_tensors="np")
    feeds = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
    ours = np.concatenate([p.ravel() for p in _softmax_outputs(model, feeds)])
    assert ours.min() >= np.finfo(np.float32).tiny  # masked positions are e^-50-ish normal floats, none 0

    # the stock graph: the exporter's finfo.min back in the one constant that was changed
    stock = onnx.load(str(tmp_path / "out" / "model.onnx"))
    assert restore_exporter_mask(stock) == 1
    stock_probs = np.concatenate([p.ravel() for p in _softmax_outputs(stock, feeds)])
    # the masked positions: ORT's exponential ran them through the subnormal range and they came out as 0
    assert (stock_probs == 0).sum() > 0.5 * stock_probs.size
    np.testing.assert_allclose(ours, stock_probs, atol=1e-20)  # the same probabilities otherwise
    assert [n.op_type for n in stock.graph.node] == [n.op_type for n in model.graph.node]  # no operator added
    assert masked_scores.bound_masks(stock) == 1 and masked_scores.bound_masks(model) == 0  # idempotent


def test_only_constants_that_reach_a_softmax_are_masks():
    """A very negative constant on the path into a Softmax (through the mask's Mul/Add) is set to -50; one that
    feeds anything else (here a Clip bound) is left alone, and so is a mildly negative one."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgebert.export import masked_scores

    def const(name, value):
        return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.array(value, np.float32)))

    nodes = [const("big", -1e9), const("clip_lo", -1e9), const("mild", -100.0),
             helper.make_node("Mul", ["m", "big"], ["mask"]), helper.make_node("Add", ["s", "mask"], ["x"]),
             helper.make_node("Add", ["x", "mild"], ["x2"]), helper.make_node("Softmax", ["x2"], ["p"], axis=-1),
             helper.make_node("Clip", ["s", "clip_lo"], ["c"])]
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in ("m", "s", "p", "c")]
    model = helper.make_model(helper.make_graph(nodes, "g", vi[:2], vi[2:]))
    assert masked_scores.bound_masks(model) == 1
    values = {n.output[0]: float(numpy_helper.to_array(n.attribute[0].t)) for n in model.graph.node
              if n.op_type == "Constant"}
    assert values == {"big": masked_scores.MASK_VALUE, "clip_lo": -1e9, "mild": -100.0}


@pytest.mark.parametrize("arch_name", ["distilbert", "squeezebert"])
def test_residual_adds_before_layernorm_are_sums_so_ort_keeps_them_unfused(tmp_path, arch_name):
    """Sum is Add's function but not SkipLayerNormFusion's pattern: the fp32 export validates (same logits)
    and ORT's optimized int8 graph keeps LayerNormalization unfused (it fuses the exporter's Add there)."""
    import onnx

    from edgebert.devices import ort_session
    from edgebert.export import residual_sum
    from edgebert.quantize import QuantizeSettings, quantize

    src = save_tiny_hf_dir(tmp_path / "src", arch_name)
    out = tmp_path / "out"
    rec = export(str(src), out, ExportSettings(seq_len=32)).artifacts["model.onnx"]
    model = onnx.load(str(out / "model.onnx"))
    producer = {o: n for n in model.graph.node for o in n.output}

    def feeder(norm):  # SqueezeBERT transposes from channels-first between its residual Add and LayerNorm
        node = producer[norm.input[0]]
        return producer[node.input[0]] if node.op_type == "Transpose" else node

    norms = [n for n in model.graph.node if n.op_type == "LayerNormalization"]
    fed_by_sum = sum(feeder(n).op_type == "Sum" for n in norms)
    assert fed_by_sum == 5 == len(norms)  # embeddings + 2 per layer
    assert {"name": "residual_sum", "count": 5, "why": residual_sum.WHY} in rec["graph_rewrites"]

    quantize(out, QuantizeSettings(mode="dynamic", formats=("onnx",), seq_len=32, min_agreement=0))
    int8 = onnx.load(str(out / "model.int8-dynamic.onnx"))

    def fused_ops(m, where):
        ort_session.create(m.SerializeToString(), threads=1, optimized_model_path=str(where))
        return {n.op_type for n in onnx.load(str(where)).graph.node}

    assert "SkipLayerNormalization" not in fused_ops(int8, tmp_path / "opt-sum.onnx")
    for node in int8.graph.node:
        if node.op_type == "Sum":
            node.op_type = "Add"
    assert "SkipLayerNormalization" in fused_ops(int8, tmp_path / "opt-add.onnx")  # what the rewrite avoids
