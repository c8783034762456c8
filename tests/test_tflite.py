"""TFLite: litert-torch export, AEQ int8 recipes, the LiteRT runtime, and the CLI end to end.

Tiny real models (2 layers, hidden 32) keep this file to about a minute: each TFLite conversion of
a tiny model takes a few seconds. One real CLI run per architecture covers export (ONNX + TFLite)
-> quantize dynamic (every format) -> quantize static (TFLite) -> check -> report.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgebert import devices
from edgebert.devices import worker
from edgebert.devices.litert import LiteRT, custom_ops_problem, inspect_model, legacy_load_error
from edgebert.errors import EdgebertError, UsageError
from edgebert.export.tflite import check_builtin_only, export_tflite
from edgebert.manifest import Manifest
from edgebert.models import get
from edgebert.quantize import tflite as tflite_quant
from edgebert.report.markdown import render
from support import (VOCAB, assert_clean_error, load_tokenizer, no_temp_files, random_texts, run_cli as run,
                     save_tiny_hf_dir, write_tokenizer)
from trained_tiny import train_tiny_classifier, with_dead_unit_outlier

SEQ = 32        # one signature: the fast export tests
MULTI = 64      # two signatures (seq32, seq64): the runtime, worker and CLI tests
FAST_CHECK = ["--limit", "40", "--runs", "3", "--warmup", "1", "--seq-len", str(MULTI)]


def tiny_model(arch_name: str, **overrides):
    arch = get(arch_name)
    torch.manual_seed(0)
    return arch.model_class(arch.tiny_config(vocab_size=len(VOCAB), **overrides)).eval()


def flex_copy(src: Path, dst: Path, op: str = "GELU") -> Path:
    """A copy of a .tflite whose ``op`` is replaced by the Flex custom op ``FlexErf`` (as onnx2tf emits)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(src.read_bytes(), 0)
    code = getattr(schema.BuiltinOperator, op)
    for oc in model.operatorCodes:
        if max(oc.builtinCode, oc.deprecatedBuiltinCode) == code:
            oc.builtinCode = oc.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
            oc.customCode = "FlexErf"
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    dst.write_bytes(bytes(builder.Output()))
    return dst


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tok")
    write_tokenizer(d)
    return d


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory, tok_dir) -> tuple[torch.nn.Module, Path]:
    """A tiny DistilBERT exported to TFLite with signatures [1, 32] and [1, 64] (the runtime tests)."""
    model = tiny_model("distilbert")
    path = tmp_path_factory.mktemp("tfl") / "model.tflite"
    export_tflite(model, load_tokenizer(tok_dir), path, MULTI, 1e-4)
    return model, path


# --- export ---------------------------------------------------------------------------------
@pytest.mark.parametrize("arch,overrides", [("squeezebert", {}),  # tiny_config keeps groups=4
                                            ("squeezebert", {"q_groups": 1, "k_groups": 1, "v_groups": 1,
                                                             "post_attention_groups": 1,
                                                             "intermediate_groups": 1, "output_groups": 1})])
def test_export_validates_against_pytorch(arch, overrides, tmp_path, tok_dir):
    model = tiny_model(arch, **overrides)
    path = tmp_path / "model.tflite"
    rec = export_tflite(model, load_tokenizer(tok_dir), path, SEQ, 1e-4)
    val = rec["validation"]
    assert val["max_abs_diff"] < 1e-4 and val["atol"] == 1e-4
    assert {c["batch"] for c in val["cases"]} == {1, 4} and any(c["padded"] for c in val["cases"])
    assert rec["format"] == "tflite" and rec["fixed_shape"] == {"batch": 1, "seq_len": SEQ, "seq_lens": [SEQ],
                                                                "signatures": {"seq32": SEQ}}
    assert rec["inputs"]["input_ids"] == {"dtype": "int32", "shape": [1, SEQ]}
    # converted channels-last (per-group FULLY_CONNECTED, no CONV_2D), validated against the stock model
    assert rec["graph_rewrites"][0]["name"] == "squeezebert_channels_last_linear" and "CONV_2D" not in rec["op_counts"]
    assert "FULLY_CONNECTED" in rec["op_counts"] and not any(k.startswith("CUSTOM") for k in rec["op_counts"])
    info = inspect_model(path.read_bytes())
    assert info["custom_ops"] == [] and [i["shape"] for i in info["inputs"]] == [[1, SEQ], [1, SEQ]]
    assert no_temp_files(tmp_path)


