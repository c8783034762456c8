"""Where a build's time went: the CPU clock, the phase table built from a build's records, and how the
Markdown and HTML reports show it. Fast unit tests; the real builds' tables are checked in
tests/test_build.py (desktop: export, quantize per recipe, reuse) and tests/test_shard.py (emulated)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from edgebert.cpu_clock import cpu_seconds, measure
from edgebert.pipeline import phase_table
from edgebert.report import html, markdown, phases

BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\n"


def _spin(seconds: float) -> None:
    t = time.thread_time()
    while time.thread_time() - t < seconds:
        pass


def test_cpu_clock_counts_threads_and_reaped_children_but_not_sleep():
    with measure() as asleep:
        time.sleep(0.3)
    assert asleep.wall >= 0.3 and asleep.cpu < 0.1  # wall without CPU: the two are not swapped
    with measure() as child:
        subprocess.run([sys.executable, "-c", BUSY.format(s=0.5)], check=True)
    assert child.cpu >= 0.45  # a worker process's CPU (RUSAGE_CHILDREN), not only this process's
    with measure() as thread:
        worker = threading.Thread(target=_spin, args=(0.3,))
        worker.start()
        worker.join()
    assert thread.cpu >= 0.25  # another thread's CPU (RUSAGE_SELF is the whole process)
    before = cpu_seconds()
    _spin(0.1)
    assert cpu_seconds() - before >= 0.09
    # a live child (a pooled worker) counts in the span in which it spent its CPU, not when it is reaped
    proc = subprocess.Popen([sys.executable, "-c", BUSY.format(s=0.5) + "\nimport time; time.sleep(30)"])
    try:
        with measure() as live:
            time.sleep(1.5)
        with measure() as reaped:
            proc.kill()
            proc.wait()
    finally:
        proc.kill()
    assert live.cpu >= 0.45 and reaped.cpu < 0.2


def _step(step, reused, seconds, cpu, parts=(), beside=False):
    return {"step": step, "reused": reused, "seconds": seconds, "cpu_seconds": cpu, "beside_emulation": beside,
            "artifacts": ["model.int8-static.onnx", "model.int8-static.tflite"] if "static" in step else ["model.onnx"],
            **({"parts": list(parts)} if parts else {})}


PARTS = [{"recipe": "ort-static-qdq-int8", "format": "onnx", "artifact": "model.int8-static.onnx",
          "seconds": 3.0, "cpu_seconds": 5.0},
         {"recipe": "tflite-static-int8", "format": "tflite", "artifact": "model.int8-static.tflite",
          "seconds": 82.0, "cpu_seconds": 90.0}]
CHECKS = ({"desktop_accuracy": 6.0, "emulated_wall": 100.0, "emulated_after_last_model": 40.0, "desktop_latency": 9.0},
          {"desktop_accuracy": 7.0, "emulated_wall": 180.0, "emulated_after_last_model": 41.0, "desktop_latency": 8.0},
          {"desktop_accuracy": False, "emulated_wall": False, "emulated_after_last_model": False,
           "desktop_latency": False})


def _models(check_reused=(False, False)):
    return [{"name": name, "status": "ok", "model_seconds": 30.0, "model_cpu_seconds": 55.0,
             "model_beside_emulation": name == "b",
             "steps": [_step("export", False, 10.0, 12.0, beside=name == "b"),
                       _step("quantize:static", False, 86.0, 96.0, PARTS, beside=name == "b"),
                       _step("check", reused, 0.0, None)]}
            for name, reused in zip("ab", check_reused)]


def _report(accuracy, instructions):
    return {"records": [{"emulated": True, "job_seconds": {"accuracy": accuracy, "instructions": instructions}},
                        {"emulated": False, "job_seconds": {"measure": 1000.0}}]}


def test_phase_rows_split_quantize_per_recipe_and_format_and_emulated_accuracy_from_counts():
    reports = {"a": _report(30.0, 70.0), "b": _report(5.0, 11.0)}
    rows = phase_table.rows(_models(), reports, setup=(2.0, 1.5, True), checks=CHECKS)
    by = {(r["phase"], r["model"], r["detail"]): r for r in rows}
    q = by[("quantize", "a", "tflite-static-int8 (tflite): model.int8-static.tflite")]
    assert (q["seconds"], q["cpu_seconds"], q["reused"]) == (82.0, 90.0, False)
    assert by[("quantize", "a", "ort-static-qdq-int8 (onnx): model.int8-static.onnx")]["cpu_seconds"] == 5.0
    assert by[("export", "b", "model.onnx")]["beside_emulation"] and not by[("export", "a", "model.onnx")]["beside_emulation"]
    assert by[("model inputs (a built-in model is made on first use)", "a", None)]["cpu_seconds"] == 55.0
    assert by[("devices setup", None, None)]["reused"] is True
    assert by[("emulated accuracy", None, None)]["seconds"] == 35.0  # summed over the checks that ran
    assert by[("emulated instruction counts", None, None)]["seconds"] == 81.0
    assert by[("emulated accuracy", None, None)]["cpu_seconds"] is None  # not separable: said, not made up
    span = by[("emulated checks (first job to last)", None, None)]
    assert (span["seconds"], span["cpu_seconds"], span["beside_emulation"]) == (100.0, 180.0, True)
    assert by[("desktop latency (alone)", None, None)]["cpu_seconds"] == 8.0
    assert [r["reused"] for r in rows if r["phase"] == "check"] == [False, False]

    # a reused check: its stored job-seconds are not this build's time
    rows = phase_table.rows(_models((True, False)), reports, setup=(2.0, 1.5, False), checks=CHECKS)
    by = {(r["phase"], r["model"], r["detail"]): r for r in rows}
    assert by[("emulated accuracy", None, None)]["seconds"] == 5.0
    assert [r["reused"] for r in rows if r["phase"] == "check"] == [True, False]
    assert by[("devices setup", None, None)]["reused"] is False
    # every check reused: no check phases at all
    rows = phase_table.rows(_models((True, True)), reports, setup=(0.1, 0.1, True), checks=CHECKS)
    assert not any(r["phase"].startswith(("emulated", "desktop")) for r in rows)


def _summary(rows):
    return {"status": "passed", "output": "/tmp/out", "finished": "2026-01-01T00:00:00+00:00", "seconds": 321.0,
            "cpu_seconds": 654.0, "reused": False, "phase_table": rows,
            "config": {"source": "edgebert.toml", "formats": ["onnx"], "precisions": ["fp32"],
                       "devices": {"names": ["desktop"], "threads": 1}},
            "models": [], "gates": {"checked": 0, "failed": 0, "failures": []}}


def test_reports_show_wall_then_cpu_and_the_reuse_of_each_row():
    rows = [phase_table.row("quantize", 12.34, 56.78, model="db", detail="ort-static-qdq-int8 (onnx): m.onnx",
                            reused=False, beside=True),
            phase_table.row("export", 0.21, 0.19, model="db", detail="model.onnx", reused=True),
            phase_table.row("emulated accuracy", 40.0, None, note=phase_table.JOB_SECONDS_NOTE)]
    md = markdown.render_build(_summary(rows), {})
    assert "## Where the time went" in md
    assert "| quantize ‡ | db | ort-static-qdq-int8 (onnx): m.onnx | 12.3 | 56.8 | ran |" in md
    assert "| export | db | model.onnx | 0.2 | 0.2 | reused |" in md
    assert "| emulated accuracy | — | — | 40.0 | — | — | job-seconds" in md
    assert "| whole build | — | — | 321.0 | 654.0 | ran |" in md
    page = html.render_build(_summary(rows), {})
    assert ("<td>12.3</td><td>56.8</td><td class=\"l\">ran</td>" in page
            and "<td>0.2</td><td>0.2</td><td class=\"l\">reused</td>" in page)
    assert "<td>321.0</td><td>654.0</td>" in page and "Where the time went" in page
    assert phases.cells(rows[0])[:6] == ["quantize ‡", "db", "ort-static-qdq-int8 (onnx): m.onnx", "12.3", "56.8", "ran"]
    # a summary without a table (a merge of shards) shows none
    assert "Where the time went" not in markdown.render_build(_summary([]), {})
    assert "Where the time went" not in html.render_build(_summary([]), {})


def test_emulated_pool_is_busy_exactly_while_its_jobs_run():
    """What marks a step "beside emulation": the pool has unfinished jobs (checked when a step starts)."""
    from types import SimpleNamespace

    from edgebert.check.plan import Job
    from edgebert.check.runner import JobRunner

    release = threading.Event()
    plan = SimpleNamespace(lock=threading.Lock(), parts_left={}, label="m",
                           manifest=SimpleNamespace(artifacts={"a": {"precision": "fp32", "format": "onnx"}}),
                           merge=lambda *a, **k: True)
    pool = JobRunner(workers=2)
    assert not pool.busy()
    pool.submit([Job(plan, ("cortex-a53", "a"), lambda: (release.wait(10), ({}, None))[1], "accuracy")])
    assert pool.busy()
    release.set()
    pool.wait()
    assert not pool.busy()
