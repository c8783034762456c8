"""`edgebert build` end to end on a tiny local model (desktop, ONNX): gates, incremental reuse, resume
after an interruption (an exception from a hook, and a real SIGKILL of the CLI), reports. No mocks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgebert.pipeline import build, load_config
from edgebert.gate_result import describe
from edgebert.pipeline.gates import evaluate
from edgebert.pipeline.config import GatesConfig
from edgebert.cli import main
from edgebert.fsutil import sha256_file
from edgebert.manifest import Manifest
from support import save_tiny_hf_dir

CONFIG = """\
[build]
models = [{{name = "tiny", source = "{src}"}}]
formats = ["onnx"]
seq_len = 32

[calibration]
samples = {samples}

[evaluation]
limit = 40
runs = 3
warmup = 1

[devices]
names = ["desktop"]

[gates]
max_accuracy_drop = 50
min_accuracy = 0.1
max_size_mb = {max_size}
max_latency_p90_ms = 500
"""
ARTIFACTS = ("model.onnx", "model.int8-dynamic.onnx", "model.int8-static.onnx")


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    return save_tiny_hf_dir(tmp_path_factory.mktemp("build-src") / "tiny", "distilbert")


def config_file(tmp_path: Path, src: Path, samples: int = 16, max_size: float = 10.0) -> Path:
    path = tmp_path / "edgebert.toml"
    path.write_text(CONFIG.format(src=src, samples=samples, max_size=max_size), encoding="utf-8")
    return path


def run_cli(*args, env=None):
    return CliRunner(env=env).invoke(main, [str(a) for a in args], catch_exceptions=False)


def files_state(directory: Path) -> dict[str, tuple[int, str]]:
    return {n: ((directory / n).stat().st_mtime_ns, sha256_file(directory / n)) for n in ARTIFACTS}


def assert_consistent(directory: Path) -> None:
    """The manifest lists only complete files whose hash matches (the invariant an interruption must keep)."""
    if not (directory / "manifest.json").exists():
        return
    manifest = Manifest.load(directory)
    for name, rec in manifest.artifacts.items():
        path = directory / rec["path"]
        assert path.is_file(), f"manifest lists missing {name}"
        assert sha256_file(path) == rec["sha256"], f"{name} does not match its recorded hash"


def test_build_end_to_end_then_reuse_then_partial_rebuild(tmp_path, src):
    out = tmp_path / "out"
    summary_file = tmp_path / "step-summary.md"
    cfg = config_file(tmp_path, src)
    start = time.perf_counter()
    result = run_cli("build", cfg, "-o", out, env={"GITHUB_STEP_SUMMARY": str(summary_file)})
    assert result.exit_code == 0, result.output
    assert time.perf_counter() - start < 60
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "passed" and summary["reused"] is False
    model = summary["models"][0]
    assert {a["name"] for a in model["artifacts"]} == set(ARTIFACTS)
    assert not any(a["reused"] for a in model["artifacts"])
    assert summary["gates"]["checked"] > 0 and summary["gates"]["failed"] == 0
    directory = out / "tiny"
    manifest = Manifest.load(directory)
    for name in ARTIFACTS:  # an input fingerprint per artifact, and the check's
        assert manifest.artifacts[name]["build"]["fingerprint"]
    assert manifest.data["build"]["check"]["fingerprint"]
    macs = manifest.model["encoder_macs_per_token"]  # from the config at export: the comparison's MACs
    assert macs["seq_len"] == manifest.data["export"]["seq_len"] and macs["macs"] > macs["projections"] > 0
    report = json.loads((directory / "report.json").read_text())
    assert {r["device"] for r in report["records"]} == {"desktop"}
    prof = {r["artifact"]: r["profile"] for r in report["records"]}
    assert prof["model.int8-dynamic.onnx"]["status"] == "ok" and prof["model.int8-dynamic.onnx"]["top_ops"]
    md = (out / "report.md").read_text()
    assert md.startswith("# edgebert build: ✅ passed") and "Slowest operators" in md
    assert "comparison" not in summary and "Which model on each device" not in md  # one model: no section
    static_groups = manifest.artifacts["model.int8-static.onnx"]["quantization"]["op_groups"]
    recipe = next(ln for ln in md.splitlines() if ln.startswith("- `model.int8-static.onnx` (onnx int8-static): "))
    assert [g["group"] for g in static_groups] == ["static int8", "dynamic int8", "float"]  # the build's recipes
    assert "static int8: MatMul×" in recipe and all(f"{op}×{n}" in recipe.split(f"{g['group']}: ", 1)[1]
                                                    for g in static_groups for op, n in g["ops"].items()), recipe
    assert summary_file.read_text() == md + "\n"  # appended for GitHub's job summary
    html = (out / "report.html").read_text()
    assert '<span class="grp">static int8</span>: MatMul×' in html
    assert html.count("<svg") == 2 and "<script" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert (directory / "report.html").is_file() and (directory / "report.md").is_file()
    assert_phase_table(summary, md, html, reused=False)

    # second build: nothing changed -> nothing re-exported, re-quantized or re-checked
    before = files_state(directory)
    report_sha = sha256_file(directory / "report.json")
    result = run_cli("build", cfg, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    again = json.loads(result.output[result.output.index("{"):])
    assert again["reused"] is True
    assert all(s["reused"] for s in again["models"][0]["steps"])
    assert all(a["reused"] for a in again["models"][0]["artifacts"])
    assert files_state(directory) == before and sha256_file(directory / "report.json") == report_sha
    assert_phase_table(again, (out / "report.md").read_text(), (out / "report.html").read_text(), reused=True)

    # calibration changed: only the static artifact (and the check) are redone
    cfg = config_file(tmp_path, src, samples=8)
    summary = build(load_config(cfg), out)
    steps = {s["step"]: s["reused"] for s in summary["models"][0]["steps"]}
    assert steps == {"export": True, "quantize:dynamic": True, "quantize:static": False, "check": False}
    ran = {(r["phase"], r["detail"]): r["reused"] for r in summary["phase_table"] if r["phase"] in ("quantize", "check")}
    assert ran == {("quantize", "dynamic: model.int8-dynamic.onnx"): True, ("check", None): False,
                   ("quantize", "ort-static-qdq-int8 (onnx): model.int8-static.onnx"): False}
    after = files_state(directory)
    assert after["model.onnx"] == before["model.onnx"]
    assert after["model.int8-dynamic.onnx"] == before["model.int8-dynamic.onnx"]
    assert after["model.int8-static.onnx"][0] != before["model.int8-static.onnx"][0]

    # --force rebuilds everything
    result = run_cli("build", cfg, "-o", out, "--force")
    assert result.exit_code == 0, result.output
    assert all(files_state(directory)[n][0] != after[n][0] for n in ARTIFACTS)


def assert_phase_table(summary: dict, md: str, html: str, reused: bool) -> None:
    """The phase table of a desktop build: what each step took (wall and CPU), per recipe, and its reuse,
    in summary.json and as the reports show it."""
    from edgebert.report import phases

    rows = summary["phase_table"]
    by = {(r["phase"], r["detail"]): r for r in rows}
    steps = {s["step"]: s for s in summary["models"][0]["steps"]}
    for row in rows:
        assert row["phase"] == "devices setup" or row["model"] in (None, "tiny")
        assert not row["beside_emulation"]  # desktop only: nothing runs in the background
    assert by[("devices setup", None)]["reused"] is True  # no ARM device: nothing to set up
    assert by[("export", "model.onnx")]["reused"] is reused and by[("check", None)]["reused"] is reused
    if reused:  # each step says it was reused; no recipe ran, no check phase ran
        assert by[("quantize", "dynamic: model.int8-dynamic.onnx")]["reused"] is True
        assert by[("quantize", "static: model.int8-static.onnx")]["reused"] is True
        assert not any(r["phase"].startswith("desktop") for r in rows)
    else:  # per recipe (and format), with real CPU seconds: the quantizers and calibration are CPU work
        parts = [by[("quantize", f"{name} (onnx): model.int8-{mode}.onnx")]
                 for name, mode in (("ort-dynamic-int8", "dynamic"), ("ort-static-qdq-int8", "static"))]
        for part, mode in zip(parts, ("dynamic", "static")):
            assert part["reused"] is False and part["cpu_seconds"] > 0.05 and part["seconds"] > 0.05
            assert part["seconds"] <= steps[f"quantize:{mode}"]["seconds"] + 0.01  # a part of its step
            assert part["cpu_seconds"] <= steps[f"quantize:{mode}"]["cpu_seconds"] + 0.01
        assert by[("export", "model.onnx")]["cpu_seconds"] > 0.2
        latency = by[("desktop latency (alone)", None)]
        # the latency phase runs in worker processes, the build process waits: its CPU is the workers'
        # (start-up and runs, CPU-bound), so most of the wall time shows as CPU only if children count
        assert latency["seconds"] > 0.2 and latency["cpu_seconds"] >= 0.4 * latency["seconds"], latency
        assert by[("desktop accuracy", None)]["cpu_seconds"] > 0
        assert summary["cpu_seconds"] > 0.5  # the whole build: export, quantization, workers
    assert summary["cpu_seconds"] >= 0 and summary["seconds"] >= 0
    assert "## Where the time went" in md and "Where the time went" in html
    for cells in phases.table(summary):  # every row, as both reports show it
        assert "| " + " | ".join(cells).rstrip() in md
        assert "".join(f"<td>{c}</td>" for c in cells[3:6]) in html.replace('<td class="l">', "<td>")


def test_failed_gate_exits_1_and_names_artifact_gate_value_and_limit(tmp_path, src):
    out = tmp_path / "out"
    result = run_cli("build", config_file(tmp_path, src, max_size=0.001), "-o", out)
    assert result.exit_code == 1, result.output
    assert "gate failed: tiny/model.onnx on desktop: max_size_mb FAILED: measured" in result.output
    assert "limit ≤ 0.001 MB" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["gates"]["failed"] == 3
    failure = summary["gates"]["failures"][0]
    assert failure["gate"] == "max_size_mb" and failure["limit"] == 0.001 and failure["value"] > 0.001
    assert "## Failed gates" in (out / "report.md").read_text()
    assert "Build FAILED" in (out / "report.html").read_text()


def test_interrupted_build_resumes(tmp_path, src):
    """KeyboardInterrupt just before the static quantization: the directory stays consistent and the
    rerun reuses the export and the dynamic artifact."""
    out = tmp_path / "out"
    cfg = load_config(config_file(tmp_path, src))

    def hook(model: str, step: str) -> None:
        if step == "quantize:static":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build(cfg, out, hook=hook)
    directory = out / "tiny"
    assert_consistent(directory)
    assert set(Manifest.load(directory).artifacts) == {"model.onnx", "model.int8-dynamic.onnx"}
    assert not (out / "summary.json").exists()
    summary = build(cfg, out)
    steps = {s["step"]: s["reused"] for s in summary["models"][0]["steps"]}
    assert steps == {"export": True, "quantize:dynamic": True, "quantize:static": False, "check": False}
    assert summary["status"] == "passed"
    assert_consistent(directory)


def test_killed_build_never_leaves_a_corrupt_directory(tmp_path, src):
    """SIGKILL the real CLI as soon as its first artifact is recorded, then rerun to completion."""
    out = tmp_path / "out"
    cfg = config_file(tmp_path, src)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "edgebert.cli", "build", str(cfg), "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    manifest = out / "tiny" / "manifest.json"
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            try:
                if "model.int8-dynamic.onnx" in json.loads(manifest.read_text()).get("artifacts", {}):
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert_consistent(out / "tiny")
    summary = build(load_config(cfg), out)
    assert summary["status"] == "passed"
    assert_consistent(out / "tiny")
    assert not [p for p in (out / "tiny").iterdir() if p.name.endswith(".tmp")]
    assert {a["name"] for a in summary["models"][0]["artifacts"]} == set(ARTIFACTS)


def _report(records):
    return {"devices": {"desktop": {"emulated": False}, "cortex-a53": {"emulated": True}}, "records": records}


def _rec(artifact, precision, device="desktop", **kw):
    base = {"artifact": artifact, "format": "onnx", "precision": precision, "device": device, "status": "ok",
            "reference": "model.onnx", "accuracy": 0.9, "size_bytes": 20_000_000, "emulated": device != "desktop",
            "latency_ms": {"p50": 10.0, "p90": 12.0}}
    return {**base, **kw}


def test_gate_evaluation():
    report = _report([
        _rec("model.onnx", "fp32", size_bytes=90_000_000),
        _rec("model.int8-static.onnx", "int8-static", accuracy=0.87, latency_ms={"p50": 5.0, "p90": 30.0}),
        _rec("model.int8-dynamic.onnx", "int8-dynamic", status="failed", error="load failed: boom"),
        _rec("model.onnx", "fp32", "cortex-a53", latency_ms=None, accuracy=0.5,
             drift_vs_desktop={"max_abs_logit_diff": 0.01, "prediction_flips": 0, "flip_rate_upper95": 0.006},
             instructions={"status": "ok", "per_inference": 3_000_000_000}),
        _rec("model.int8-static.onnx", "int8-static", "cortex-a53", latency_ms=None, accuracy=0.47,
             drift_vs_desktop={"max_abs_logit_diff": 0.4, "prediction_flips": 2, "flip_rate_upper95": 0.0125},
             instructions={"status": "ok", "per_inference": 1_000_000_000}),
        _rec("model.int8-dynamic.onnx", "int8-dynamic", "desktop", role="drift-reference", accuracy=0.1,
             latency_ms=None),  # a drift reference is never gated (and would fail min_accuracy)
    ])
    report["devices"]["ref"] = {"emulated": False}
    report["records"][-1]["device"] = "ref"
    gates = GatesConfig(max_accuracy_drop=2.0, min_accuracy=0.8, max_size_mb=50, max_latency_p90_ms=20,
                        max_drift_vs_desktop=0.1, max_flips_vs_desktop=1, max_flip_rate=0.01,
                        max_instructions=(("cortex-a53", 2e9),))
    results = evaluate("m", report, gates)
    failed = {(r["artifact"], r["device"], r["gate"]) for r in results if not r["passed"]}
    assert failed == {
        ("model.onnx", "desktop", "max_size_mb"),
        ("model.int8-static.onnx", "desktop", "max_accuracy_drop"),      # 3 points > 2
        ("model.int8-static.onnx", "desktop", "max_latency_p90_ms"),     # 30 > 20
        ("model.int8-dynamic.onnx", "desktop", "runs"),
        ("model.onnx", "cortex-a53", "max_instructions"),
        ("model.int8-static.onnx", "cortex-a53", "max_drift_vs_desktop"),
        ("model.int8-static.onnx", "cortex-a53", "max_flips_vs_desktop"),
        ("model.int8-static.onnx", "cortex-a53", "max_flip_rate"),       # bound 1.25% > 1%
        ("model.onnx", "cortex-a53", "min_accuracy"),                    # 0.5 < 0.8: emulated accuracy is gated too
        ("model.int8-static.onnx", "cortex-a53", "min_accuracy"),
        ("model.int8-static.onnx", "cortex-a53", "max_accuracy_drop"),   # 0.47 vs 0.5 fp32: 3 points
    }
    assert not any(r["device"] == "ref" for r in results)  # the drift reference is not gated
    flip = next(r for r in results if r["gate"] == "max_flip_rate" and not r["passed"])
    assert flip["comparison"] == "<=" and "1.25%" in describe(flip) and "limit ≤ 1.00%" in describe(flip)
    low = next(r for r in results if r["gate"] == "min_accuracy" and not r["passed"])
    assert low["comparison"] == ">=" and "limit ≥ 80.00%" in describe(low)
    drop = next(r for r in results if r["gate"] == "max_accuracy_drop")
    assert drop["value"] == pytest.approx(3.0) and drop["limit"] == 2.0
    assert describe(drop) == ("m/model.int8-static.onnx on desktop: max_accuracy_drop FAILED: measured 3 points, "
                              "limit ≤ 2 points")
    ins = next(r for r in results if r["gate"] == "max_instructions" and not r["passed"])
    assert "3,000.0 M instructions" in describe(ins)
    assert "did not run (load failed: boom)" in describe(next(r for r in results if r["gate"] == "runs"))
    assert evaluate("m", report, GatesConfig()) == [r for r in results if r["gate"] == "runs"]  # no gates: only runs


def test_int8_kernel_share_gate_fails_an_int8_artifact_without_dot_products_where_the_cpu_has_them():
    def ins(dot, i8mm=0):
        total = 1000
        classes = {"dotprod": dot, "i8mm": i8mm, "scalar": total - dot - i8mm}
        return {"status": "ok", "per_inference": total, "classes": classes,
                "class_shares": {k: v / total for k, v in classes.items()}}

    cpu = {"features": ["neon", "fp16", "dotprod"]}
    report = {"devices": {"cortex-a76": {"emulated": True, "cpu_model": cpu},
                          "cortex-a53": {"emulated": True, "cpu_model": {"features": ["neon"]}}},
              "records": [
                  _rec("model.onnx", "fp32", "cortex-a76", latency_ms=None, instructions=ins(0)),
                  _rec("model.int8-dynamic.onnx", "int8-dynamic", "cortex-a76", latency_ms=None, instructions=ins(0)),
                  _rec("model.int8-static.onnx", "int8-static", "cortex-a76", latency_ms=None,
                       instructions=ins(0, i8mm=300)),
                  _rec("model.int8-dynamic.onnx", "int8-dynamic", "cortex-a53", latency_ms=None, instructions=ins(0)),
              ]}
    results = [r for r in evaluate("m", report, GatesConfig(min_int8_kernel_share=0.01))
               if r["gate"] == "min_int8_kernel_share"]
    # fp32 and the A53 (no dot product) are not gated; int8 without SDOT fails, with SMMLA passes
    assert {(r["artifact"], r["device"], r["passed"]) for r in results} == {
        ("model.int8-dynamic.onnx", "cortex-a76", False), ("model.int8-static.onnx", "cortex-a76", True)}
    bad = next(r for r in results if not r["passed"])
    assert bad["comparison"] == ">=" and bad["value"] == 0.0 and "limit ≥ 1.00%" in describe(bad)
    assert not [r for r in evaluate("m", report, GatesConfig()) if r["gate"] == "min_int8_kernel_share"]  # opt-in


def test_work_items_list_the_build_from_the_config_alone(tmp_path, src):
    """The step registry's work list, before anything runs: per model export, quantize:MODE, check; the
    check's (artifact, device) pairs. A caller may run a subset of it: here export then check, no quantize."""
    from edgebert.pipeline import steps

    cfg = load_config(config_file(tmp_path, src))
    items = steps.work_items(cfg)
    assert [(i.model, i.step) for i in items] == [("tiny", "export"), ("tiny", "quantize:dynamic"),
                                                    ("tiny", "quantize:static"), ("tiny", "check")]
    assert items[0].artifacts == ("model.onnx",) and items[2].artifacts == ("model.int8-static.onnx",)
    assert items[-1].pairs == tuple((a, "desktop") for a in ARTIFACTS)
    assert set(steps.STEPS) == {i.kind for i in items}

    model = steps.ModelBuild(cfg.models[0], tmp_path / "out" / "tiny")
    ctx = steps.Context(cfg, model)
    ran: list[str] = []
    steps.run_artifact_step(ctx, items[0], force=False, hook=lambda m, s: ran.append(s))
    steps.STEPS["check"].run(ctx, None)
    assert ran == ["export"] and [r["artifact"] for r in model.report["records"]] == ["model.onnx"]
    steps.run_artifact_step(ctx, items[0], force=False, hook=lambda m, s: ran.append(s))
    assert ran == ["export"] and [s.reused for s in model.steps] == [False, True]  # same inputs: reused
    assert model.steps[1].to_json()["artifacts"] == ["model.onnx"]


