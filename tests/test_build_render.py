"""report.html: self-contained (no network at view time) and renders in headless Chromium when present."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from edgebert.pipeline.gates import evaluate
from edgebert.pipeline.config import GatesConfig
from edgebert.report import compare, html
from test_build import _rec, _report

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "render_check.sh"


def _summary_and_reports():
    records = [
        _rec("model.onnx", "fp32", size_bytes=91_000_000, accuracy=0.83,
             profile={"status": "ok", "top_ops": [{"op": "MatMul", "ms": 40.1, "share": 0.64}]}),
        _rec("model.int8-dynamic.onnx", "int8-dynamic", size_bytes=23_000_000, accuracy=0.825,
             latency_ms={"p50": 26.0, "p90": 28.0},
             profile={"status": "ok", "top_ops": [{"op": "DynamicQuantizeMatMul", "ms": 6.2, "share": 0.22}]}),
        _rec("model.int8-static.onnx", "int8-static", size_bytes=23_000_000, accuracy=0.79,
             latency_ms={"p50": 25.0, "p90": 27.0}),
        _rec("model.tflite", "fp32", size_bytes=90_500_000, accuracy=0.83, reference="model.tflite",
             profile={"status": "unavailable", "reason": "no per-op profiler"}),
        _rec("model.onnx", "fp32", "cortex-a53", latency_ms=None, size_bytes=91_000_000,
             drift_vs_desktop={"max_abs_logit_diff": 1e-6, "prediction_flips": 0},
             instructions={"status": "ok", "per_inference": 9_000_000_000}),
        _rec("model.int8-dynamic.onnx", "int8-dynamic", "cortex-a53", latency_ms=None, size_bytes=23_000_000,
             drift_vs_desktop={"max_abs_logit_diff": 0.02, "prediction_flips": 0},
             instructions={"status": "ok", "per_inference": 4_000_000_000}),
    ]
    for r in records:
        r["format"] = "tflite" if r["artifact"].endswith(".tflite") else "onnx"
    report = {**_report(records), "dataset": {"name": "builtin:test", "n": 1000}}
    gates = evaluate("distilbert", report, GatesConfig(max_accuracy_drop=2.0, max_size_mb=50,
                                                        max_instructions=(("cortex-a53", 5e9),)))
    failures = [g for g in gates if not g["passed"]]
    summary = {"status": "failed", "output": "/tmp/out", "finished": "2025-01-01T00:00:00+00:00", "seconds": 12.0,
               "reused": False,
               "config": {"source": "edgebert.toml", "formats": ["onnx", "tflite"],
                          "precisions": ["fp32", "int8-dynamic", "int8-static"],
                          "devices": {"names": ["desktop", "cortex-a53"], "threads": 1}},
               "models": [{"name": "distilbert", "status": "ok", "gates": gates}],
               "gates": {"checked": len(gates), "failed": len(failures),
                         "failures": [{**g, "message": f"{g['artifact']} {g['gate']}"} for g in failures]}}
    return summary, {"distilbert": report}


def test_html_is_self_contained_with_two_plots_per_device():
    page = html.render_build(*_summary_and_reports())
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert page.count("<svg") == 4  # 2 devices x (accuracy vs size, accuracy vs latency/instructions)
    assert "<script" not in page and "<link" not in page and "<img" not in page
    urls = set(re.findall(r"https?://[^\"' )]+", page))
    assert urls == {"http://www.w3.org/2000/svg"}  # the SVG namespace only: nothing is fetched
    assert html.FAIL in page and html.PASS in page  # gate status coloured
    assert "max_size_mb" in page and "Build FAILED" in page
    assert "MatMul 40.1 ms (64%)" in page and "no per-op profiler" in page
    assert "Accuracy vs instructions — cortex-a53" in page


def _png_size(path: Path) -> tuple[int, int]:
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="chromium not installed (apt-get install -y chromium)")
def test_html_renders_in_headless_chromium(tmp_path):
    page = tmp_path / "report.html"
    page.write_text(html.render_build(*_summary_and_reports()), encoding="utf-8")
    png = tmp_path / "report.png"
    proc = subprocess.run(["bash", str(SCRIPT), str(page), str(png), "1400x1800"], capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert _png_size(png) == (1400, 1800)
    assert png.stat().st_size > 50_000  # a rendered page with tables and plots, not a blank one


LAYOUT_PROBE = """<script>
window.addEventListener('load', () => {
  const over = [...document.querySelectorAll('.card')].map(c => c.scrollWidth - c.clientWidth);
  const clashes = [];
  document.querySelectorAll('svg').forEach((svg, i) => {
    const labels = [...svg.querySelectorAll('text.lbl')].map(t => t.getBBox());  // the points' labels
    for (let a = 0; a < labels.length; a++) for (let b = a + 1; b < labels.length; b++) {
      const p = labels[a], q = labels[b];
      if (p.x < q.x + q.width - 0.5 && q.x < p.x + p.width - 0.5 && p.y < q.y + q.height - 0.5 && q.y < p.y + p.height - 0.5)
        clashes.push(i);
    }
  });
  document.body.setAttribute('data-probe', JSON.stringify({overflow: Math.max(0, ...over), clashes: clashes.length,
                                                           width: document.documentElement.scrollWidth}));
});
</script>"""


def _crowded():
    """A build report with 12 artifacts per device and points close together (the real matrix)."""
    records = []
    for model in ("distilbert", "squeezebert"):
        for fmt in ("onnx", "tflite"):
            for i, precision in enumerate(("fp32", "int8-dynamic", "int8-static")):
                name = f"model.{precision + '.' if precision != 'fp32' else ''}{fmt}".replace("fp32.", "")
                for device in ("desktop", "cortex-a53"):
                    records.append(_rec(name, precision, device, format=fmt, reference=f"model.{fmt}",
                                        accuracy=0.818 + 0.001 * i, accuracy_ci95=[0.79, 0.84],
                                        size_bytes=(91_000_000 if precision == "fp32" else 23_000_000 + i * 1_000_000),
                                        latency_ms=({"p50": 30.0 - 8 * i, "p90": 31.0} if device == "desktop" else None),
                                        drift_vs_desktop={"max_abs_logit_diff": 0.08, "prediction_flips": 2,
                                                          "n_emulated": 56, "flip_rate_upper95": 0.0125},
                                        instructions={"status": "ok", "per_inference": 4.4e8 + 1e7 * i, "spread": 2e-5},
                                        profile={"status": "ok", "top_ops": [{"op": "MatMul", "ms": 19.8, "share": 0.59},
                                                                            {"op": "Softmax", "ms": 4.8, "share": 0.14}]}))
    reports = {}
    for model in ("distilbert", "squeezebert"):
        reports[model] = {**_report([dict(r) for r in records[:24]]), "dataset": {"name": "builtin:test", "n": 1000}}
    summary, _ = _summary_and_reports()
    artifacts = [{"name": r["artifact"], "format": r["format"], "precision": r["precision"], "size_bytes": r["size_bytes"],
                  "reused": False} for r in records[:12:2]]
    summary["models"] = [{"name": m, "status": "ok", "gates": [], "artifacts": artifacts} for m in reports]
    manifests = {m: _recipe_manifest(artifacts) for m in reports}
    for m in manifests:  # the "which model on each device" card is part of the layout
        manifests[m]["model"] = {"encoder_macs_per_token": {"seq_len": 128, "macs": 43_646_976, "projections": 42_467_328}}
    summary["comparison"] = compare.comparison(summary, reports, manifests)
    return summary, reports, manifests


def _recipe_manifest(artifacts):
    """Manifest data with the op_groups of a full-size model's int8 artifacts (6 layers), for the recipes card."""
    onnx_float = {"MatMul": 12, "LayerNormalization": 13, "Erf": 6, "Softmax": 6}
    tfl_float = {"BATCH_MATMUL": 12, "RSQRT": 13, "GELU": 6, "SOFTMAX": 6}
    groups = {
        ("onnx", "int8-static"): [("static int8", {"MatMul": 32, "Gather": 2}), ("dynamic int8", {"MatMul": 6}),
                                  ("float", onnx_float)],
        ("onnx", "int8-dynamic"): [("dynamic int8", {"MatMul": 38}), ("int8 weights only", {"Gather": 2}),
                                   ("float", onnx_float)],
        ("tflite", "int8-static"): [("static int8", {"FULLY_CONNECTED": 32}),
                                    ("dynamic int8", {"FULLY_CONNECTED": 6}),
                                    ("int8 weights only", {"EMBEDDING_LOOKUP": 1}), ("float", tfl_float)],
        ("tflite", "int8-dynamic"): [("dynamic int8", {"FULLY_CONNECTED": 38}),
                                     ("int8 weights only", {"EMBEDDING_LOOKUP": 1}), ("float", tfl_float)],
    }
    notes = {"dynamic int8": "GELU-fed (FFN output)", "float": "attention (activation×activation)"}
    out = {}
    for a in artifacts:
        entries = [{"group": g, "ops": ops, "why": "...",
                    "notes": {next(iter(ops)): notes[g]} if g in notes and (g != "dynamic int8" or "static" in a["precision"])
                    else {}} for g, ops in groups.get((a["format"], a["precision"]), [])]
        q = {"op_groups": entries, "op_groups_scope": {"per": "signature", "signatures": 2} if a["format"] == "tflite"
             else {"per": "graph"}}
        if a["format"] == "onnx" and a["precision"] == "int8-dynamic":
            q["target"] = {"name": "arm-nodot", "chosen": "devices: cortex-a53 (no dot product)"}
        out[a["name"]] = {"format": a["format"], "precision": a["precision"], **({"quantization": q} if entries else {})}
    return {"artifacts": out}


