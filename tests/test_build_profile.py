"""Per-op profile (`check --profile`): ONNX Runtime's trace parsed in the worker; LiteRT's CompiledModel
profiler (libLiteRt.so through ctypes) in a child process."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

import pytest

from edgebert.cli import main
from edgebert.devices import litert_profile, runtimes, worker
from edgebert.manifest import Manifest
from support import load_tokenizer, make_artifact_dir


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory, tiny):
    """The tiny model as fp32 TFLite (one [1, 32] signature) and its dynamic-int8 (AEQ) version, with records."""
    from edgebert.export.tflite import export_tflite
    from edgebert.quantize import tflite as quantize_tflite

    d = tmp_path_factory.mktemp("tfl-profile")
    record = export_tflite(tiny.model, load_tokenizer(tiny.tokenizer_dir), d / "model.tflite", 32, 1e-4)
    quantize_tflite.dynamic(d / "model.tflite", d / "model.int8-dynamic.tflite", None, log=d / "q.log")
    return d / "model.tflite", d / "model.int8-dynamic.tflite", record


def test_worker_profiles_onnx_runtime_after_the_timed_runs(tmp_path, tiny):
    ids = np.random.default_rng(0).integers(5, 20, (4, 16)).astype(np.int64)
    np.savez(tmp_path / "in.npz", input_ids=ids, attention_mask=np.ones_like(ids),
             latency_input_ids=ids[:1], latency_attention_mask=np.ones_like(ids[:1]))
    req = worker.build_request(runtime="onnxruntime", model=str(tiny.int8), threads=1, inputs=str(tmp_path / "in.npz"),
                               outputs=str(tmp_path / "out.npz"), result=str(tmp_path / "r.json"), warmup=1, runs=2,
                               profile_runs=5)
    result, logits = worker.serve(req)
    assert result["status"] == "ok", result
    prof = result["profile"]
    assert prof["status"] == "ok" and prof["runs"] == 5 and prof["kernel_ms_per_inference"] > 0
    ops = [o["op"] for o in prof["top_ops"]]
    assert {"MatMulInteger", "DynamicQuantizeMatMul"} & set(ops), ops  # the int8 kernels show up by name
    assert abs(sum(o["share"] for o in prof["top_ops"]) - 1) < 0.05 or len(ops) == 10
    assert prof["top_ops"] == sorted(prof["top_ops"], key=lambda o: -o["ms"])
    slowest = prof["top_nodes"][0]
    assert slowest["node"] and slowest["ms"] == max(n["ms"] for n in prof["top_nodes"])
    # a node's op type totals at least that node's time: it is listed, or all ten listed types total more
    by_op = {o["op"]: o["ms"] for o in prof["top_ops"]}
    assert by_op.get(slowest["op"], 0) >= slowest["ms"] or (len(ops) == 10 and min(by_op.values()) >= slowest["ms"])
    assert "profile" not in worker.serve({**req, "profile_runs": 0})[0]  # off by default


def test_summarize_ops_aggregates_per_op_type():
    events = [("a", "MatMul", 300.0), ("b", "MatMul", 100.0), ("c", "Add", 100.0)] * 2
    out = runtimes.summarize_ops(events, runs=2)
    assert out["top_ops"][0] == {"op": "MatMul", "ms": 0.4, "share": 0.8, "nodes": 2}
    assert out["top_nodes"][0] == {"node": "a", "op": "MatMul", "ms": 0.3, "share": 0.6}
    assert out["kernel_ms_per_inference"] == 0.5


@pytest.mark.parametrize("which,kernel", [(0, "(NC, F32)"), (1, "QC8W")])  # fp32; int8 weights (XNNPACK QD8/QC8W)
def test_worker_profiles_litert_per_tflite_builtin_op(tmp_path, tiny_tflite, which, kernel):
    ids = np.random.default_rng(0).integers(5, 20, (4, 16)).astype(np.int64)
    np.savez(tmp_path / "in.npz", input_ids=ids, attention_mask=np.ones_like(ids),
             latency_input_ids=ids[:1], latency_attention_mask=np.ones_like(ids[:1]))
    req = worker.build_request(runtime="litert", model=str(tiny_tflite[which]), threads=1,
                               inputs=str(tmp_path / "in.npz"), outputs=str(tmp_path / "out.npz"),
                               result=str(tmp_path / "r.json"), warmup=1, runs=2, profile_runs=5)
    result, _ = worker.serve(req)
    assert result["status"] == "ok", result
    prof = result["profile"]
    assert prof["status"] == "ok", prof
    assert prof["runs"] == 5 and prof["signature"] == "seq32" and prof["kernel_ms_per_inference"] > 0
    ops = {o["op"]: o for o in prof["top_ops"]}
    assert "FULLY_CONNECTED" in ops and "BATCH_MATMUL" in ops, ops  # TFLite builtin names, not XNNPACK's
    assert all(o["op"].isupper() and not o["op"].startswith("XNNPACK:") for o in prof["top_ops"]), ops
    assert any(kernel in k for k in ops["FULLY_CONNECTED"]["kernels"]), ops["FULLY_CONNECTED"]  # int8 by name
    assert abs(sum(o["share"] for o in prof["top_ops"]) - 1) < 0.05 or len(ops) == 10
    assert prof["top_ops"] == sorted(prof["top_ops"], key=lambda o: -o["ms"])
    assert prof["top_nodes"] == sorted(prof["top_nodes"], key=lambda n: -n["ms"]) and prof["top_nodes"][0]["kernel"]
    assert prof["invoke_ms_per_inference"] >= prof["kernel_ms_per_inference"] * 0.5


def test_xnnpack_operators_map_to_tflite_builtin_ops():
    events = [("Invoke", 1, 100, 0), ("GATHER_ND", 2, 5, 17), ("Convert (NC, F32, QD8)", 8, 3, 0),
              ("Fully Connected (NC, QD8, F32, QC8W) GEMM", 8, 20, 1), ("Slice (ND, X32)", 8, 1, 2),
              ("Static Reshape (NC)", 8, 0, 3), ("Invoke", 32, 7, 0)]
    kernels, runs, invokes = litert_profile.kernel_events(events, frozenset({"SLICE", "GATHER_ND"}))
    assert runs == 1 and invokes == [100]
    assert [(n, op, us) for n, op, us, _ in kernels] == [
        ("node:17", "GATHER_ND", 5.0), ("xnnpack:0", "FULLY_CONNECTED", 3.0), ("xnnpack:1", "FULLY_CONNECTED", 20.0),
        ("xnnpack:2", "SLICE", 1.0), ("xnnpack:3", "RESHAPE", 0.0)]
    assert litert_profile.builtin_op("Slice (ND, X32)") == "STRIDED_SLICE"  # the model's op wins, else the first


def test_litert_profiler_crash_or_broken_library_is_a_failed_profile(tmp_path, tiny_tflite):
    import os
    import signal

    ids = np.full((1, 32), 7, np.int32)
    req = {"model": str(tiny_tflite[0]), "signature": "seq32", "runs": 5,
           "inputs": {"input_ids": ids, "attention_mask": np.ones_like(ids)}}
    out = litert_profile.profile_isolated(req, on_start=lambda pid: os.kill(pid, signal.SIGSEGV))
    assert out["status"] == "failed" and "died of SIGSEGV" in out["reason"], out
    (tmp_path / "libLiteRt.so").write_bytes(b"\x7fELF damaged")
    out = litert_profile.profile_isolated({**req, "library": str(tmp_path / "libLiteRt.so")})
    assert out["status"] == "failed" and "OSError" in out["reason"] and "libLiteRt.so" in out["reason"], out
    assert litert_profile.profile_isolated(req)["status"] == "ok"


def test_check_profile_lists_the_tflite_artifacts_slow_ops(tmp_path, tiny, tiny_tflite):
    import shutil

    d = make_artifact_dir(tmp_path / "a", tiny, artifacts=("fp32",))
    shutil.copy(tiny_tflite[0], d / "model.tflite")
    man = Manifest.load(d)
    man.add_artifact("model.tflite", {**tiny_tflite[2], "path": "model.tflite"})
    man.save()
    result = CliRunner().invoke(main, ["check", str(d), "--profile", "--limit", "16", "--runs", "2", "--warmup", "1",
                                       "--seq-len", "32"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((d / "report.json").read_text())
    tfl = [r for r in report["records"] if r["artifact"] == "model.tflite"]
    assert tfl and all(r["profile"]["status"] == "ok" for r in tfl), [r.get("profile") for r in tfl]
    line = next(x for x in result.output.splitlines() if "- `model.tflite`: " in x)
    assert line.split(": ", 1)[1].split(" ")[0] == tfl[0]["profile"]["top_ops"][0]["op"], line
    assert "unavailable" not in line


def test_check_profile_flag_names_the_slowest_ops(tmp_path, tiny):
    d = make_artifact_dir(tmp_path / "a", tiny)
    result = CliRunner().invoke(main, ["check", str(d), "--profile", "--limit", "16", "--runs", "2", "--warmup", "1",
                                       "--seq-len", "32"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((d / "report.json").read_text())
    assert report["settings"]["profile"] is True
    assert all(r["profile"]["status"] == "ok" for r in report["records"])
    assert "Slowest operators" in result.output and "- `model.int8-dynamic.onnx`: " in result.output
