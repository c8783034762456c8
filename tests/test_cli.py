"""The CLI end to end on tiny local model directories, and every bad input users hit.

Each bad input must give one clear line, the right exit code (2 usage, 1 runtime), no traceback and
no half-written file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgebert.manifest import Manifest
from support import assert_clean_error, no_temp_files, run_cli as run, save_tiny_hf_dir, write_jsonl

FAST_CHECK = ["--limit", "40", "--runs", "3", "--warmup", "1", "--seq-len", "32"]


@pytest.fixture(scope="module")
def squeezebert_dir(tmp_path_factory) -> Path:
    """Tiny SqueezeBERT with its default grouped convolutions (groups=4), exported once."""
    root = tmp_path_factory.mktemp("cli")
    src = save_tiny_hf_dir(root / "src", "squeezebert")
    out = root / "out"
    result = run("export", src, "-o", out, "--seq-len", "32")
    assert result.exit_code == 0, result.output
    return out


def test_full_flow_on_local_squeezebert(squeezebert_dir, tmp_path):
    out = squeezebert_dir
    for mode in ("dynamic", "static"):
        result = run("quantize", out, "--mode", mode, "--samples", "16", "--seq-len", "32")
        assert result.exit_code == 0, result.output
    manifest = Manifest.load(out)
    assert set(manifest.artifacts) == {"model.onnx", "model.int8-dynamic.onnx", "model.int8-static.onnx"}
    for name in ("model.int8-dynamic.onnx", "model.int8-static.onnx"):
        q = manifest.artifacts[name]["quantization"]
        assert "ConvInteger" not in q["quantized_ops"] and q["quantized_ops"]
    result = run("check", out, *FAST_CHECK)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert {(r["artifact"], r["device"]) for r in report["records"]} == {
        (n, "desktop") for n in manifest.artifacts}
    for rec in report["records"]:
        assert rec["status"] == "ok" and rec["n_samples"] == 40 and rec["threads"] == 1
        assert 0 < rec["latency_ms"]["p50"] <= rec["latency_ms"]["p90"]
        assert rec["runtime"]["name"] == "onnxruntime" and rec["emulated"] is False
    assert Manifest.load(out).artifacts["model.onnx"]["metrics"]["desktop"]["accuracy"] is not None
    result = run("report", out)
    assert result.exit_code == 0, result.output
    md = (out / "report.md").read_text()
    assert "desktop" in md and "int8-static" in md and "int8-dynamic" in md
    assert no_temp_files(out)


def test_check_with_user_dataset_and_label_names(squeezebert_dir, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"review": "the film was good", "sentiment": "positive"},
                                               {"review": "boring plot", "sentiment": "negative"}])
    result = run("check", squeezebert_dir, "--data", data, "--text-column", "review",
                 "--label-column", "sentiment", "--runs", "2", "--warmup", "0", "--seq-len", "16")
    assert result.exit_code == 0, result.output
    report = json.loads((squeezebert_dir / "report.json").read_text())
    assert all(r["n_samples"] == 2 for r in report["records"])


def test_bad_model_arguments(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert_clean_error(run("export", tmp_path / "nope", "-o", tmp_path / "o"), 2, "no such directory")
    (tmp_path / "noconfig").mkdir()
    assert_clean_error(run("export", tmp_path / "noconfig", "-o", tmp_path / "o"), 2, "no config.json")
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert_clean_error(run("export", tmp_path / "bert", "-o", tmp_path / "o"), 2, "distilbert and squeezebert")
    assert_clean_error(run("export", "nobody/nothing", "-o", tmp_path / "o"), 2, "pass a local directory")
    assert not (tmp_path / "o").exists()
    src = save_tiny_hf_dir(tmp_path / "src", "distilbert")
    assert_clean_error(run("export", src, "-o", tmp_path / "o", "--seq-len", "100000"), 2, "exceeds")
    assert_clean_error(run("export", src, "-o", tmp_path / "o", "--format", "coreml"), 2, "unknown format")


def test_bad_artifact_directories(tmp_path, squeezebert_dir):
    assert_clean_error(run("check", tmp_path / "nope"), 2, "no such directory")
    (tmp_path / "plain").mkdir()
    assert_clean_error(run("quantize", tmp_path / "plain", "--mode", "dynamic"), 2, "no manifest.json")
    empty = tmp_path / "empty"
    empty.mkdir()
    Manifest.create(empty, model={"architecture": "distilbert", "id2label": {"0": "negative", "1": "positive"},
                                  "label2id": {"negative": 0, "positive": 1}, "num_labels": 2},
                    tokenizer={"path": "tokenizer"}).save()
    assert_clean_error(run("check", empty), 2, "no artifacts")
    assert_clean_error(run("report", empty), 2, "run `edgebert check")


def test_corrupt_onnx(tmp_path, squeezebert_dir):
    import shutil

    d = tmp_path / "corrupt"
    shutil.copytree(squeezebert_dir, d)
    (d / "model.onnx").write_bytes(b"this is not an onnx file")
    before = json.dumps(Manifest.load(d).artifacts, sort_keys=True)
    assert_clean_error(run("quantize", d, "--mode", "dynamic"), 2, "model.onnx")
    assert json.dumps(Manifest.load(d).artifacts, sort_keys=True) == before  # nothing replaced or added
    result = run("check", d, *FAST_CHECK)
    assert result.exit_code == 1 and "Traceback" not in result.output
    report = json.loads((d / "report.json").read_text())
    statuses = {r["artifact"]: r["status"] for r in report["records"]}
    assert statuses["model.onnx"] == "failed"
    assert no_temp_files(d)


def test_bad_datasets(tmp_path, squeezebert_dir):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert_clean_error(run("check", squeezebert_dir, "--data", empty), 2, "empty")
    unlabelled = tmp_path / "u.csv"
    unlabelled.write_text("text\nhello there\n")
    assert_clean_error(run("check", squeezebert_dir, "--data", unlabelled), 2, "no column 'label'")
    unknown = write_jsonl(tmp_path / "k.jsonl", [{"text": "hi", "label": "neutral"}])
    assert_clean_error(run("check", squeezebert_dir, "--data", unknown), 2, "label 'neutral'")
    assert_clean_error(run("quantize", squeezebert_dir, "--mode", "static", "--calibration", empty), 2, "empty")