def test_export_refuses_lengths_beyond_the_model(tmp_path, tok_dir):
    with pytest.raises(UsageError, match="fixed --seq-len"):
        export_tflite(tiny_model("distilbert"), load_tokenizer(tok_dir), tmp_path / "m.tflite", 100000, 1e-4)
    assert not list(tmp_path.iterdir())


# --- inspection, Flex, corrupt files, runtime -----------------------------------------------
def test_flex_and_corrupt_models_are_refused(tiny_tflite, tmp_path):
    _, path = tiny_tflite
    flex = flex_copy(path, tmp_path / "flex.tflite")
    info = inspect_model(flex.read_bytes())
    assert info["custom_ops"] == ["FlexErf"]
    assert "Flex" in custom_ops_problem(info["custom_ops"])
    with pytest.raises(EdgebertError, match="FlexErf"):
        check_builtin_only(info, "flex.tflite")
    with pytest.raises(ValueError, match="Flex .*FlexErf"):
        LiteRT(str(flex), 1)
    for junk in (b"", b"garbage", path.read_bytes()[: len(path.read_bytes()) // 3]):
        (tmp_path / "bad.tflite").write_bytes(junk)
        with pytest.raises(ValueError):
            inspect_model(junk)
        with pytest.raises(Exception):
            LiteRT(str(tmp_path / "bad.tflite"), 1).run(np.zeros((1, SEQ), np.int64), np.ones((1, SEQ), np.int64))


def test_export_has_one_signature_per_length_each_validated(tiny_tflite, tok_dir, tmp_path):
    model, path = tiny_tflite
    rt = LiteRT(str(path), 1)
    assert rt.signatures == {"seq32": 32, "seq64": 64} and rt.lengths == (32, 64)
    rec = export_tflite(model, load_tokenizer(tok_dir), tmp_path / "again.tflite", MULTI, 1e-4)
    by_len = {}
    for case in rec["validation"]["cases"]:
        by_len.setdefault(case["signature_len"], []).append(case)
    assert set(by_len) == {32, 64} and all(c["max_abs_diff"] < 1e-4 for c in rec["validation"]["cases"])
    assert {c["batch"] for c in by_len[32]} == {1, 4}  # the short cases also ran on seq32
    # the weights are stored once: the second signature adds tensor metadata, not a second weight copy
    single = tmp_path / "single.tflite"
    export_tflite(model, load_tokenizer(tok_dir), single, SEQ, 1e-4)
    weights = sum(p.numel() * 4 for p in model.parameters())
    assert buffer_bytes(single) >= 0.5 * weights, (buffer_bytes(single), weights)
    assert buffer_bytes(path) < 1.25 * buffer_bytes(single), (buffer_bytes(path), buffer_bytes(single))


def buffer_bytes(path: Path) -> int:
    """Bytes of constant data (weights) in a .tflite: inline buffers plus offset-stored ones."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(path.read_bytes(), 0)
    total = 0
    for i in range(model.BuffersLength()):
        b = model.Buffers(i)
        total += b.DataLength() or (b.Size() if b.Offset() > 1 else 0)
    return total


def test_runtime_runs_each_batch_on_the_smallest_length_that_holds_it(tiny_tflite, tok_dir):
    model, path = tiny_tflite
    rt = LiteRT(str(path), 1)
    assert rt.fixed_shape and (rt.batch, rt.seq_len) == (1, MULTI) and rt.settings()["fixed_shape"] == [1, MULTI]
    assert rt.settings()["seq_lens"] == [32, 64] and rt.max_length == MULTI
    assert [rt.input_length(w) for w in (1, 32, 33, 64, 65)] == [32, 32, 64, 64, 64]
    tok = load_tokenizer(tok_dir)
    texts = random_texts(12, seed=3)
    enc = tok(texts, truncation=True, max_length=MULTI, padding="longest", return_tensors="np")
    ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
    assert ids.shape[1] > 32 and mask.sum(1).min() <= 32  # some rows fit seq32, the batch needs seq64
    with torch.no_grad():
        ref = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()
    np.testing.assert_allclose(rt.run(ids, mask), ref, atol=1e-4)            # the whole batch on seq64
    short = mask.sum(1) <= 32
    np.testing.assert_allclose(rt.run(ids[short, :32], mask[short, :32]), ref[short], atol=1e-4)  # on seq32
    wide = (np.pad(ids, ((0, 0), (0, 20))), np.pad(mask, ((0, 0), (0, 20))))
    np.testing.assert_allclose(rt.run(*wide), ref, atol=1e-4)                # truncated (padding only)


def test_worker_runs_tflite_importing_only_numpy_and_the_runtime(tiny_tflite, tmp_path, tok_dir):
    _, path = tiny_tflite
    tok = load_tokenizer(tok_dir)
    enc = tok(random_texts(3), truncation=True, max_length=SEQ, padding="max_length", return_tensors="np")
    np.savez(tmp_path / "in.npz", input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
             latency_input_ids=enc["input_ids"][:1], latency_attention_mask=enc["attention_mask"][:1])
    req = worker.build_request(runtime="litert", model=str(path), threads=1, inputs=str(tmp_path / "in.npz"),
                               outputs=str(tmp_path / "out.npz"), result=str(tmp_path / "res.json"),
                               warmup=1, runs=2)
    (tmp_path / "request.json").write_text(json.dumps(req))
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import worker; rc = worker.main([sys.argv[2]]);"
            "print(sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names))); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, str(devices.WORKER_FILE.parent), str(tmp_path / "request.json")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "res.json").read_text())
    assert result["status"] == "ok" and result["runtime"]["name"] == "litert" and result["accuracy_pass"]["n"] == 3
    third_party = set(eval(proc.stdout.strip().splitlines()[-1]))
    third_party -= {"__main__", "worker", "runtimes", "litert", "_distutils_hack"}
    third_party = {m for m in third_party if "editable" not in m}
    assert {"numpy", "ai_edge_litert"} <= third_party
    assert not third_party & {"torch", "transformers", "edgebert", "onnxruntime", "click", "litert_torch",
                              "ai_edge_quantizer", "tensorflow"}


def test_legacy_tflite_runtime_errors_are_one_line():
    msg = ("Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'. An older version of this builtin "
           "might be supported.\nRegistration failed.")
    assert legacy_load_error(msg, "2.14.0") == (
        "cannot load: op FULLY_CONNECTED version 12 is newer than tflite-runtime 2.14.0 supports; "
        "use ai-edge-litert (runtime 'litert')")
    assert legacy_load_error("something\nelse", "2.14.0") == "cannot load: something else"


# --- report ---------------------------------------------------------------------------------
def test_report_puts_formats_side_by_side():
    def rec(artifact, fmt, prec, acc, p50, size, ref):
        return {"artifact": artifact, "format": fmt, "precision": prec, "device": "desktop", "status": "ok",
                "error": None, "reference": ref, "accuracy": acc, "accuracy_ci95": [acc - 0.01, acc + 0.01],
                "agreement": 1.0,
                "max_abs_logit_diff_vs_fp32": 0.0, "latency_ms": {"p50": p50, "p90": p50 + 1}, "threads": 1,
                "size_bytes": size, "peak_rss_mb": 50, "runtime": {"name": "x", "version": "1"}}

    report = {"devices": {"desktop": {"description": "d", "emulated": False}}, "records": [
        rec("model.onnx", "onnx", "fp32", 0.83, 20.0, 4_000_000, "model.onnx"),
        rec("model.tflite", "tflite", "fp32", 0.82, 26.0, 4_000_000, "model.tflite"),
        rec("model.int8-static.tflite", "tflite", "int8-static", 0.81, 5.0, 1_000_000, "model.tflite"),
    ]}
    md = render(report)
    assert md.count("\n## ") == 1 and "Formats side by side" in md
    rows = md.split("Formats side by side:", 1)[1].strip().splitlines()
    assert rows[0].startswith("| Precision | Accuracy onnx | Accuracy tflite | p50 ms onnx | p50 ms tflite")
    assert rows[2] == ("| fp32 | 83.0% [82.0, 84.0] | 82.0% [81.0, 83.0] | 20.00 | 26.00 | 1.00× | 1.00× | "
                       "4.00 | 4.00 |")
    assert rows[3].startswith("| int8-static | — | 81.0% [80.0, 82.0] | — | 5.00 | — | 5.20× |")


# --- the CLI end to end, one real run per architecture ---------------------------------------
@pytest.fixture(scope="module", params=["distilbert", "squeezebert"])
def cli_dir(request, tmp_path_factory) -> Path:
    """export (ONNX + TFLite) -> quantize dynamic (all formats) -> quantize static (TFLite) -> check."""
    root = tmp_path_factory.mktemp(f"cli-{request.param}")
    src = train_tiny_classifier(root / "src", request.param)  # trained: agreement means something; groups=4
    out = root / "out"
    result = run("export", src, "-o", out, "--format", "onnx", "--format", "tflite", "--seq-len", MULTI)
    assert result.exit_code == 0, result.output
    assert "model.tflite" in result.output
    result = run("quantize", out, "--mode", "dynamic")
    assert result.exit_code == 0, result.output
    result = run("quantize", out, "--mode", "static", "--format", "tflite", "--samples", "16")
    assert result.exit_code == 0, result.output
    result = run("check", out, *FAST_CHECK)
    assert result.exit_code == 0, result.output
    return out


def test_cli_end_to_end(cli_dir):
    out = cli_dir
    manifest = Manifest.load(out)
    arts = manifest.artifacts
    assert set(arts) == {"model.onnx", "model.tflite", "model.int8-dynamic.onnx", "model.int8-dynamic.tflite",
                         "model.int8-static.tflite"}
    assert arts["model.tflite"]["validation"]["max_abs_diff"] < 1e-4
    assert arts["model.tflite"]["fixed_shape"]["seq_lens"] == [32, MULTI]
    big = "FULLY_CONNECTED"  # SqueezeBERT too: its TFLite export is channels-last, one FC per conv group
    per = 4 if manifest.architecture == "squeezebert" else 1  # GELU-fed FCs per layer (output_groups)
    dyn = arts["model.int8-dynamic.tflite"]["quantization"]
    st = arts["model.int8-static.tflite"]["quantization"]
    assert dyn["recipe"] == "aeq-dynamic-wi8-afp32" and dyn["quantized_ops"].get(f"{big}(dynamic-range)")
    assert st["recipe"] == "aeq-static-wi8-ai8-fc" and st["quantized_ops"].get(f"{big}(int8)")
    sigs = len(st["calibration"]["signatures"])  # every op appears once per signature
    assert st["quantized_ops"].get("EMBEDDING_LOOKUP(int8 table)") == sigs and big not in st["float_ops"]
    assert st["calibration"]["samples"] == 16 and st["calibration"]["seq_len"] == MULTI
    assert st["calibration"]["signatures"] == {"seq32": 32, "seq64": MULTI}
    assert st["calibration"]["range_update"] == tflite_quant.RANGE_UPDATE
    assert st["calibration"]["engine"] == tflite_quant.CALIBRATION_ENGINE
    assert st["dynamic_range_layers"]["count"] == 2 * per * sigs  # the GELU-fed layers, per encoder layer and signature
    assert st["quantized_ops"][f"{big}(dynamic-range)"] == 2 * per * sigs
    for name in ("model.int8-dynamic.tflite", "model.int8-static.tflite"):
        v = arts[name]["validation"]  # LiteRT int8 vs LiteRT fp32 on the validation split, batch 1
        assert arts[name]["parent"] == "model.tflite" and v["reference"] == "fp32 tflite (LiteRT)"
        assert v["source"] == "builtin:rt-snippets/validation" and v["texts"] == 200 and v["min_agreement"] == 0.9
        assert v["prediction_agreement"] >= 0.95 and v["max_abs_logit_diff"] < MAX_LOGIT_DIFF[name], v
    assert_tflite_op_groups(arts, big, per)
    report = json.loads((out / "report.json").read_text())
    for rec in report["records"]:
        assert rec["status"] == "ok", rec
        want = "litert" if rec["format"] == "tflite" else "onnxruntime"
        assert rec["runtime"]["name"] == want and rec["n_samples"] == 40
        if rec["format"] == "tflite":
            assert rec["reference"] == "model.tflite" and rec["agreement"] is not None
    result = run("report", out)
    assert result.exit_code == 0, result.output
    md = (out / "report.md").read_text()
    assert "Formats side by side" in md and "litert 2." in md
    assert no_temp_files(out)


#: max |Δlogit| vs fp32 on the 200 validation texts for the trained tiny models (fp32 logit std ~0.8),
#: measured: dynamic 0.009 / 0.013, static (16 calibration samples) 1.18 / 0.61 (DistilBERT / SqueezeBERT).
#: A model whose int8 weights are zeroed is off by > 1.5 (test below).
MAX_LOGIT_DIFF = {"model.int8-dynamic.tflite": 0.05, "model.int8-static.tflite": 1.5}


def assert_tflite_op_groups(arts: dict, big: str, per: int = 1) -> None:
    """op_groups per signature, from the real graph: the same schema as ONNX, TFLite op names
    (``per``: GELU-fed ``big`` ops per layer, one per group of a channels-last SqueezeBERT)."""
    layers = 2
    for name, mode in (("model.int8-dynamic.tflite", "dynamic"), ("model.int8-static.tflite", "static")):
        q = arts[name]["quantization"]
        groups = {g["group"]: g for g in q["op_groups"]}
        assert q["op_groups_scope"] == {"per": "signature", "signatures": 2}
        assert q["recipe_description"].startswith("ai-edge-quantizer") and all(g["why"] for g in q["op_groups"])
        weights = {op: q["op_counts"][op] // 2 for op in ("FULLY_CONNECTED", "CONV_2D") if op in q["op_counts"]}
        fl = groups["float"]
        assert fl["ops"]["BATCH_MATMUL"] == 2 * layers and fl["notes"]["BATCH_MATMUL"].startswith("attention")
        assert fl["ops"]["SOFTMAX"] == layers and fl["ops"]["GELU"] == layers and fl["ops"]["RSQRT"] == 2 * layers + 1
        assert not set(weights) & set(fl["ops"])  # every weight layer runs int8
        assert groups["int8 weights only"]["ops"] == {"EMBEDDING_LOOKUP": 1}
        if mode == "dynamic":
            assert groups["dynamic int8"]["ops"] == weights and "static int8" not in groups
        else:
            assert q["dynamic_range_layers"]["count"] == 2 * per * layers  # the GELU-fed layers, in both signatures
            assert groups["dynamic int8"]["ops"] == {big: per * layers}
            assert groups["dynamic int8"]["notes"] == {big: "GELU-fed (FFN output)"}
            assert groups["static int8"]["ops"] == {**weights, big: weights[big] - per * layers}


def zero_int8_weights(src: Path, dst: Path) -> int:
    """A copy of a .tflite whose int8 constant tensors (weights, tables) are all zeros; returns how many."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(src.read_bytes(), 0)
    zeroed = set()
    for sg in model.subgraphs:
        for t in sg.tensors:
            buf = model.buffers[t.buffer] if t.buffer > 0 else None
            if t.type == schema.TensorType.INT8 and buf is not None and buf.data is not None and len(buf.data):
                buf.data = np.zeros(len(buf.data), np.uint8)
                zeroed.add(t.buffer)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    dst.write_bytes(bytes(builder.Output()))
    return len(zeroed)


@pytest.mark.parametrize("cli_dir", ["distilbert"], indirect=True)
def test_broken_int8_tflite_fails_the_min_agreement_gate(cli_dir, tmp_path, tok_dir):
    from transformers import AutoTokenizer

    from edgebert.errors import ValidationError
    from edgebert.quantize import tflite as tfl, validate

    tok = AutoTokenizer.from_pretrained(str(cli_dir / "tokenizer"))
    broken = tmp_path / "broken.tflite"
    assert zero_int8_weights(cli_dir / "model.int8-dynamic.tflite", broken) >= 10
    v = tfl.compare(cli_dir / "model.tflite", broken, tok, MULTI, 0.9)
    good = tfl.compare(cli_dir / "model.tflite", cli_dir / "model.int8-dynamic.tflite", tok, MULTI, 0.9)
    # the broken weights show in both figures: far lower agreement, several times the good artifact's drift
    assert v["prediction_agreement"] < 0.9 <= good["prediction_agreement"]
    assert v["max_abs_logit_diff"] > 3 * good["max_abs_logit_diff"]
    with pytest.raises(ValidationError, match=r"broken\.tflite: agreement with fp32 on confident texts 0\.\d+ .*"
                                              r"is below --min-agreement 0\.90 \(200 built-in validation texts"):
        validate.gate("broken.tflite", v)
    validate.gate("ok", good)


def test_cli_quantize_below_min_agreement_keeps_no_tflite(tmp_path):
    """A model int8 cannot represent (a dead-unit outlier weight, see trained_tiny) through the real CLI:
    exit 1, one line, no file, manifest unchanged."""
    good = train_tiny_classifier(tmp_path / "src", "distilbert")
    src = with_dead_unit_outlier(good, tmp_path / "outlier")
    out = tmp_path / "out"
    assert run("export", src, "-o", out, "--format", "tflite", "--seq-len", SEQ).exit_code == 0
    before = (out / "manifest.json").read_bytes()
    for mode in ("dynamic", "static"):
        result = run("quantize", out, "--mode", mode, "--samples", "16")
        assert_clean_error(result, 1, f"model.int8-{mode}.tflite: agreement with fp32 on confident texts 0.")
        assert "is below --min-agreement 0.90 (200 built-in validation texts" in result.output
        assert result.output.rstrip().endswith("no file was kept")
        assert not (out / f"model.int8-{mode}.tflite").exists()
        assert (out / "manifest.json").read_bytes() == before and no_temp_files(out)
    result = run("quantize", out, "--mode", "dynamic", "--min-agreement", "0.5")
    assert result.exit_code == 0, result.output
    assert 0.5 <= Manifest.load(out).artifacts["model.int8-dynamic.tflite"]["validation"]["prediction_agreement"] < 0.9


@pytest.mark.parametrize("cli_dir", ["distilbert"], indirect=True)
def test_cli_bad_tflite_inputs(cli_dir, tmp_path):
    # a .tflite that needs Flex ops: check reports a clear failed record (exit 1)
    d = tmp_path / "flex"
    shutil.copytree(cli_dir, d)
    man = Manifest.load(d)
    flex_copy(d / "model.tflite", d / "model.tflite")
    man.add_artifact("model.tflite", {**man.artifacts["model.tflite"]})  # re-hash: a file edgebert did not make
    man.save()
    result = run("check", d, *FAST_CHECK)
    assert result.exit_code == 1 and "Traceback" not in result.output
    recs = {r["artifact"]: r for r in json.loads((d / "report.json").read_text())["records"]}
    assert recs["model.tflite"]["status"] == "failed" and "FlexErf" in recs["model.tflite"]["error"]
    assert recs["model.onnx"]["status"] == "ok"

    # a corrupt fp32 .tflite: quantize refuses it (exit 2) and adds nothing; check fails that record
    d = tmp_path / "corrupt"
    shutil.copytree(cli_dir, d)
    (d / "model.tflite").write_bytes(b"this is not a tflite file")
    before = json.dumps(Manifest.load(d).artifacts, sort_keys=True)
    assert_clean_error(run("quantize", d, "--mode", "dynamic", "--format", "tflite"), 2, "model.tflite")
    assert json.dumps(Manifest.load(d).artifacts, sort_keys=True) == before
    result = run("check", d, *FAST_CHECK)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert no_temp_files(d)

    # options that cannot work
    assert_clean_error(run("quantize", cli_dir, "--mode", "static", "--format", "tflite", "--method", "percentile"),
                       2, "minmax")
    assert_clean_error(run("quantize", cli_dir, "--mode", "dynamic", "--format", "coreml"), 2, "unknown format")
    src = tmp_path / "src"
    save_tiny_hf_dir(src, "distilbert")
    assert_clean_error(run("export", src, "-o", tmp_path / "o", "--format", "tflite", "--seq-len", "100000"),
                       2, "exceeds")
    assert_clean_error(run("export", src, "-o", tmp_path / "o2", "--format", "tflite", "--seq-len", "dynamic"),
                       2, "dynamic")
    only_onnx = tmp_path / "only-onnx"
    assert run("export", src, "-o", only_onnx, "--seq-len", SEQ).exit_code == 0
    assert_clean_error(run("quantize", only_onnx, "--mode", "dynamic", "--format", "tflite"), 2, "--format tflite")


def test_the_static_range_update_is_the_one_the_record_names():
    """AEQ's MIN_MAX_UNIFORM_QUANT does not keep the min/max over all samples: it moves a running value 5% of
    the way to each new sample's. The manifest says so (``RANGE_UPDATE``); if the library changes, this fails."""
    from ai_edge_quantizer import algorithm_manager, qtyping

    update = algorithm_manager.get_update_qsv_func(algorithm_manager.AlgorithmName.MIN_MAX_UNIFORM_QUANT,
                                                   qtyping.TFLOperationName.FULLY_CONNECTED)
    out = update({"min": np.array([-1.0]), "max": np.array([1.0])}, {"min": np.array([-21.0]), "max": np.array([21.0])})
    assert float(out["max"][0]) == pytest.approx(0.95 * 1.0 + 0.05 * 21.0)  # 2.0, not the extreme 21
    assert float(out["min"][0]) == pytest.approx(-2.0)
    assert "0.95" in tflite_quant.RANGE_UPDATE and "0.05" in tflite_quant.RANGE_UPDATE


def test_the_calibration_engine_takes_the_ranges_the_python_path_takes(tiny_tflite, tok_dir):
    """The static recipe calibrates with LiteRT's C++ engine (``CALIBRATION_ENGINE``), ~3x faster than AEQ's
    default of copying every tensor to Python after each sample. The record says "minmax" with AEQ's moving
    average: the engine must give every range the Python path gives, to float re-association (6e-7 relative
    on the built-in models), or the record would name something that did not run."""
    from ai_edge_quantizer import calibrator, qtyping, quantizer

    _, path = tiny_tflite
    tok = load_tokenizer(tok_dir)
    texts = [f"sample {i} " + "word " * (3 * i) for i in range(6)]
    rows = {}
    for key, length in {"seq32": 32, "seq64": MULTI}.items():
        enc = tok(texts, padding="max_length", truncation=True, max_length=length, return_tensors="np")
        rows[key] = [{k: enc[k][i:i + 1].astype(np.int32) for k in ("input_ids", "attention_mask")}
                     for i in range(len(texts))]

    def ranges(mode):
        q = quantizer.Quantizer(str(path))
        for op in tflite_quant.STATIC_OPS:
            q.add_static_config(".*", getattr(qtyping.TFLOperationName, op), 8, 8)
        return q.calibrate(rows, num_threads=1, mode=mode)

    python_path = ranges(calibrator.CalibrationMode.CALIBRATION_PRESERVE_ALL_TENSORS)
    engine = ranges(calibrator.CalibrationMode.CALIBRATION_PROFILER_BASED)
    assert python_path and set(python_path) <= set(engine)
    for name, qsv in python_path.items():
        for bound in ("min", "max"):
            want, got = float(np.ravel(qsv[bound])[0]), float(np.ravel(engine[name][bound])[0])
            assert got == pytest.approx(want, rel=1e-5, abs=1e-6), (name, bound)
