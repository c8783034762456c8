"""The build's "which model on each device" section (report/compare.py), from crafted records.

Each figure the section shows has a test here that fails when its computation is broken: the best
artifact (gates, cost measure, tie-break), the cost ratio's direction, the accuracy difference and its
interval, the MACs, measured vs estimated time never in one column, and the section's absence with
one model.
"""

from __future__ import annotations

import json

import pytest

from edgebert.check.stats import wilson
from edgebert.pipeline.config import GatesConfig
from edgebert.pipeline.gates import evaluate
from edgebert.report import compare, compare_view, html, markdown
from test_build import _rec, _report

N = 1000


def _acc(k: int, n: int = N) -> dict:
    lo, hi = wilson(k, n)
    return {"accuracy": k / n, "accuracy_ci95": [lo, hi], "n_samples": n, "accuracy_correct": k}


def _records(ms: float, instructions: float, est_ms: float, k: int) -> list[dict]:
    """fp32 + int8-static on the desktop and on cortex-a53; int8 costs 0.4x fp32 and 10 fewer correct."""
    def est(ms_):
        return {"status": "ok", "kind": "estimate", "ms": ms_, "error_band_pct": 25.0, "label": "estimated ms"}
    return [
        _rec("model.onnx", "fp32", **_acc(k), latency_ms={"p50": ms, "p90": ms * 1.1}, threads=1),
        _rec("model.int8-static.onnx", "int8-static", **_acc(k - 10), latency_ms={"p50": 0.4 * ms, "p90": 0.5 * ms},
             threads=1, size_bytes=5_000_000),
        _rec("model.onnx", "fp32", "cortex-a53", latency_ms=None, **_acc(k),
             instructions={"status": "ok", "per_inference": instructions}, estimated_latency=est(est_ms)),
        _rec("model.int8-static.onnx", "int8-static", "cortex-a53", latency_ms=None, **_acc(k - 10),
             instructions={"status": "ok", "per_inference": 0.4 * instructions}, estimated_latency=est(0.5 * est_ms),
             size_bytes=5_000_000),
    ]


def _report_of(records, dataset="builtin:test", seq_len=128):
    return {**_report(records), "dataset": {"name": dataset, "n": N}, "latency_input": {"seq_len": seq_len}}


MACS = {"distilbert": {"seq_len": 128, "macs": 43_646_976, "projections": 42_467_328},
        "squeezebert": {"seq_len": 128, "macs": 28_901_376, "projections": 26_542_080}}


def _build(reports: dict, gates: GatesConfig = GatesConfig(max_accuracy_drop=2.0), macs=MACS):
    summary = {"models": [{"name": m, "status": "ok", "gates": evaluate(m, r, gates)} for m, r in reports.items()]}
    manifests = {m: {"model": {"encoder_macs_per_token": v}} for m, v in (macs or {}).items()}
    return summary, compare.comparison(summary, reports, manifests)


def _two(**squeeze_kw):
    """DistilBERT (820 correct fp32) and a SqueezeBERT that costs 0.4x and has 29 fewer correct answers."""
    kw = {"ms": 8.0, "instructions": 1e9, "est_ms": 150.0, "k": 791, **squeeze_kw}
    return {"distilbert": _report_of(_records(20.0, 2.5e9, 300.0, 820)), "squeezebert": _report_of(_records(**kw))}


def _device(comp, name):
    return next(d for d in comp["devices"] if d["device"] == name)


def _best(device, model):
    return next(e for e in device["best"] if e["model"] == model)


def test_cost_ratio_is_the_model_over_the_reference_on_the_devices_own_measure():
    _, comp = _build(_two())
    desk, a53 = _device(comp, "desktop"), _device(comp, "cortex-a53")
    assert desk["cost_measure"] == "measured_ms" and a53["cost_measure"] == "instructions"
    assert desk["reference"] == a53["reference"] == "distilbert"  # the build's first model
    (p,) = desk["pairs"]
    assert (p["model"], p["reference"]) == ("squeezebert", "distilbert")
    assert p["cost_ratio"] == pytest.approx(8.0 * 0.4 / (20.0 * 0.4))  # 0.4: squeezebert is the cheaper one
    (q,) = a53["pairs"]
    assert q["cost_ratio"] == pytest.approx(0.4)  # instructions 0.4e9 / 1.0e9 ...
    # ... not the estimates' ratio (75 / 150 = 0.5): an emulated device ranks and compares on instructions
    assert "0.40× distilbert's instructions (int8-static ONNX)" in a53["sentence"]
    assert a53["sentence"].startswith("On cortex-a53, squeezebert int8-static ONNX costs 0.40×")
    assert "0.40× distilbert's measured p50 latency" in desk["sentence"]


