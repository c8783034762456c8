"""The build's own threads beside the emulated jobs (``edgebert/cores.py``): capped, then restored."""

from __future__ import annotations

import torch

from edgebert import cores
from edgebert.pipeline import phase_table


def test_threads_beside_leave_the_emulated_jobs_their_cores():
    assert cores.threads_beside(2, cores=2) == 1  # never below one
    assert cores.threads_beside(2, cores=8) == 6
    assert cores.threads_beside(0, cores=4) == 4
    assert 1 <= cores.threads_beside(1) <= cores.usable_cores()


def test_beside_emulation_caps_torch_and_the_budget_then_restores_them():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        jobs = cores.usable_cores()  # as many emulated jobs as cores: one thread left for the build
        with cores.beside_emulation(True, jobs) as threads:
            assert threads == 1 and torch.get_num_threads() == 1 and cores.budget() == 1
        assert torch.get_num_threads() == 2 and cores.budget() is None
        with cores.beside_emulation(False, jobs) as threads:  # nothing in the background: left alone
            assert threads is None and torch.get_num_threads() == 2 and cores.budget() is None
        torch.set_num_threads(1)
        with cores.beside_emulation(True, jobs) as threads:  # already at the cap: nothing to say
            assert threads is None and cores.budget() is None
        try:
            torch.set_num_threads(2)
            with cores.beside_emulation(True, jobs):
                raise RuntimeError("a failed step")
        except RuntimeError:
            pass
        assert torch.get_num_threads() == 2 and cores.budget() is None  # restored after a failure too
    finally:
        torch.set_num_threads(before)


def test_the_phase_table_says_when_torch_ran_capped():
    model = {"name": "b", "status": "ok", "model_seconds": 30.0, "model_cpu_seconds": 31.0,
             "model_beside_emulation": True, "model_torch_threads": 1,
             "steps": [{"step": "export", "reused": False, "seconds": 5.0, "cpu_seconds": 5.0, "beside_emulation": True,
                        "artifacts": ["model.onnx"], "torch_threads": 1},
                       {"step": "quantize:dynamic", "reused": False, "seconds": 2.0, "cpu_seconds": 2.0,
                        "beside_emulation": False, "artifacts": ["model.int8-dynamic.onnx"]}]}
    rows = phase_table.rows([model], {}, setup=(0.1, 0.1, True), checks=({}, {}, {}))
    notes = {r["phase"]: r["note"] for r in rows}
    assert notes["model inputs (a built-in model is made on first use)"] == phase_table.threads_note(1)
    assert notes["export"] == "torch on 1 thread: the emulated jobs had the other cores"
    assert notes["quantize"] is None
    assert phase_table.threads_note(3).startswith("torch on 3 threads")
