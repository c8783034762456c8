"""edgebert.check on real tiny models exported to ONNX (no mocks): accuracy, agreement, latency, failures."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgebert.check import CheckSettings, check
from edgebert.check import metrics
from edgebert.errors import UsageError
from edgebert.manifest import Manifest
from support import FAST, by_artifact, make_artifact_dir, random_texts, write_jsonl


# --- the full check -----------------------------------------------------------------------------
def test_check_accuracy_agreement_latency_and_outputs(tmp_path, tiny):
    d = make_artifact_dir(tmp_path / "art", tiny)
    texts = random_texts(30)
    preds = tiny.torch_logits(texts, FAST["seq_len"]).argmax(1)
    # labels equal torch's prediction except every third row: accuracy must be exactly 20/30,
    # which also proves rows come back in order across batches of 8
    labels = [int(p) if i % 3 else int(1 - p) for i, p in enumerate(preds)]
    data = write_jsonl(tmp_path / "data.jsonl",
                       [{"sentence": t, "y": ["negative", "positive"][y]} for t, y in zip(texts, labels)])
    settings = CheckSettings(data=data, text_column="sentence", label_column="y", **FAST)

    report = check(d, settings)

    assert json.loads((d / "report.json").read_text()) == report
    assert report["dataset"]["n"] == 30 and report["dataset"]["path"] == str(data)
    assert report["settings"]["runs"] == 5 and report["devices"]["desktop"]["emulated"] is False
    recs = by_artifact(report)
    assert set(recs) == {"model.onnx", "model.int8-dynamic.onnx"}
    fp32, int8 = recs["model.onnx"], recs["model.int8-dynamic.onnx"]
    assert fp32["status"] == int8["status"] == "ok", (fp32["error"], int8["error"])
    assert fp32["accuracy"] == pytest.approx(20 / 30)
    assert fp32["agreement"] == 1.0 and fp32["max_abs_logit_diff_vs_fp32"] == 0.0
    import onnxruntime

    # agreement and max |Δlogit| recomputed here, each text alone at its own length in ONNX Runtime
    from edgebert.data.tokenize import encode
    from support import load_tokenizer

    enc = encode(load_tokenizer(tiny.tokenizer_dir), texts, FAST["seq_len"], pad_to_max=False)
    outs = {}
    for name in ("model.onnx", "model.int8-dynamic.onnx"):
        sess = onnxruntime.InferenceSession(str(d / name), providers=["CPUExecutionProvider"])
        rows = []
        for i in range(len(texts)):
            n = int(enc["attention_mask"][i].sum())
            rows.append(sess.run(None, {"input_ids": enc["input_ids"][i:i + 1, :n],
                                        "attention_mask": enc["attention_mask"][i:i + 1, :n]})[0])
        outs[name] = np.concatenate(rows)
    expected = float(np.mean(outs["model.onnx"].argmax(1) == outs["model.int8-dynamic.onnx"].argmax(1)))
    assert int8["agreement"] == pytest.approx(expected)
    assert int8["max_abs_logit_diff_vs_fp32"] == pytest.approx(
        float(np.abs(outs["model.onnx"] - outs["model.int8-dynamic.onnx"]).max()), rel=1e-3, abs=1e-6)
    assert int8["max_abs_logit_diff_vs_fp32"] > 0
    lo, hi = int8["agreement_ci95"]
    assert lo <= int8["agreement"] <= hi and hi - lo > 0.05  # 30 examples: a wide interval

    for rec in (fp32, int8):
        lat = rec["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"]
        assert (lat["runs"], lat["warmup"], lat["batch"], lat["seq_len"]) == (5, 2, 1, 32)
        assert rec["runtime"] == {"name": "onnxruntime", "version": onnxruntime.__version__}
        assert rec["threads"] == 1 and rec["emulated"] is False and rec["n_samples"] == 30
        assert rec["runtime_settings"]["intra_op_num_threads"] == 1
        assert rec["size_bytes"] == (d / rec["artifact"]).stat().st_size
        assert 10 < rec["peak_rss_mb"] < 2000  # the worker's own peak, not the pytest process's
    man = Manifest.load(d)
    m = man.artifacts["model.int8-dynamic.onnx"]["metrics"]["desktop"]
    assert m["status"] == "ok" and m["agreement"] == int8["agreement"] and m["latency_ms"]["p50"] > 0


def test_corrupt_and_tampered_artifacts_fail_alone(tmp_path, tiny):
    d = make_artifact_dir(tmp_path / "art", tiny, artifacts=("fp32",))
    man = Manifest.load(d)
    (d / "model.int8-dynamic.onnx").write_bytes(b"this is not an onnx model\x00\xff" * 10)
    man.add_artifact("model.int8-dynamic.onnx",
                     {"path": "model.int8-dynamic.onnx", "format": "onnx", "precision": "int8-dynamic"})
    shutil.copy(tiny.int8, d / "model.int8-static.onnx")
    man.add_artifact("model.int8-static.onnx",
                     {"path": "model.int8-static.onnx", "format": "onnx", "precision": "int8-static"})
    man.save()
    with open(d / "model.int8-static.onnx", "ab") as f:
        f.write(b"\0")  # changed after it was recorded

    report = check(d, CheckSettings(limit=12, **FAST))

    recs = by_artifact(report)
    assert recs["model.onnx"]["status"] == "ok"
    bad = recs["model.int8-dynamic.onnx"]
    assert bad["status"] == "failed" and bad["error"].startswith("load failed")
    assert "\n" not in bad["error"] and bad["accuracy"] is None
    tampered = recs["model.int8-static.onnx"]
    assert tampered["status"] == "failed" and "sha256 mismatch" in tampered["error"]
    metrics_ = Manifest.load(d).artifacts["model.int8-dynamic.onnx"]["metrics"]["desktop"]
    assert metrics_["status"] == "failed"


def test_builtin_data_by_default(tmp_path, tiny):
    d = make_artifact_dir(tmp_path / "art", tiny, artifacts=("fp32",))
    report = check(d, CheckSettings(limit=8, seq_len=16, warmup=0, runs=1))
    assert report["dataset"]["name"].startswith("builtin:rt-snippets/test")
    assert report["dataset"]["n"] == 8 and report["dataset"]["limit"] == 8
    assert report["records"][0]["status"] == "ok" and report["records"][0]["n_samples"] == 8


def test_no_artifacts_is_a_usage_error(tmp_path, tiny):
    d = make_artifact_dir(tmp_path / "empty", tiny, artifacts=())
    with pytest.raises(UsageError, match="no artifacts in .*edgebert export"):
        check(d, CheckSettings(**FAST))
    assert not (d / "report.json").exists()


def test_unknown_label_is_a_usage_error(tmp_path, tiny):
    d = make_artifact_dir(tmp_path / "art", tiny, artifacts=("fp32",))
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": "good film", "label": "positive"},
                                              {"text": "dull", "label": "meh"}])
    with pytest.raises(UsageError, match="'meh'"):
        check(d, CheckSettings(data=data, **FAST))


@pytest.mark.parametrize("kw, match", [({"runs": 0}, "runs"), ({"limit": 0}, "limit"),
                                       ({"devices": ("toaster",)}, "unknown device 'toaster'")])
def test_bad_settings_are_usage_errors(tmp_path, tiny, kw, match):
    d = make_artifact_dir(tmp_path / "art", tiny, artifacts=("fp32",))
    with pytest.raises(UsageError, match=match):
        check(d, CheckSettings(**{**FAST, **kw}))


# --- metrics ------------------------------------------------------------------------------------
def test_metrics():
    logits = np.array([[0.1, 0.9], [2.0, -1.0], [0.0, 1.0], [3.0, 1.0]], np.float32)
    ref = np.array([[0.2, 0.8], [1.0, 2.0], [0.0, 1.5], [3.0, 1.0]], np.float32)
    assert metrics.accuracy(logits, [1, 0, 0, 0]) == 0.75
    assert metrics.agreement(logits, ref) == 0.75 and metrics.agreement(ref, ref) == 1.0
    assert metrics.max_abs_diff(logits, ref) == pytest.approx(3.0)
    s = metrics.latency_summary([5.0, 1.0, 2.0, 3.0, 4.0])
    assert s["p50"] == 3.0 and s["p90"] == pytest.approx(4.6) and s["min"] == 1.0 and s["max"] == 5.0
