"""Reports that say what ran: agreement that can show flips, emulated count runs from one source,
and a fixed-shape TFLite artifact checked at another --seq-len (real tiny models, no mocks)."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from support import (
    FAST,
    by_artifact,
    load_tokenizer,
    make_artifact_dir,
    random_texts,
    write_jsonl,
)

from edgebert import devices
from edgebert.check import CheckSettings, check, runner
from edgebert.check.emulated import (
    COUNT_RUNS_FP32,
    COUNT_RUNS_INT8,
    COUNT_WARMUP,
    EMULATED_DEFINITIONS,
    count_request,
)
from edgebert.check.stats import wilson
from edgebert.manifest import Manifest
from edgebert.report import REPORT_MD, write_report


def _data(tmp_path, n: int = 24):
    rows = [{"text": t, "label": ["negative", "positive"][i % 2]} for i, t in enumerate(random_texts(n, seed=3))]
    return write_jsonl(tmp_path / "data.jsonl", rows)


# --- agreement with fp32 can be anything but 1 ---------------------------------------------------
def test_int8_agreement_counts_every_flip_against_fp32(tmp_path, tiny):
    """fp32 logits negated on every third row (two classes: each one a flip) before ``finish``: the
    int8 agreement must be exactly the rows left alone, so an agreement stuck at 1.0 fails here."""
    d = make_artifact_dir(tmp_path / "art", tiny)
    plan = runner.prepare(d, CheckSettings(data=_data(tmp_path), **FAST))
    runner.run_jobs(runner.native_jobs(plan, "accuracy"))
    key, int8_key = ("desktop", "model.onnx"), ("desktop", "model.int8-dynamic.onnx")
    fp32, int8 = plan.logits[key].copy(), plan.logits[int8_key].copy()
    n = len(fp32)
    assert n == 24 and np.all(fp32[:, 0] != fp32[:, 1])  # no ties: negating flips each argmax
    flipped = np.arange(n) % 3 == 0
    plan.logits[key] = np.where(flipped[:, None], -fp32, fp32)

    report = runner.finish(plan)

    rec = by_artifact(report)["model.int8-dynamic.onnx"]
    agree = int(np.sum(int8.argmax(1) == plan.logits[key].argmax(1)))  # recomputed here
    before = int(np.sum(int8.argmax(1) == fp32.argmax(1)))
    assert before - agree == int(flipped.sum()) == 8  # int8 agreed with fp32 on every flipped row
    assert rec["agreement"] == pytest.approx(agree / n) and rec["agreement"] < 1
    assert rec["agreement_ci95"] == pytest.approx(list(wilson(agree, n)), abs=1e-6)
    assert rec["max_abs_logit_diff_vs_fp32"] == pytest.approx(float(np.abs(int8 - plan.logits[key]).max()),
                                                              rel=1e-5)
    assert by_artifact(report)["model.onnx"]["agreement"] == 1.0  # fp32 against itself


def test_agreement_is_zero_when_every_prediction_flips(tmp_path, tiny):
    d = make_artifact_dir(tmp_path / "art", tiny)
    plan = runner.prepare(d, CheckSettings(data=_data(tmp_path, 12), **FAST))
    runner.run_jobs(runner.native_jobs(plan, "accuracy"))
    plan.logits[("desktop", "model.onnx")] = -plan.logits[("desktop", "model.onnx")]
    rec = by_artifact(runner.finish(plan))["model.int8-dynamic.onnx"]
    assert rec["agreement"] == 0.0 and rec["n_samples"] == 12
    assert rec["agreement_ci95"][0] == 0.0 and rec["agreement_ci95"][1] == pytest.approx(wilson(0, 12)[1])


# --- emulated instruction counts: the request runs what the definition says ----------------------
def test_count_request_runs_what_the_report_definition_states(tmp_path, tiny):
    d = make_artifact_dir(tmp_path / "art", tiny)
    plan = runner.prepare(d, CheckSettings(devices=("cortex-a55",), data=_data(tmp_path, 4), **FAST))
    try:
        text = EMULATED_DEFINITIONS["instructions_definition"]
        stated = re.search(r"after (\d+) warm-up, the median of (\d+) counted runs for int8 artifacts and "
                           r"(\d+) for fp32", text)
        assert stated, text
        warmup, int8_runs, fp32_runs = (int(x) for x in stated.groups())
        assert (warmup, int8_runs, fp32_runs) == (COUNT_WARMUP, COUNT_RUNS_INT8, COUNT_RUNS_FP32)
        device = devices.get("cortex-a55")
        for name, runs in (("model.onnx", fp32_runs), ("model.int8-dynamic.onnx", int8_runs)):
            request = count_request(plan, name, device)
            assert (request["warmup"], request["runs"], request["batch_size"]) == (warmup, runs, 1), name
            with np.load(request["inputs"]) as z:  # latency input only, at seq_len
                assert z["input_ids"].shape[0] == 0 and z["latency_input_ids"].shape == (1, FAST["seq_len"])
    finally:
        plan.close()


# --- a fixed-shape TFLite artifact checked at another --seq-len ---------------------------------
@pytest.fixture(scope="module")
def tflite32(tmp_path_factory, tiny):
    """The tiny model exported to TFLite with one signature, [1, 32]."""
    from edgebert.export.tflite import export_tflite

    path = tmp_path_factory.mktemp("tfl32") / "model.tflite"
    record = export_tflite(tiny.model, load_tokenizer(tiny.tokenizer_dir), path, 32, 1e-4)
    assert record["fixed_shape"]["seq_lens"] == [32]
    return path, record


def test_seq_len_beyond_a_tflite_fixed_length_is_warned_recorded_and_flagged(tmp_path, tiny, tflite32):
    import shutil

    from rich.console import Console

    from edgebert.progress import Progress

    d = make_artifact_dir(tmp_path / "art", tiny, artifacts=("fp32",))
    shutil.copy(tflite32[0], d / "model.tflite")
    man = Manifest.load(d)
    man.add_artifact("model.tflite", {**tflite32[1], "path": "model.tflite"})
    man.save()
    texts = random_texts(40)
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": "positive"} for t in texts])
    enc = runner.encode(load_tokenizer(tiny.tokenizer_dir), texts, 64, pad_to_max=True)
    cut = int(np.sum(enc["attention_mask"].sum(1) > 32))
    assert 0 < cut < 40  # some texts are longer than the signature, some not
    out = io.StringIO()

    report = check(d, CheckSettings(data=data, **{**FAST, "seq_len": 64}),
                   progress=Progress(Console(file=out, width=400)))

    warnings = [line for line in out.getvalue().splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, out.getvalue()
    assert "--seq-len 64" in warnings[0] and f"model.tflite at 32 (cut; {cut} of 40 texts cut" in warnings[0]
    recs = by_artifact(report)
    assert recs["model.tflite"]["status"] == recs["model.onnx"]["status"] == "ok"
    lat = recs["model.tflite"]["latency_ms"]
    assert lat["seq_len"] == 32 and lat["requested_seq_len"] == 64
    assert recs["model.onnx"]["latency_ms"]["seq_len"] == 64 and "requested_seq_len" not in recs["model.onnx"]["latency_ms"]
    assert recs["model.tflite"]["accuracy_pass"]["truncated_rows"] == cut
    assert report["latency_input"]["fixed_shape_ran_at"] == {"model.tflite": 32}
    assert warnings[0].removeprefix("warning: ") in report["dataset"]["notes"]
    write_report(d)
    md = (d / REPORT_MD).read_text()
    assert warnings[0].removeprefix("warning: ") in md  # the note, in the dataset line
    side = md.split("Formats side by side:", 1)[1].strip().splitlines()
    fp32 = next(row for row in side if row.startswith("| fp32 |")).split(" | ")
    p50_onnx, p50_tflite = fp32[3], fp32[4]
    assert p50_onnx.endswith("(64 tok)†") and p50_tflite.endswith("(32 tok)†"), side
    assert any(row.startswith("† latency at a different sequence length") for row in side)


def test_seq_len_a_tflite_signature_holds_needs_no_warning(tmp_path, tiny, tflite32):
    import shutil

    d = make_artifact_dir(tmp_path / "art", tiny, artifacts=("fp32",))
    shutil.copy(tflite32[0], d / "model.tflite")
    man = Manifest.load(d)
    man.add_artifact("model.tflite", {**tflite32[1], "path": "model.tflite"})
    man.save()
    report = check(d, CheckSettings(data=_data(tmp_path, 6), **FAST))  # seq_len 32: the signature's
    assert not report["dataset"]["notes"] and "fixed_shape_ran_at" not in report["latency_input"]
    assert by_artifact(report)["model.tflite"]["latency_ms"]["seq_len"] == 32
    write_report(d)
    md = (d / REPORT_MD).read_text()
    assert "†" not in md and "tok)" not in md