def test_accuracy_difference_is_model_minus_reference_with_an_interval_around_it():
    _, comp = _build(_two())
    (p,) = _device(comp, "cortex-a53")["pairs"]
    assert p["accuracy_diff_points"] == pytest.approx((781 - 810) / 10)  # -2.9 points: squeezebert is worse
    lo, hi = p["accuracy_diff_ci95_points"]
    # 29 of 1000 fewer correct: unpaired, 2.9 points at n=1000 is not told apart from 0 (about ±3.5 points)
    assert lo < p["accuracy_diff_points"] < hi and lo < 0 < hi
    assert (lo, hi) == (pytest.approx(-6.43, abs=0.01), pytest.approx(0.64, abs=0.01))
    assert p["method"] == compare.DIFFERENCE_METHOD_SHORT
    assert f"at −2.9 points accuracy [{lo:.1f}, +{hi:.1f}]".replace("-", "−") in p["sentence"]
    assert "unpaired Newcombe 95% CI, n=1000 each" in p["sentence"]


def test_difference_interval_matches_newcombe_published_example():
    """Newcombe (1998) Stat Med 17:873, Table II example (56/70 vs 48/80): method 10 gives +0.0524, +0.3339."""
    a, b = 56 / 70, 48 / 80
    lo, hi = compare.difference_ci95(a, wilson(56, 70), b, wilson(48, 80))
    assert (lo, hi) == (pytest.approx(0.0524, abs=5e-4), pytest.approx(0.3339, abs=5e-4))
    # swapping the models mirrors the interval
    assert compare.difference_ci95(b, wilson(48, 80), a, wilson(56, 70)) == (pytest.approx(-hi), pytest.approx(-lo))
    for k1, k2, n in ((0, 0, 10), (10, 0, 10), (3, 7, 10), (990, 1000, 1000), (500, 480, 1000)):
        lo, hi = compare.difference_ci95(k1 / n, wilson(k1, n), k2 / n, wilson(k2, n))
        assert -1 <= lo <= (k1 - k2) / n <= hi <= 1, (k1, k2, n)


def test_best_is_the_cheapest_artifact_that_passes_all_its_gates_on_that_device():
    reports = _two()
    recs = reports["squeezebert"]["records"]
    recs[1]["accuracy"] = 0.70  # the cheap int8 desktop artifact now fails max_accuracy_drop on the desktop only
    _, comp = _build(reports)
    desk, a53 = _device(comp, "desktop"), _device(comp, "cortex-a53")
    sq = _best(desk, "squeezebert")
    assert sq["artifact"] == "model.onnx" and (sq["passing"], sq["ran"]) == (1, 2)
    assert sq["latency_ms"]["p50"] == 8.0
    assert _best(a53, "squeezebert")["artifact"] == "model.int8-static.onnx"  # its gates there all pass
    assert _best(desk, "distilbert")["artifact"] == "model.int8-static.onnx"
    assert desk["pairs"][0]["cost_ratio"] == pytest.approx(8.0 / 8.0)


def test_best_ties_go_to_accuracy_and_a_model_with_nothing_usable_is_said_so():
    reports = _two()
    recs = reports["squeezebert"]["records"]
    recs[0]["latency_ms"] = dict(recs[1]["latency_ms"])  # fp32 as fast as int8: the more accurate fp32 wins
    _, comp = _build(reports)
    assert _best(_device(comp, "desktop"), "squeezebert")["artifact"] == "model.onnx"

    reports = _two()
    for model, flips in (("distilbert", 9), ("squeezebert", 0)):
        for r in reports[model]["records"]:
            if r["device"] == "cortex-a53":
                r["drift_vs_desktop"] = {"max_abs_logit_diff": 0.5, "prediction_flips": flips}
    _, comp = _build(reports, GatesConfig(max_accuracy_drop=2.0, max_flips_vs_desktop=1))
    a53 = _device(comp, "cortex-a53")
    db = _best(a53, "distilbert")
    assert db["artifact"] is None and "none of its 2 artifacts passes its gates" in db["why"]
    assert a53["reference"] == "squeezebert"  # the first model with a usable artifact
    assert "distilbert has no usable artifact" in a53["sentence"] and a53["pairs"][0]["cost_ratio"] is None