def test_the_export_step_hands_over_each_artifact_as_it_is_written(tmp_path, src):
    """``Context.exported`` is called once per written artifact, inside the export step (a build starts that
    file's instruction counts then); a step that started background jobs so is marked as run beside them
    (its CPU holds theirs), one that did not is not; a reused export hands over nothing."""
    import dataclasses

    from edgebert.pipeline import steps

    cfg = load_config(config_file(tmp_path, src))
    cfg = dataclasses.replace(cfg, formats=("onnx", "tflite"))
    export = steps.work_items(cfg)[0]
    assert export.artifacts == ("model.onnx", "model.tflite")
    model = steps.ModelBuild(cfg.models[0], tmp_path / "out" / "tiny")
    seen: list[tuple[str, bool]] = []

    def exported(m, name):
        seen.append((name, (m.directory / name).is_file()))
        return name == "model.onnx"  # "started jobs" for the first file only

    ctx = steps.Context(cfg, model, exported=exported)
    steps.run_artifact_step(ctx, export, force=False, hook=None)
    assert seen == [("model.onnx", True), ("model.tflite", True)]  # each file already written
    assert model.steps[-1].to_json()["beside_emulation"] is True
    steps.run_artifact_step(ctx, export, force=True, hook=None)
    assert model.steps[-1].to_json()["beside_emulation"] is True and len(seen) == 4
    ctx.exported = lambda m, name: False
    steps.run_artifact_step(ctx, export, force=True, hook=None)
    assert model.steps[-1].to_json()["beside_emulation"] is False  # nothing started, nothing ran beside
    steps.run_artifact_step(ctx, export, force=False, hook=None)
    assert model.steps[-1].reused and len(seen) == 4
