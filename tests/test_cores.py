"""The build's own threads beside the emulated jobs (``edgebert/cores.py``): capped, followed, restored."""

from __future__ import annotations

import torch

from edgebert import cores
from edgebert.pipeline import phase_table


def test_threads_beside_leave_the_emulated_jobs_their_cores():
    assert cores.threads_beside(2, cores=2) == 1  # never below one
    assert cores.threads_beside(2, cores=8) == 6
    assert cores.threads_beside(0, cores=4) == 4
    assert 1 <= cores.threads_beside(1) <= cores.usable_cores()


def test_torch_threads_follow_the_running_emulated_jobs_and_come_back(monkeypatch):
    monkeypatch.setattr(cores, "REBALANCE_EVERY", 0.0)
    monkeypatch.setattr(cores, "usable_cores", lambda: 2)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        running = [2]
        with cores.beside_emulation(lambda: running[0]) as threads:
            assert torch.get_num_threads() == 1 and cores.budget() == 1
            running[0] = 0  # the background pool drained: the cores come back at the next look
            cores.rebalance()
            assert torch.get_num_threads() == 2 and cores.budget() is None
            running[0] = 1
            cores.rebalance()
            assert torch.get_num_threads() == 1
        assert threads.describe() == [1, 2] and threads.capped
        assert torch.get_num_threads() == 2 and cores.budget() is None
        cores.rebalance()  # outside any block: nothing to do
        assert torch.get_num_threads() == 2

        with cores.beside_emulation(lambda: 0) as threads:  # nothing in the background: left alone
            assert torch.get_num_threads() == 2 and cores.budget() is None
        assert threads.describe() is None
        try:
            with cores.beside_emulation(lambda: 2):
                raise RuntimeError("a failed step")
        except RuntimeError:
            pass
        assert torch.get_num_threads() == 2 and cores.budget() is None  # restored after a failure too
        torch.set_num_threads(1)
        with cores.beside_emulation(lambda: 0 if running[0] else 2) as threads:  # never above the usual
            running[0] = 1
            cores.rebalance()
            assert torch.get_num_threads() == 1
        assert threads.describe() is None
    finally:
        torch.set_num_threads(before)


def test_the_phase_table_says_when_torch_ran_capped():
    model = {"name": "b", "status": "ok", "model_seconds": 30.0, "model_cpu_seconds": 31.0,
             "model_beside_emulation": True, "model_torch_threads": [1, 2],
             "steps": [{"step": "export", "reused": False, "seconds": 5.0, "cpu_seconds": 5.0, "beside_emulation": True,
                        "artifacts": ["model.onnx"], "torch_threads": [1]},
                       {"step": "quantize:dynamic", "reused": False, "seconds": 2.0, "cpu_seconds": 2.0,
                        "beside_emulation": False, "artifacts": ["model.int8-dynamic.onnx"]}]}
    rows = phase_table.rows([model], {}, setup=(0.1, 0.1, True), checks=({}, {}, {}))
    notes = {r["phase"]: r["note"] for r in rows}
    assert notes["model inputs (a built-in model is made on first use)"].startswith("torch on 1–2 threads: fewer while")
    assert notes["export"] == "torch on 1 thread: fewer while emulated jobs ran (they had the other cores)"
    assert notes["quantize"] is None


def test_the_pool_counts_a_job_submitted_a_moment_ago_as_running(tmp_path, tiny):
    """The step that starts right after a submit must see the jobs (``JobRunner.running``), even before a
    pool thread has marked them running; finished jobs free their cores."""
    import threading

    from edgebert.check import CheckSettings
    from edgebert.check.plan import Job
    from edgebert.check.runner import JobRunner, prepare
    from support import FAST, make_artifact_dir

    plan = prepare(make_artifact_dir(tmp_path / "art", tiny), CheckSettings(devices=("desktop",), limit=4, **FAST))
    gate = threading.Event()
    try:
        runner = JobRunner(2)
        jobs = [Job(plan, ("desktop", "model.onnx"), lambda: (gate.wait(30), ({}, None))[1], "instructions")
                for _ in range(3)]
        runner.submit(jobs)
        assert runner.running() == 2  # three unfinished, two workers: two cores taken
        gate.set()
        runner.wait()
        assert runner.running() == 0
    finally:
        gate.set()
        plan.close()


def test_a_job_waiting_for_another_holds_no_worker(tmp_path, tiny):
    """A job that waits for another job's result (a count carried over, an early count taken) is queued only
    once that result is there (``JobRunner._after``): meanwhile the second worker runs the next job, and the
    waiting job is not counted as running (its core is free for the build's torch work)."""
    import threading

    from edgebert.check import CheckSettings
    from edgebert.check.plan import Job
    from edgebert.check.runner import JobRunner, prepare
    from support import FAST, make_artifact_dir

    plan = prepare(make_artifact_dir(tmp_path / "art", tiny), CheckSettings(devices=("desktop",), limit=4, **FAST))
    release, order = threading.Event(), []
    key = ("count", "desktop", "model.onnx")

    def provide():
        release.wait(10)
        order.append("provider")
        plan.share(key, {"status": "ok"})
        return {}, None

    def wait_for_it():
        order.append(("waiter", plan.shared_result(key, timeout=10)))  # blocks, as a carried count does
        return {}, None

    def other():
        order.append("other")
        release.set()
        return {}, None

    try:
        runner = JobRunner(2)
        runner.submit([Job(plan, ("desktop", "model.onnx"), provide, "instructions", provides=key),
                       Job(plan, ("desktop", "model.onnx"), wait_for_it, "instructions", waits_for=key)])
        assert runner.running() == 1  # the provider; the waiter holds no worker
        runner.submit([Job(plan, ("desktop", "model.int8-dynamic.onnx"), other, "accuracy")])
        runner.wait()  # "other" can only run on the worker a blocking waiter would have held
        assert order == ["other", "provider", ("waiter", {"status": "ok"})]
        assert runner.running() == 0
    finally:
        release.set()
        plan.close()
