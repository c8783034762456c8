"""Regression baselines (`edgebert build --write-baseline / --baseline`): compare on fabricated reports,
a byte-stable file, damaged files refused with one line, and one real tiny build end to end."""

from __future__ import annotations

import json

import pytest

from edgebert.errors import UsageError
from edgebert.pipeline import baseline, parse_config
from edgebert.pipeline.config import BaselineConfig
from edgebert.gate_result import describe
from edgebert.report.markdown import format_delta
from support import assert_clean_error, run_cli, save_tiny_hf_dir

# --- fabricated build: one model, fp32 + int8 on desktop and an emulated device ---------------------
SIZES = {"model.onnx": 4_000_000, "model.int8-dynamic.onnx": 1_000_000}


def record(artifact, device, accuracy=0.8, p50=10.0, instructions=None, estimated=50.0):
    emulated = device != "desktop"
    rec = {"artifact": artifact, "device": device, "format": "onnx",
           "precision": "fp32" if artifact == "model.onnx" else "int8-dynamic", "status": "ok",
           "accuracy": accuracy, "size_bytes": SIZES[artifact], "reference": "model.onnx", "emulated": emulated}
    if emulated:
        rec["instructions"] = {"status": "ok", "per_inference": instructions}
        rec["estimated_latency"] = {"kind": "estimate", "status": "ok", "ms": estimated, "error_band_pct": 35.0,
                                    "label": "estimated ms (cycle model, neoverse-n1 as cortex-a76, 2.4 GHz)"}
    else:
        rec["latency_ms"] = {"p50": p50, "p90": p50 * 1.2}
    return rec


def build_figures(**over):
    """Figures of a fabricated build; ``over``: (artifact, device) -> record overrides."""
    keys = [(a, d) for a in SIZES for d in ("desktop", "cortex-a76")]
    records = [record(a, d, **{"instructions": 100_000_000, **over.get(f"{a}@{d}", {})} if d != "desktop"
                      else over.get(f"{a}@{d}", {})) for a, d in keys]
    report = {"devices": {"desktop": {"emulated": False}, "cortex-a76": {"emulated": True}}, "records": records}
    models = [{"name": "tiny", "status": "ok", "artifacts": [{"name": a, "size_bytes": s} for a, s in SIZES.items()]}]
    return baseline.figures(models, {"tiny": report})


def gate(results, name, artifact="model.int8-dynamic.onnx", device="cortex-a76"):
    found = [g for g in results if g["gate"] == name and g["artifact"] == artifact and g["device"] == device]
    assert len(found) == 1, results
    return found[0]


def test_figures_of_a_build():
    figs = build_figures()
    assert set(figs) == {("tiny", a, d) for a in SIZES for d in ("desktop", "cortex-a76")}
    assert figs[("tiny", "model.onnx", "desktop")] == {
        "accuracy": 0.8, "instructions_per_inference": None, "estimated_ms": None, "size_bytes": 4_000_000,
        "latency_p50_ms": 10.0}
    assert figs[("tiny", "model.onnx", "cortex-a76")]["instructions_per_inference"] == 100_000_000
    assert figs[("tiny", "model.onnx", "cortex-a76")]["estimated_ms"] == 50.0  # the estimate, not latency
    assert figs[("tiny", "model.onnx", "cortex-a76")]["latency_p50_ms"] is None  # emulator time is no latency


def test_unchanged_build_passes_every_regression_gate():
    results, deltas = baseline.compare(build_figures(), build_figures(), BaselineConfig())
    assert results and all(g["passed"] for g in results)
    assert {g["gate"] for g in results} == {"baseline_instructions", "baseline_estimated_ms", "baseline_accuracy",
                                            "baseline_size"}
    assert all(r["status"] == "compared" for r in deltas["records"]) and deltas["missing"] == []