def test_measured_and_estimated_time_never_share_a_column_or_a_ratio():
    reports = _two()
    for rep in reports.values():  # an emulated record that carries a wall-clock p50 (not device latency)
        for r in rep["records"]:
            if r["device"] == "cortex-a53":
                r["latency_ms"] = {"p50": 1.0, "p90": 1.0}
    _, comp = _build(reports)
    desk, a53 = _device(comp, "desktop"), _device(comp, "cortex-a53")
    for e in desk["best"]:
        assert "estimated_latency" not in e and "instructions_per_inference" not in e
    for e in a53["best"]:
        assert "latency_ms" not in e and e["estimated_latency"]["kind"] == "estimate"
    head = compare_view.headers(a53)
    assert not any("Measured" in h for h in head) and any("Estimated ms" in h for h in head)
    assert not any("Estimated" in h or "Instructions" in h for h in compare_view.headers(desk))
    rows = compare_view.rows(a53, comp)
    assert rows[1][4:6] == ["400.0", "~75 ± 25%"]  # instructions (M), estimate: each in its own column


def test_an_emulated_device_ranks_on_instructions_never_on_the_estimate():
    reports = _two()
    fp32 = next(r for r in reports["squeezebert"]["records"] if r["device"] == "cortex-a53")
    fp32["estimated_latency"]["ms"] = 1.0  # the estimate says fp32 is cheapest; instructions say int8
    _, comp = _build(reports)
    a53 = _device(comp, "cortex-a53")
    assert _best(a53, "squeezebert")["artifact"] == "model.int8-static.onnx"


def test_boards_compare_on_measured_ms_and_an_emulated_board_on_nothing():
    reports = _two()
    for rep in reports.values():
        board = [dict(r, device="pi5", emulated=False, board={"host": "pi"}, drift_vs_desktop=None)
                 for r in rep["records"] if r["device"] == "desktop"]
        fake = [dict(r, device="fake", emulated=True, board={"host": "q"}) for r in board]
        rep["records"] += board + fake
        rep["devices"].update({"pi5": {"emulated": False, "board": {"host": "pi"}},
                               "fake": {"emulated": True, "board": {"host": "q", "emulated": True}}})
    _, comp = _build(reports)
    pi5, fake = _device(comp, "pi5"), _device(comp, "fake")
    assert (pi5["kind"], pi5["cost_measure"]) == ("board", "measured_ms")
    assert pi5["pairs"][0]["cost_ratio"] == pytest.approx(0.4)
    assert (fake["kind"], fake["cost_measure"]) == ("emulated board", None)
    assert fake["pairs"][0]["cost_ratio"] is None and "no time measure on this device" in fake["sentence"]
    assert _best(fake, "squeezebert")["artifact"] == "model.onnx"  # no time: the most accurate
    assert "costs" not in fake["sentence"] and "at −2.9 points" in fake["sentence"]


def test_different_evaluation_data_or_lengths_are_not_compared():
    reports = _two()
    reports["squeezebert"]["dataset"]["name"] = "topics.csv"
    reports["squeezebert"]["latency_input"]["seq_len"] = 64
    _, comp = _build(reports)
    (p,) = _device(comp, "desktop")["pairs"]
    assert p["accuracy_diff_points"] is None and p["cost_ratio"] is None
    assert "different evaluation data" in p["sentence"] and "different sequence lengths" in p["sentence"]
    (q,) = _device(comp, "cortex-a53")["pairs"]
    assert q["cost_ratio"] == pytest.approx(0.4)  # instructions: per inference at each model's own length


def test_macs_come_from_the_manifest_record_scaled_to_the_reports_length():
    record = MACS["distilbert"]
    assert compare.macs_at(record, 128) == record["macs"]
    assert compare.macs_at(record, 0) == record["projections"]
    assert compare.macs_at(record, 64) == (record["macs"] + record["projections"]) // 2
    assert compare.macs_at(None, 128) is None
    reports = _two()
    _, comp = _build(reports, macs={"distilbert": MACS["distilbert"]})
    desk = _device(comp, "desktop")
    assert _best(desk, "distilbert")["encoder_macs_per_token"] == record["macs"]
    assert _best(desk, "squeezebert")["encoder_macs_per_token"] is None
    assert "re-export" in comp["models"]["squeezebert"]["note"]
    rows = compare_view.rows(desk, comp)
    assert rows[0][-2] == "43.65 (at 128 tokens)" and rows[1][-2] == "not recorded"


