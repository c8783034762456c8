"""Each int8 artifact's recipe (manifest ``quantization.op_groups``) in report.md, report.html and the build
report: real quantized artifacts, a real check, the counts of the real graph."""

from __future__ import annotations

import copy
import json
from html import escape

import pytest
from support import FAST
from test_build_render import _summary_and_reports
from test_quantize import ATTENTION_MATMULS, EMBEDDINGS, GELU_FED, WEIGHT_MATMULS
from test_quantize import make_artifact_dir as make_onnx_dir

from edgebert.check import CheckSettings, check
from edgebert.manifest import Manifest
from edgebert.quantize import QuantizeSettings, quantize
from edgebert.report import build_manifests, html, markdown, write_report
from edgebert.report.recipe import recipes

STATIC = "model.int8-static.onnx"
DYNAMIC = "model.int8-dynamic.onnx"


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """A tiny DistilBERT exported, quantized static and dynamic, checked and reported (md + html)."""
    d = make_onnx_dir(tmp_path_factory.mktemp("recipe"), "distilbert")
    quantize(d, QuantizeSettings(mode="static", samples=8, seq_len=32))
    quantize(d, QuantizeSettings(mode="dynamic", seq_len=32))
    check(d, CheckSettings(limit=8, **FAST))
    write_report(d, html_too=True)
    return d


def _group_texts(q: dict) -> list[str]:
    """"group: Op×n, ..." for every op group the manifest records (what the reports must show)."""
    out = []
    for g in q["op_groups"]:
        notes = g.get("notes") or {}
        out.append(f"{g['group']}: " + ", ".join(f"{op}×{n}" + (f" [{notes[op]}]" if op in notes else "")
                                                 for op, n in g["ops"].items()))
    return out


def test_reports_show_the_op_groups_of_a_real_static_artifact(checked):
    md = (checked / "report.md").read_text(encoding="utf-8")
    page = (checked / "report.html").read_text(encoding="utf-8")
    q = Manifest.load(checked).artifacts[STATIC]["quantization"]
    # the counts of the real graph (a broken reader, e.g. one reading an empty list, shows none of them)
    static = f"static int8: MatMul×{WEIGHT_MATMULS['distilbert'] - GELU_FED['distilbert']}, " \
             f"Gather×{EMBEDDINGS['distilbert']}"
    dynamic = f"dynamic int8: MatMul×{GELU_FED['distilbert']} [GELU-fed (FFN output)]"
    attention = f"MatMul×{ATTENTION_MATMULS} [attention (activation×activation)]"
    line = next(ln for ln in md.splitlines() if ln.startswith(f"- `{STATIC}`"))
    assert static in line and dynamic in line and attention in line and "Softmax×2" in line, line
    assert line.index("static int8") < line.index("dynamic int8") < line.index("float:")
    for text in _group_texts(q):
        assert text in line
        name, ops = text.split(": ", 1)
        assert f'<span class="grp">{escape(name)}</span>: {escape(ops)}' in page
    assert "## Recipes" in md and md.index("## Recipes") < md.index("## desktop")
    assert "Recipes</h2>" in page and page.index("Recipes</h2>") < page.index('<h2 id="desktop"')
    assert not any(ln.startswith("- `model.onnx`") for ln in md.splitlines())  # fp32 has no recipe


def test_the_dynamic_artifact_shows_its_target_preset(checked):
    q = Manifest.load(checked).artifacts[DYNAMIC]["quantization"]
    md = (checked / "report.md").read_text(encoding="utf-8")
    line = next(ln for ln in md.splitlines() if ln.startswith(f"- `{DYNAMIC}`"))
    target = q["settings"].get("target") or q["target"]["name"]
    assert f"; target {q['target']['name']} ({q['target']['chosen']})" in line and target
    assert "static int8" not in line and f"int8 weights only: Gather×{EMBEDDINGS['distilbert']}" in line
    page = (checked / "report.html").read_text(encoding="utf-8")
    assert escape(f"target {q['target']['name']}") in page


def test_the_reader_is_what_the_reports_show(checked):
    """Emptying op_groups in the manifest removes the recipes: the texts above come from op_groups only."""
    data = json.loads((checked / "manifest.json").read_text(encoding="utf-8"))
    report = json.loads((checked / "report.json").read_text(encoding="utf-8"))
    assert [r.artifact for r in recipes(data)] == [STATIC, DYNAMIC]
    broken = copy.deepcopy(data)
    for rec in broken["artifacts"].values():
        if "quantization" in rec:
            rec["quantization"]["op_groups"] = []
    assert recipes(broken) == []
    assert "static int8:" not in markdown.render(report, broken) and "## Recipes" not in markdown.render(report, broken)
    assert 'class="grp"' not in html.render(report, broken)


def test_build_reports_show_the_recipes_of_the_artifacts_they_list(checked):
    summary, reports = _summary_and_reports()
    summary["models"][0].update(directory=str(checked), artifacts=[
        {"name": n, "format": "onnx", "precision": p, "size_bytes": 1_000_000, "reused": False}
        for n, p in (("model.onnx", "fp32"), (STATIC, "int8-static"))])  # the dynamic one is not listed
    manifests = build_manifests(summary)
    assert set(manifests) == {"distilbert"}
    q = manifests["distilbert"]["artifacts"][STATIC]["quantization"]
    md = markdown.render_build(summary, reports, manifests)
    page = html.render_build(summary, reports, manifests)
    for text in _group_texts(q):
        assert text in md
        name, ops = text.split(": ", 1)
        assert f'<span class="grp">{escape(name)}</span>: {escape(ops)}' in page
    assert md.index(markdown.RECIPES_INTRO) > md.index("## Artifacts")
    assert f"`{DYNAMIC}` (" not in md and f"<code>{DYNAMIC}</code> (" not in page  # only what the build lists
    assert markdown.RECIPES_INTRO not in markdown.render_build(summary, reports)  # no manifests: no recipes