@pytest.mark.parametrize("factor, passed", [(1.03, False), (1.01, True), (0.5, True)])
def test_instructions_gate_at_two_percent(factor, passed):
    new = build_figures(**{"model.int8-dynamic.onnx@cortex-a76": {"instructions": int(100_000_000 * factor)}})
    results, deltas = baseline.compare(build_figures(), new, BaselineConfig())
    g = gate(results, "baseline_instructions")
    assert g["passed"] is passed and g["value"] == pytest.approx(factor - 1) and g["limit"] == 0.02
    assert gate(results, "baseline_instructions", "model.onnx")["passed"]  # the unchanged one still passes
    if not passed:
        assert "baseline_instructions FAILED: measured 3.00%, limit ≤ 2.00%" in describe(g)
    row = next(r for r in deltas["records"] if r["artifact"] == "model.int8-dynamic.onnx" and r["device"] == "cortex-a76")
    assert format_delta(row["instructions_per_inference"], "instructions_per_inference") == \
        f"{(factor - 1) * 100:+.2f}%"


@pytest.mark.parametrize("factor, passed", [(1.06, False), (1.04, True), (0.7, True)])
def test_estimated_ms_gate_at_five_percent(factor, passed):
    new = build_figures(**{"model.int8-dynamic.onnx@cortex-a76": {"estimated": 50.0 * factor}})
    results, deltas = baseline.compare(build_figures(), new, BaselineConfig())
    g = gate(results, "baseline_estimated_ms")
    assert g["passed"] is passed and g["value"] == pytest.approx(factor - 1) and g["limit"] == 0.05
    row = next(r for r in deltas["records"] if r["artifact"] == "model.int8-dynamic.onnx" and r["device"] == "cortex-a76")
    assert format_delta(row["estimated_ms"], "estimated_ms") == f"{(factor - 1) * 100:+.2f}%"


@pytest.mark.parametrize("accuracy, passed", [(0.794, False), (0.796, True), (0.9, True)])
def test_accuracy_gate_at_half_a_point(accuracy, passed):
    new = build_figures(**{"model.onnx@desktop": {"accuracy": accuracy}})
    results, deltas = baseline.compare(build_figures(), new, BaselineConfig())
    g = gate(results, "baseline_accuracy", "model.onnx", "desktop")
    assert g["passed"] is passed and g["value"] == pytest.approx((0.8 - accuracy) * 100) and g["unit"] == "points"
    row = next(r for r in deltas["records"] if r["artifact"] == "model.onnx" and r["device"] == "desktop")
    assert row["accuracy"]["delta"] == pytest.approx((accuracy - 0.8) * 100)  # shown signed: new - old


def test_size_gate_and_configured_limit():
    old = build_figures()
    new = {k: dict(v) for k, v in old.items()}
    for k in new:
        if k[1] == "model.onnx":
            new[k]["size_bytes"] = int(4_000_000 * 1.03)
    results, _ = baseline.compare(old, new, BaselineConfig())
    assert not gate(results, "baseline_size", "model.onnx", "desktop")["passed"]
    assert gate(results, "baseline_size", "model.int8-dynamic.onnx", "desktop")["passed"]
    results, _ = baseline.compare(old, new, BaselineConfig(max_size_increase=0.05))
    assert gate(results, "baseline_size", "model.onnx", "desktop")["passed"]


def test_latency_is_information_unless_a_limit_is_set():
    new = build_figures(**{"model.onnx@desktop": {"p50": 20.0}})  # twice as slow
    results, deltas = baseline.compare(build_figures(), new, BaselineConfig())
    assert all(g["passed"] for g in results) and not any(g["gate"] == "baseline_latency_p50" for g in results)
    row = next(r for r in deltas["records"] if r["artifact"] == "model.onnx" and r["device"] == "desktop")
    assert format_delta(row["latency_p50_ms"], "latency_p50_ms") == "+100.00%"
    results, _ = baseline.compare(build_figures(), new, BaselineConfig(max_latency_increase=0.10))
    assert not gate(results, "baseline_latency_p50", "model.onnx", "desktop")["passed"]
    assert gate(results, "baseline_latency_p50", "model.int8-dynamic.onnx", "desktop")["passed"]