def test_macs_from_real_configs_grouped_squeezebert_is_cheaper():
    from transformers import DistilBertConfig, SqueezeBertConfig

    from edgebert.export import encoder_macs_record
    from edgebert.models.grouped import PAPER_GROUPS

    dense = encoder_macs_record(DistilBertConfig(), 128)
    grouped = encoder_macs_record(SqueezeBertConfig(**PAPER_GROUPS), 128)
    assert dense["macs"] > grouped["macs"] > grouped["projections"]
    assert encoder_macs_record(object(), 128) is None  # not a BERT-style config: nothing recorded


def test_one_model_has_no_section_and_the_renderings_show_it_with_two():
    reports = _two()
    one = {"distilbert": reports["distilbert"]}
    summary, comp = _build(one)
    assert comp is None and markdown._comparison_lines(None) == [] and html._comparison_section(None) == ""

    _, comp = _build(reports)
    json.dumps(comp)  # plain JSON (summary.json)
    md = "\n".join(markdown._comparison_lines(comp))
    assert md.startswith("## Which model on each device") and compare.BEST_RULE in md
    assert "### cortex-a53 (emulated CPU; cost: guest instructions per inference)" in md
    for d in comp["devices"]:
        assert f"**{d['sentence']}**" in md
    page = html._comparison_section(comp)
    assert "<h2>Which model on each device</h2>" in page and "lowest cost by the device" in page
    assert page.count("<table>") == 2 and "On cortex-a53, squeezebert int8-static ONNX costs 0.40×" in page


def test_build_outputs_carry_the_comparison_in_summary_json_markdown_and_html(tmp_path):
    """``pipeline.runner.write_outputs`` (build and merge): summary.json gets it, both reports show it."""
    from edgebert.pipeline.runner import write_outputs
    from test_build_render import _summary_and_reports

    summary, _ = _summary_and_reports()
    reports = _two()
    summary["models"] = []
    for name, rep in reports.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text(json.dumps(rep), encoding="utf-8")
        summary["models"].append({"name": name, "status": "ok", "directory": str(tmp_path / name), "artifacts": [],
                                  "gates": evaluate(name, rep, GatesConfig(max_accuracy_drop=2.0))})
    write_outputs(tmp_path, summary, None, None)
    written = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    sentence = _device(written["comparison"], "cortex-a53")["sentence"]
    assert sentence.startswith("On cortex-a53, squeezebert int8-static ONNX costs 0.40× distilbert's instructions")
    assert sentence in (tmp_path / "report.md").read_text(encoding="utf-8")
    assert sentence.replace("'", "&#x27;") in (tmp_path / "report.html").read_text(encoding="utf-8")


def _slow_int8(desk_ratio: float, a53_ratio: float, **kw) -> list[dict]:
    """SqueezeBERT whose int8-static costs ``desk_ratio`` x its fp32 on the desktop and ``a53_ratio`` x on
    cortex-a53, with a per-op profile (desktop) and instruction classes (cortex-a53, no dot product)."""
    recs = _records(8.0, 1e9, 150.0, 791)
    prof = {"status": "ok", "top_ops": [{"op": "QLinearMatMul", "ms": 4.9, "share": 0.23, "nodes": 102}]}
    fp_prof = {"status": "ok", "top_ops": [{"op": "Conv", "ms": 11.1, "share": 0.55, "nodes": 36}]}
    recs[0]["profile"], recs[1]["profile"] = fp_prof, prof
    recs[1]["latency_ms"] = {"p50": desk_ratio * 8.0, "p90": desk_ratio * 9.0}
    recs[2]["instructions"]["class_shares"] = {"fp_fma": 0.61, "simd_other": 0.28, "dotprod": 0.0}
    recs[3]["instructions"] = {"status": "ok", "per_inference": a53_ratio * 1e9,
                               "class_shares": {"simd_other": 0.72, "fp_fma": 0.14, "dotprod": 0.0}}
    return recs


