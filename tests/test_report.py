"""report.md from report.json: a table per device, derived columns, failures, usage errors."""

from __future__ import annotations

import json

import pytest

from edgebert.check import CheckSettings, check
from edgebert.check.stats import wilson
from edgebert.errors import UsageError
from edgebert.report import render_markdown, write_report
from edgebert.report.tables import device_tables

from support import FAST, make_artifact_dir


def _record(artifact, precision, device, *, status="ok", error=None, accuracy=0.8, p50=10.0, p90=12.0,
            size=4_000_000, emulated=False):
    ok = status == "ok"
    return {"artifact": artifact, "format": "onnx", "precision": precision, "device": device, "status": status,
            "error": error, "reference": "model.onnx", "accuracy": accuracy if ok else None,
            "accuracy_ci95": list(wilson(round(accuracy * 200), 200)) if ok else None, "accuracy_method": "measured",
            "agreement": 0.99 if ok else None, "agreement_ci95": list(wilson(198, 200)) if ok else None, "max_abs_logit_diff_vs_fp32": 0.05 if ok else None,
            "n_samples": 200, "latency_ms": {"p50": p50, "p90": p90, "runs": 50, "warmup": 10, "batch": 1,
                                             "seq_len": 128} if ok else None,
            "threads": 1, "runtime": {"name": "onnxruntime", "version": "1.32.0"}, "emulated": emulated,
            "peak_rss_mb": 80.0 if ok else None, "size_bytes": size}


SYNTHETIC = {
    "schema_version": 1, "created": "2026-01-01T00:00:00+00:00",
    "model": {"architecture": "distilbert", "source": {"kind": "builtin", "id": "edgebert-mini"}},
    "dataset": {"name": "builtin:rt-snippets/test[:200]", "n": 200, "limit": 200},
    "settings": {"seq_len": 128, "threads": 1, "warmup": 10, "runs": 50, "batch_size": 32},
    "versions": {"edgebert": "0.1.0", "onnxruntime": "1.32.0"},
    "devices": {"desktop": {"description": "native x86_64", "emulated": False},
                "cortex-a76": {"description": "emulated Cortex-A76", "emulated": True}},
    "records": [
        _record("model.onnx", "fp32", "desktop", accuracy=0.83, p50=10.0, size=4_000_000),
        _record("model.int8-dynamic.onnx", "int8-dynamic", "desktop", accuracy=0.8265, p50=4.0, size=1_000_000),
        _record("model.int8-static.onnx", "int8-static", "desktop", status="failed", size=1_100_000,
                error="load failed: InvalidProtobuf: bad | bytes"),
        _record("model.onnx", "fp32", "cortex-a76", accuracy=0.83, p50=900.0, emulated=True),
        _record("model.int8-dynamic.onnx", "int8-dynamic", "cortex-a76", accuracy=0.82, p50=300.0,
                size=1_000_000, emulated=True),
    ],
}