def test_new_artifact_is_new_missing_one_is_listed_and_an_unmeasured_figure_fails():
    old = build_figures()
    new = dict(build_figures())
    del new[("tiny", "model.onnx", "cortex-a76")]
    new[("tiny", "model.int8-static.onnx", "desktop")] = dict(new[("tiny", "model.onnx", "desktop")])
    new[("tiny", "model.int8-dynamic.onnx", "cortex-a76")] = {
        **new[("tiny", "model.int8-dynamic.onnx", "cortex-a76")], "instructions_per_inference": None}
    results, deltas = baseline.compare(old, new, BaselineConfig())
    status = {(r["artifact"], r["device"]): r["status"] for r in deltas["records"]}
    assert status[("model.int8-static.onnx", "desktop")] == "new"
    assert not any(g["artifact"] == "model.int8-static.onnx" for g in results)  # new: not gated, not failed
    assert deltas["missing"] == [{"model": "tiny", "artifact": "model.onnx", "device": "cortex-a76"}]
    g = gate(results, "baseline_instructions")
    assert not g["passed"] and g["value"] is None and "not measured" in g["detail"]


def test_write_load_round_trip_is_byte_stable(tmp_path):
    figs = build_figures()
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    baseline.write(a, figs)
    baseline.write(b, dict(reversed(list(figs.items()))))  # insertion order does not matter
    assert a.read_bytes() == b.read_bytes()
    loaded = baseline.load(a)
    assert loaded == figs
    baseline.write(b, loaded)
    assert a.read_bytes() == b.read_bytes()
    text = a.read_text()
    doc = json.loads(text)
    assert doc["schema_version"] == 1 and doc["kind"] == "edgebert-baseline"
    assert text == json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"  # sorted, indented
    assert [p.name for p in tmp_path.iterdir()] and not list(tmp_path.glob(".*"))  # no temp files left


@pytest.mark.parametrize("content, match", [
    ("{not json", "not valid JSON"),
    ("[]", "must be a JSON object"),
    ('{"kind": "other", "schema_version": 1, "records": {}}', "not an edgebert baseline"),
    ('{"kind": "edgebert-baseline", "schema_version": 9, "records": {}}', "schema_version 9 is not supported"),
    ('{"kind": "edgebert-baseline", "schema_version": 1, "records": []}', "records must be an object"),
    ('{"kind": "edgebert-baseline", "schema_version": 1, "records": {"m": {"a": {"desktop": '
     '{"size_bytes": "big"}}}}}', "records.m.a.desktop: size_bytes must be a number or null"),
    ('{"kind": "edgebert-baseline", "schema_version": 1, "records": {"m": {"a": {"desktop": '
     '{"accuracy": 80}}}}}', "accuracy is a fraction between 0 and 1"),
    ('{"kind": "edgebert-baseline", "schema_version": 1, "records": {"m": {"a": {"desktop": '
     '{"speed": 1}}}}}', "unknown figure 'speed'"),
    ('{"kind": "edgebert-baseline", "schema_version": 1, "records": {}, "exec": "rm"}', "unknown key 'exec'"),
    ('{"kind": "edgebert-baseline", "schema_version": 1, "records": {"m": {"a | <b>": {}}}}',
     "is not a model, artifact or device name"),
])
def test_damaged_baseline_is_a_usage_error_naming_the_problem(tmp_path, content, match):
    path = tmp_path / "baseline.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError, match=match):
        baseline.load(path)


def test_baseline_limits_from_the_config_are_validated():
    cfg = parse_config('[baseline]\nmax_latency_increase = 0.1\nmax_accuracy_drop = 1\n')
    assert cfg.baseline == BaselineConfig(max_latency_increase=0.1, max_accuracy_drop=1.0)
    assert parse_config("").baseline == BaselineConfig()
    with pytest.raises(UsageError, match=r"config:2: baseline.max_size_increase: must be a number"):
        parse_config('[baseline]\nmax_size_increase = "2%"\n')
    with pytest.raises(UsageError, match=r"config:2: baseline.max_speed: unknown key"):
        parse_config('[baseline]\nmax_speed = 1\n')