def _probe(page: str, tmp_path: Path) -> dict:
    (tmp_path / "probe.html").write_text(page, encoding="utf-8")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,2000",
                           "--virtual-time-budget=5000", "--dump-dom", f"file://{tmp_path / 'probe.html'}"],
                          capture_output=True, text=True, timeout=180)
    found = re.search(r'data-probe="([^"]+)"', proc.stdout)
    assert found, proc.stderr[-500:]
    import html as html_lib
    import json

    return json.loads(html_lib.unescape(found.group(1)))


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="chromium not installed (apt-get install -y chromium)")
def test_crowded_report_fits_1400px_and_no_plot_labels_overlap(tmp_path):
    """Looked at in a real browser: no table wider than its card at 1400 px, no two plot labels overlap."""
    page = html.render_build(*_crowded())
    assert page.count('<span class="grp">static int8</span>') == 4  # 2 models x 2 static artifacts: recipes shown
    # the models side by side, per device, in the layout too (equal costs are also listed as "not cheaper")
    assert len(re.findall(r'<p class="sentence"><strong>[^<]*costs 1\.00× distilbert&#x27;s', page)) == 2
    assert "Where int8 is not cheaper on" in page
    probe = _probe(page.replace("</body>", LAYOUT_PROBE + "</body>"), tmp_path)
    assert probe["overflow"] == 0 and probe["width"] <= 1400, probe
    assert probe["clashes"] == 0, probe
    # the probe sees what it should: two labels drawn on top of each other are a clash
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" width="200" height="50"><text class="lbl" x="5" y="20" '
           'font-size="10.5">dist onnx fp32</text><text class="lbl" x="9" y="22" font-size="10.5">x</text></svg>')
    assert _probe(page.replace("</body>", svg + LAYOUT_PROBE + "</body>"), tmp_path)["clashes"] == 1