def _table_rows(md: str, heading: str) -> list[str]:
    section = md.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `")]


def test_markdown_has_a_table_per_device(tmp_path):
    (tmp_path / "report.json").write_text(json.dumps(SYNTHETIC))
    md = render_markdown(tmp_path)

    assert md.count("\n## ") == 2 and "## desktop — native x86_64" in md
    assert "builtin `edgebert-mini`" in md and "n = 200" in md and "seq_len 128" in md
    desktop = _table_rows(md, "desktop")
    assert [r.split("|")[1].strip() for r in desktop] == [
        "`model.onnx`", "`model.int8-dynamic.onnx`", "`model.int8-static.onnx`"]
    int8 = [c.strip() for c in desktop[1].split("|")[1:-1]]
    lo, hi = wilson(round(0.8265 * 200), 200)
    assert int8[3:5] == [f"82.65% [{lo * 100:.1f}, {hi * 100:.1f}] n=200", "-0.35"]  # accuracy (CI, n), Δ points
    assert int8[7] == "4.00 / 12.00 (1)"               # p50 / p90 (threads)
    assert int8[8] == "2.50×" and int8[9] == "1.00" and int8[10] == "0.25×"
    assert "**failed**" in desktop[2]
    assert "- `model.int8-static.onnx`: load failed: InvalidProtobuf: bad \\| bytes" in md
    arm = _table_rows(md, "cortex-a76")  # emulated: instructions instead of latency (test_arm.py has more)
    assert len(arm) == 2 and "3.00×" not in arm[1] and "unavailable" in arm[1]
    assert "Emulated: cost is guest instructions" in md.split("## cortex-a76", 1)[1]
    assert "Emulated:" not in md.split("## cortex-a76", 1)[0]


def test_tables_are_renderer_independent():
    tables = {t.device: t for t in device_tables(SYNTHETIC)}
    assert list(tables) == ["desktop", "cortex-a76"]
    assert tables["cortex-a76"].emulated and not tables["desktop"].emulated
    assert [r.artifact for r in tables["desktop"].failed] == ["model.int8-static.onnx"]
    assert tables["desktop"].rows[1].delta_accuracy_points == pytest.approx(-0.35)


def test_write_report_after_a_real_check(tmp_path, tiny):
    d = make_artifact_dir(tmp_path / "art", tiny)
    check(d, CheckSettings(limit=8, **FAST))
    paths = write_report(d)
    assert paths == [d / "report.md"]
    md = paths[0].read_text()
    rows = _table_rows(md, "desktop")
    assert len(rows) == 2 and "fp32" in rows[0] and "int8-dynamic" in rows[1]
    assert "runtime onnxruntime" in md and "**failed**" not in md
    assert not list(d.glob(".report.md.*"))  # no temp files left behind


def test_missing_or_broken_report_json_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="run `edgebert check .*` first"):
        write_report(tmp_path)
    assert not (tmp_path / "report.md").exists()
    (tmp_path / "report.json").write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        render_markdown(tmp_path)


# --- layering: the reports read results, they never import the pipeline that makes them ----------------
def _imports(path):
    """Every module a source file imports (absolute names; relative ones resolved against edgebert)."""
    import ast
    from pathlib import Path

    import edgebert

    root = Path(edgebert.__file__).parent
    package = ".".join(("edgebert", *path.relative_to(root).parent.parts))
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            out.add(module)
            out.update(f"{module}.{a.name}" for a in node.names)
    return out


def test_report_modules_never_import_the_pipeline():
    """edgebert/report/* (and the gate results they format) import nothing from edgebert.pipeline, at any
    depth: statically in every file, and at run time after importing every report module."""
    import subprocess
    import sys
    from pathlib import Path

    import edgebert

    root = Path(edgebert.__file__).parent
    files = [*sorted((root / "report").glob("*.py")), root / "gate_result.py"]
    assert len(files) >= 5
    for path in files:
        bad = sorted(m for m in _imports(path) if m == "edgebert.pipeline" or m.startswith("edgebert.pipeline."))
        assert not bad, f"{path.name} imports {bad}"
    code = ("import sys, edgebert.report, edgebert.report.html, edgebert.report.markdown, edgebert.report.tables, "
            "edgebert.gate_result; print(sorted(m for m in sys.modules if m.startswith('edgebert.pipeline')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_gate_result_is_a_leaf_of_the_standard_library():
    from pathlib import Path

    import edgebert

    mods = _imports(Path(edgebert.__file__).parent / "gate_result.py")
    assert not [m for m in mods if m.startswith("edgebert")], mods


def test_every_gate_result_carries_the_comparison_its_gate_declares():
    """The comparison is decided once (Gate.upper -> the result): a max gate passes at its limit and fails
    above it, a min gate the other way round, and the text shows the same symbol."""
    from edgebert.gate_result import AT_LEAST, AT_MOST, describe, limit_text, passes, result
    from edgebert.pipeline.gates import GATES

    assert {g.name: g.upper for g in GATES}["min_accuracy"] is False
    assert {g.name: g.upper for g in GATES}["max_size_mb"] is True
    base = {"model": "m", "artifact": "a.onnx", "device": "desktop"}
    for gate in GATES:
        op = AT_MOST if gate.upper else AT_LEAST
        at, beyond = result(base, gate.name, 2.0, 2.0, gate.unit, op), \
            result(base, gate.name, 3.0 if gate.upper else 1.0, 2.0, gate.unit, op)
        assert at["passed"] and not beyond["passed"] and at["comparison"] == op
        assert limit_text(at).startswith("≤" if gate.upper else "≥")
        assert ("limit ≤" if gate.upper else "limit ≥") in describe(beyond) and "FAILED" in describe(beyond)
    missing = result(base, "max_size_mb", None, 2.0, "MB", AT_MOST, not_measured="size: not measured")
    assert missing["passed"] is False and describe(missing).endswith("size: not measured")
    assert passes(2.0 + 1e-13, 2.0, AT_MOST, tolerance=1e-12) and not passes(2.1, 2.0, AT_MOST)
    with pytest.raises(ValueError):
        passes(1.0, 2.0, "<")