# --- one real build ---------------------------------------------------------------------------
CONFIG = """\
[build]
models = [{{name = "tiny", source = "{src}"}}]
formats = ["onnx"]
precisions = ["fp32", "int8-dynamic"]
seq_len = 32

[evaluation]
limit = 40
runs = 3
warmup = 1
profile = false

[devices]
names = ["desktop"]
"""


def test_build_writes_a_baseline_passes_against_it_and_fails_on_a_regression(tmp_path):
    src = save_tiny_hf_dir(tmp_path / "tiny-src", "distilbert")
    cfg = tmp_path / "edgebert.toml"
    cfg.write_text(CONFIG.format(src=src), encoding="utf-8")
    out, file = tmp_path / "out", tmp_path / "baseline.json"

    result = run_cli("build", cfg, "-o", out, "--write-baseline", file)
    assert result.exit_code == 0, result.output
    doc = json.loads(file.read_text())
    figs = doc["records"]["tiny"]
    assert set(figs) == {"model.onnx", "model.int8-dynamic.onnx"}
    summary = json.loads((out / "summary.json").read_text())
    sizes = {a["name"]: a["size_bytes"] for a in summary["models"][0]["artifacts"]}
    assert figs["model.onnx"]["desktop"]["size_bytes"] == sizes["model.onnx"]
    assert 0 <= figs["model.onnx"]["desktop"]["accuracy"] <= 1 and figs["model.onnx"]["desktop"]["latency_p50_ms"] > 0

    result = run_cli("build", cfg, "-o", out, "--baseline", file)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    regression = [g for g in summary["models"][0]["gates"] if g["gate"].startswith("baseline_")]
    assert {g["gate"] for g in regression} == {"baseline_accuracy", "baseline_size"} and all(g["passed"] for g in regression)
    assert summary["baseline"]["missing"] == [] and len(summary["baseline"]["records"]) == 2
    md = (out / "report.md").read_text()
    assert "## vs baseline" in md and "+0.00%" in md and "p50 is information only" in md
    assert "<h2>vs baseline</h2>" in (out / "report.html").read_text()

    # the baseline now records a smaller fp32 artifact (as if this build had grown it) and an extra model
    doc["records"]["tiny"]["model.onnx"]["desktop"]["size_bytes"] = int(sizes["model.onnx"] * 0.9)
    doc["records"]["gone"] = {"model.onnx": {"desktop": dict(doc["records"]["tiny"]["model.onnx"]["desktop"])}}
    file.write_text(json.dumps(doc), encoding="utf-8")
    result = run_cli("build", cfg, "-o", out, "--baseline", file)
    assert result.exit_code == 1, result.output
    assert "gate failed: tiny/model.onnx on desktop: baseline_size FAILED: measured 11.11%, limit ≤ 2.00%" \
        in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and [g["gate"] for g in summary["gates"]["failures"]] == ["baseline_size"]
    assert summary["baseline"]["missing"] == [{"model": "gone", "artifact": "model.onnx", "device": "desktop"}]
    md = (out / "report.md").read_text()
    assert md.startswith("# edgebert build: ❌ FAILED") and "baseline_size" in md.split("## vs baseline")[0]
    assert "missing (in the baseline, not built)" in md

    # a damaged baseline: one line, exit 2, before anything is built
    file.write_text('{"kind": "edgebert-baseline", "schema_version": 1, "records": {"tiny": 3}}', encoding="utf-8")
    assert_clean_error(run_cli("build", cfg, "-o", out, "--baseline", file), 2, "records.tiny must be an object")


def test_cli_refuses_a_missing_baseline_or_a_bad_output_before_building(tmp_path):
    cfg = tmp_path / "edgebert.toml"
    cfg.write_text(CONFIG.format(src=tmp_path / "never-built"), encoding="utf-8")
    out = tmp_path / "out"
    assert_clean_error(run_cli("build", cfg, "-o", out, "--baseline", tmp_path / "nope.json"), 2,
                       "nope.json: no such file")
    assert_clean_error(run_cli("build", cfg, "-o", out, "--write-baseline", tmp_path / "no-dir" / "b.json"), 2,
                       "not a file in an existing directory")
    assert not out.exists()