def test_int8_not_cheaper_than_its_fp32_or_the_reference_is_said_with_measured_facts():
    reports = {"distilbert": _report_of(_records(20.0, 2.5e9, 300.0, 820)),
               "squeezebert": _report_of(_slow_int8(1.08, 1.02))}
    summary, comp = _build(reports)
    desk, a53 = _device(comp, "desktop"), _device(comp, "cortex-a53")
    (own,) = [f for f in desk["int8_not_cheaper"] if f["kind"] == "own fp32"]
    assert (own["model"], own["artifact"], own["against_artifact"]) == ("squeezebert", "model.int8-static.onnx",
                                                                        "model.onnx")
    assert own["cost_ratio"] == pytest.approx(1.08)
    assert "QLinearMatMul 4.90 ms (23%, 102 nodes)" in own["why"] and "Conv 11.10 ms (55%, 36 nodes)" in own["why"]
    # 1.08 x 8 ms = 8.64 ms is more than distilbert's int8 (0.4 x 20 = 8 ms): said against the reference too
    (ref,) = [f for f in desk["int8_not_cheaper"] if f["kind"] == "reference int8"]
    assert ref["against_model"] == "distilbert" and ref["cost_ratio"] == pytest.approx(8.64 / 8.0)
    (a,) = [f for f in a53["int8_not_cheaper"] if f["kind"] == "own fp32"]
    assert a["cost_measure"] == "instructions" and a["cost_ratio"] == pytest.approx(1.02)
    assert "simd_other 72%" in a["why"] and "fp_fma 61%" in a["why"] and "no int8 dot-product" in a["why"]
    lines = compare_view.not_cheaper(a53)
    assert lines[0].startswith("squeezebert int8-static ONNX costs 1.02× its own fp32's instructions — instruction")
    md = "\n".join(markdown._comparison_lines(comp))
    assert "Where int8 is not cheaper on cortex-a53:" in md and f"- {lines[0]}" in md
    page = html._comparison_section(comp)
    assert "Where int8 is not cheaper on desktop:" in page and "102 nodes" in page
    assert "Where int8 is not cheaper" not in "\n".join(markdown._comparison_lines(_build(_two())[1]))


def test_int8_cheaper_everywhere_says_nothing():
    _, comp = _build(_two())  # int8 is 0.4x its fp32 and squeezebert's int8 0.4x distilbert's everywhere
    assert all(d["int8_not_cheaper"] == [] for d in comp["devices"])
    _, comp = _build({"distilbert": _report_of(_records(20.0, 2.0e9, 300.0, 820)),
                      "squeezebert": _report_of(_slow_int8(0.99, 0.999))})
    # just below its own fp32 on both, and below distilbert's int8 on the desktop (7.92 < 8 ms) ...
    assert _device(comp, "desktop")["int8_not_cheaper"] == []
    # ... but on cortex-a53 0.999e9 instructions are more than distilbert's int8 (0.4 x 2e9): only that is said
    (f,) = _device(comp, "cortex-a53")["int8_not_cheaper"]
    assert (f["kind"], f["against_model"]) == ("reference int8", "distilbert")


def test_fewer_instructions_but_a_higher_estimate_is_said_as_an_estimate():
    """cortex-a53: int8 at 0.98x its fp32's instructions, but the cycle model estimates 1.05x its ms."""
    recs = _slow_int8(0.5, 0.98)
    recs[2]["estimated_latency"]["ms"], recs[3]["estimated_latency"] = 380.0, {
        "status": "ok", "kind": "estimate", "ms": 399.0, "error_band_pct": 60.0, "label": "estimated ms"}
    _, comp = _build({"distilbert": _report_of(_records(20.0, 2.5e9, 300.0, 820)), "squeezebert": _report_of(recs)})
    (f,) = [f for f in _device(comp, "cortex-a53")["int8_not_cheaper"] if f["kind"] == "own fp32"]
    assert f["cost_measure"] == "estimated_ms"
    assert f["cost_ratio"] == pytest.approx(399 / 380, abs=1e-4) and f["instructions_ratio"] == pytest.approx(0.98)
    assert f["sentence"] == ("squeezebert int8-static ONNX costs 0.98× its own fp32's instructions but an estimated "
                             "1.05× its ms (cycle model: an estimate, ± 60%)")
    assert "no int8 dot-product" in f["why"]
    recs[3]["estimated_latency"]["ms"] = 379.0  # a lower estimate than its fp32 and than distilbert's int8 (150 x 3)
    _, comp = _build({"distilbert": _report_of(_records(20.0, 2.5e9, 900.0, 820)), "squeezebert": _report_of(recs)})
    assert _device(comp, "cortex-a53")["int8_not_cheaper"] == []
