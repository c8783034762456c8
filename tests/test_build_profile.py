"""Per-op profile (`check --profile`): ONNX Runtime's trace parsed in the worker; LiteRT says why not."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from edgebert.cli import main
from edgebert.devices import runtimes, worker
from support import make_artifact_dir


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


def test_litert_profile_is_unavailable_with_the_reason():
    from ai_edge_litert.interpreter import Interpreter

    # the reason holds: the installed Python Interpreter has no call that returns op timings (if a
    # future ai-edge-litert adds one, this fails and the profiler should be wired in)
    assert not [n for n in dir(Interpreter) if "profil" in n.lower()], dir(Interpreter)
    rt = object.__new__(runtimes.get("litert"))
    out = rt.profile(None, None, 3)
    assert out["status"] == "unavailable" and "benchmark_model" in out["reason"]


def test_check_profile_flag_names_the_slowest_ops(tmp_path, tiny):
    d = make_artifact_dir(tmp_path / "a", tiny)
    result = CliRunner().invoke(main, ["check", str(d), "--profile", "--limit", "16", "--runs", "2", "--warmup", "1",
                                       "--seq-len", "32"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((d / "report.json").read_text())
    assert report["settings"]["profile"] is True
    assert all(r["profile"]["status"] == "ok" for r in report["records"])
    assert "Slowest operators" in result.output and "- `model.int8-dynamic.onnx`: " in result.output
