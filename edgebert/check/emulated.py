"""The check on emulated ARM devices: an accuracy job (margin screening) and a counting job per artifact.

Both run the same measurement worker as the desktop, under QEMU:

- **accuracy** (``screening.py``): the examples the method picks run at batch 1, each at its own
  length, under the accuracy emulator (QEMU 10); the rest keep the desktop prediction. The record
  gets ``accuracy`` over all n (with its Wilson interval), ``emulation`` (which examples ran, the
  bound relied on, flips) and ``drift_vs_desktop``;
- **instructions**: guest instructions per batch-1 inference at ``seq_len`` under the counting
  emulator (a TCG plugin), ``COUNT_WARMUP`` + 1 (fp32) or 2 (int8) marked inferences; the record gets
  ``instructions`` (median, every count, spread), the emulator wall time of those runs, and
  ``estimated_latency``: the median inference's executed blocks through the core's cycle model
  (``estimate.py``), in estimated ms at a named device's clock, with its qualifier and error band.

Emulator wall time is never device latency: it goes to ``emulated_wall`` (accuracy passes) and
``emulated_wall_ms`` (counted runs), both labelled as emulation.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import time
from concurrent.futures import Future
from typing import Any

import numpy as np

from .. import devices as _devices
from ..devices.worker import build_request
from ..devices.litert import signature_length
from . import count_sharing, screening
from .estimate import ESTIMATE_DEFINITION
from .lengths import fixed_lengths
from .metrics import accuracy_fields
from .plan import DRIFT_REFERENCE, SECONDS_SPENT_EARLIER, CheckPlan, Job, artifact_order
from .worker_files import read_logits, write_inputs

COUNT_WARMUP = 1                 # the first inference does lazy init (+0.3% ORT, +5-270% LiteRT): not counted
# Counted runs after it: an fp32 inference at seq 128 costs 10-25 s of emulation, so one; int8 2-5 s, so
# two (their spread is in the record). fp32 counts repeat across processes within 0.003% (tests/test_arm.py).
COUNT_RUNS_FP32, COUNT_RUNS_INT8 = 1, 2

EMULATED_DEFINITIONS = {
    "instructions_definition": (
        f"guest instructions executed by one batch-1 inference at seq_len (the latency input), counted by a "
        f"QEMU TCG plugin between markers the worker issues around runtime.run; after {COUNT_WARMUP} warm-up, "
        f"the median of {COUNT_RUNS_INT8} counted runs for int8 artifacts and {COUNT_RUNS_FP32} for fp32 ones (an fp32 inference "
        f"costs 10-25 s of emulation), single-threaded, with address-space randomisation off, a fixed hash "
        f"seed and ONNX Runtime's telemetry thread disabled. Counts of the same artifact repeat within "
        f"0.01% across runs and processes on the built-in models (each int8 record states its spread = "
        f"(max - min) / median of its runs; fp32 records have one run). A deterministic, relative cost signal for the emulated CPU model, not milliseconds"),
    "emulated_wall_definition": (
        "emulator wall time (QEMU user mode on the host): accuracy passes per emulated example, and the "
        "counted runs at seq_len. NOT device latency"),
    "estimated_latency_definition": ESTIMATE_DEFINITION,
    "emulation_definition": (
        "accuracy on emulated devices: 'margin-screened' runs a fixed random probe and every example whose "
        "desktop margin a drift up to the bound could flip under emulation, and carries the desktop "
        "prediction over for the rest (edgebert/check/screening.py); 'all emulated' runs every example"),
}


def emulated_jobs(plan: CheckPlan) -> list[Job]:
    """Per (artifact, emulated device): the accuracy job and, where the device counts, the counting job.

    A counting job whose count another core's job can carry over (``count_sharing``: the same kernels must
    run) waits for that job's count instead of emulating the same inference again. One whose count was
    started before the check (``early_counts``) takes that job's result."""
    jobs = []
    counting: dict[str, list[_devices.Device]] = {}  # artifact -> devices with a counting job, in order
    for device in plan.emulated:
        for name in artifact_order(plan.manifest):
            key = (device.name, name)
            jobs.append(Job(plan, key, lambda d=device, n=name: _accuracy(plan, n, d), "accuracy"))
            if device.counts_instructions and not plan.problems[name] and device.runtime_for(
                    plan.manifest.artifacts[name]["format"]):
                source = count_sharing.count_source(plan.manifest.artifacts[name], plan.manifest.artifact_path(name),
                                                    device, counting.get(name, []), plan.threads(device))
                if source is None:
                    counting.setdefault(name, []).append(device)
                    job = Job(plan, key, lambda d=device, n=name: _count(plan, n, d), "instructions",
                              provides=_provides(device, name))
                else:
                    job = Job(plan, key, lambda d=device, n=name, s=source: _carried_count(plan, n, d, s),
                              "instructions", waits_for=_provides(source, name))
                jobs.append(_taking_early_count(job))
    return jobs


def early_counts(plan: CheckPlan) -> tuple[list[Job], dict[tuple[str, str], tuple[str, Future]]]:
    """The counting jobs of the artifacts ``plan`` holds now, to run before the model's check, and the futures
    through which each hands its record part to the check's job for the same (device, artifact).

    Why: a counting job needs only the artifact file (no desktop logits, unlike an accuracy job), and the
    fp32 counts are the longest emulated jobs; a build submits them as soon as the model is exported, so a
    core that would wait for quantization and the desktop pass counts meanwhile. The check's plan gets the
    futures as ``early_counts``; its counting job then takes the part (the same request, the same code) and
    its job seconds, or counts again if the artifact changed in between or the early count failed."""
    jobs, futures = [], {}
    for job in emulated_jobs(plan):
        if job.kind != "instructions":
            continue
        future: Future = Future()
        futures[job.key] = (plan.manifest.artifacts[job.key[1]]["sha256"], future)
        jobs.append(dataclasses.replace(job, run=functools.partial(_handing_over, job.run, future)))
    return jobs, futures


def _handing_over(run, future: Future) -> tuple[dict[str, Any], None]:
    start, part = time.perf_counter(), None
    try:
        part, _ = run()
    finally:  # the check's job waiting for this one must never wait forever
        future.set_result((part, time.perf_counter() - start))
    return part, None


def _taking_early_count(job: Job) -> Job:
    """``job``, or a job taking the part its early count made (the same artifact bytes) instead of counting."""
    device, name = job.key
    sha, future = job.plan.early_counts.get(job.key, (None, None))
    if future is None or sha != job.plan.manifest.artifacts[name]["sha256"]:
        return job
    timeout = next(d.timeout_s for d in job.plan.devices if d.name == device)
    waits_for = ("early count", device, name)
    with job.plan.lock:  # the runner starts this job only once the early count is done (``JobRunner``)
        job.plan.shared[waits_for] = future

    def take() -> tuple[dict[str, Any], None]:
        try:
            part, seconds = future.result(timeout=timeout)  # it was submitted first
        except TimeoutError:
            part, seconds = None, 0.0
        if not part or (part.get("instructions") or {}).get("status") != "ok":
            return job.run()  # it failed: count as if nothing had run before
        if job.provides is not None:  # a job of this check waiting for the raw count counts itself
            job.plan.share(job.provides, None)
        return {**copy.deepcopy(part), SECONDS_SPENT_EARLIER: seconds}, None

    return dataclasses.replace(job, run=take, waits_for=waits_for)


def _provides(device: _devices.Device, name: str) -> tuple[str, str, str]:
    return ("count", device.name, name)


def _accuracy(plan: CheckPlan, name: str, device: _devices.Device) -> tuple[dict[str, Any], np.ndarray | None]:
    record = plan.base_record(name, device)
    if plan.problems[name]:
        record["error"] = plan.problems[name]
        return record, None
    runtime = device.runtime_for(record["format"])
    if runtime is None:
        record["error"] = (f"device {device.name} has no runtime for format {record['format']!r} "
                           f"(it runs: {', '.join(device.formats()) or 'nothing'})")
        return record, None
    desktop = plan.logits.get((DRIFT_REFERENCE, name))
    if desktop is None:
        record["error"] = (f"no {DRIFT_REFERENCE} logits of {name} to compare with (the {DRIFT_REFERENCE} run "
                           f"failed): emulated accuracy needs them")
        return record, None
    n = plan.n_emulated
    desktop, labels = desktop[:n], plan.labels[:n]
    stem = f"{device.name}.{name}".replace("/", "_")
    passes: list[dict[str, Any]] = []
    last: dict[str, Any] = {}

    def emulate(idx: np.ndarray) -> np.ndarray:
        i = len(passes)
        inputs = write_inputs(plan.work / f"{stem}.{i}.inputs.npz", plan.ids[idx], plan.mask[idx],
                              plan.lat_ids, plan.lat_mask)
        request = build_request(runtime=runtime, model=str(plan.manifest.artifact_path(name).resolve()),
                                threads=record["threads"], inputs=str(inputs),
                                outputs=str(plan.work / f"{stem}.{i}.logits.npz"),
                                result=str(plan.work / f"{stem}.{i}.result.json"),
                                batch_size=1, warmup=0, runs=0)
        result = session.run(request, plan.work / f"{stem}.{i}.request.json")
        last.update(result)
        if result.get("status") != "ok":
            raise _EmulationFailed(result.get("error") or "worker failed without a reason")
        logits = read_logits(request["outputs"], len(idx), plan.manifest)
        if isinstance(logits, str):
            raise _EmulationFailed(logits)
        passes.append({"examples": int(len(idx)), **(result.get("accuracy_pass") or {}),
                       "load_ms": result.get("load_ms")})
        return logits

    try:
        with plan.worker_session(device) as session:  # one started process: every pass, and the next job
            logits, summary = screening.run(desktop, emulate, plan.settings.emulated, record["precision"])
    except _EmulationFailed as exc:
        record["error"] = str(exc)
        record["runtime"] = {"name": (last.get("runtime") or {}).get("name") or runtime,
                             "version": (last.get("runtime") or {}).get("version")}
        return record, None
    seconds = sum(float(p.get("seconds") or 0) for p in passes)
    method = "margin-screened" if summary["method"] == "screened" else "all emulated"
    record.update({
        "status": "ok",
        **accuracy_fields(logits, labels, method),
        "emulation": {**summary, "passes": passes},
        "drift_vs_desktop": {"max_abs_logit_diff": summary["max_drift_emulated"],
                             "prediction_flips": summary["flips"]["k"], "n": summary["n"],
                             "n_emulated": summary["n_emulated"],
                             "flip_rate_upper95": summary["flips"]["upper95"]},
        "emulated_wall": {"seconds": round(seconds, 3), "examples": summary["n_emulated"],
                          "ms_per_example": round(1e3 * seconds / summary["n_emulated"], 1)
                          if summary["n_emulated"] else None,
                          "note": "emulator wall time of the accuracy passes: NOT device latency"},
        "runtime": {"name": (last.get("runtime") or {}).get("name") or runtime,
                    "version": (last.get("runtime") or {}).get("version")},
        "runtime_settings": (last.get("runtime") or {}).get("settings", {}), "platform": last.get("platform"),
        "load_ms": last.get("load_ms"),
    })
    if plan.settings.profile:
        record["profile"] = {"status": "skipped", "reason": "not profiled: emulated wall time ranks kernels "
                                                            "wrongly (the instruction count is the cost signal)"}
    return record, logits


class _EmulationFailed(Exception):
    pass


def count_runs(precision: str) -> tuple[int, int]:
    """(warm-up, counted runs) of an artifact's instruction count: the numbers the definition states."""
    return COUNT_WARMUP, COUNT_RUNS_FP32 if precision == "fp32" else COUNT_RUNS_INT8


def count_request(plan: CheckPlan, name: str, device: _devices.Device) -> dict[str, Any]:
    """The worker request of the counting job: latency input only, ``count_runs`` of the precision."""
    stem = f"{device.name}.{name}".replace("/", "_")
    warmup, runs = count_runs(plan.manifest.artifacts[name]["precision"])
    empty = np.zeros((0, plan.ids.shape[1]), np.int64)
    inputs = write_inputs(plan.work / f"{stem}.count.inputs.npz", empty, empty, plan.lat_ids, plan.lat_mask)
    request = build_request(runtime=device.runtime_for(plan.manifest.artifacts[name]["format"]),
                            model=str(plan.manifest.artifact_path(name).resolve()), threads=plan.threads(device),
                            inputs=str(inputs), outputs=str(plan.work / f"{stem}.count.logits.npz"),
                            result=str(plan.work / f"{stem}.count.result.json"), batch_size=1,
                            warmup=warmup, runs=runs)
    return request


def _count(plan: CheckPlan, name: str, device: _devices.Device) -> tuple[dict[str, Any], None]:
    counted: dict[str, Any] | None = None
    try:
        counted = device.count_instructions(count_request(plan, name, device), plan.work)
    finally:  # a job waiting to carry this count over must never wait forever
        plan.share(_provides(device, name), counted)
    return _count_part(plan, name, device, counted), None


def _carried_count(plan: CheckPlan, name: str, device: _devices.Device,
                   source: _devices.Device) -> tuple[dict[str, Any], None]:
    """``source``'s count of ``name`` for ``device`` (the same kernels ran: ``count_sharing``), its estimate by
    ``device``'s cycle model from the same executed blocks; where there is no such count (the source job failed
    or is not in this run, e.g. another shard's), this device counts its own."""
    counted = plan.shared_result(_provides(source, name), device.timeout_s)
    if not counted or counted.get("status") != "ok":
        return _count(plan, name, device)
    part = _count_part(plan, name, device, counted)
    why = count_sharing.WHY.format(source=source.name)
    part["instructions"].update({"carried_from": source.name, "carried_why": why})
    part.pop("emulated_wall_ms", None)  # the source's emulator time, not a run on this device
    if isinstance(part.get("estimated_latency"), dict):
        part["estimated_latency"]["blocks_from"] = source.name
    return part, None


def _count_part(plan: CheckPlan, name: str, device: _devices.Device, counted: dict[str, Any] | None) -> dict[str, Any]:
    from .estimate import estimate_emulated

    counted = counted or {"status": "failed", "error": "the counting run did not finish"}
    part: dict[str, Any] = {"instructions": {k: v for k, v in counted.items()
                                             if k not in ("wall_ms", "blocks_file", "blocks_inference")}}
    fixed = fixed_lengths(plan.manifest.artifacts[name])  # the length the counted input ran at
    part["instructions"]["seq_len"] = signature_length(fixed, plan.settings.seq_len) if fixed else plan.settings.seq_len
    if counted.get("status") == "ok":  # never into latency_ms: an estimate has its own key and label
        part["estimated_latency"] = estimate_emulated(
            device, counted, part["instructions"]["seq_len"], plan.manifest.artifact_path(name).stat().st_size,
            dict(plan.settings.clock_ghz).get(device.name))
    if counted.get("wall_ms"):
        from .metrics import latency_summary

        part["emulated_wall_ms"] = {**latency_summary(counted["wall_ms"]), "runs": len(counted["wall_ms"]),
                                    "note": "emulator wall time of the counted runs under the counting QEMU: "
                                            "NOT device latency"}
    return part


def finish_emulated(record: dict[str, Any], device: _devices.Device) -> None:
    """A device that should count instructions but could not fails the record, with the reason."""
    ins = record.get("instructions")
    if record.get("status") != "ok" or not device.counts_instructions:
        return
    expected = getattr(device, "counting_expected", lambda: True)()
    if ins is None:
        ins = record["instructions"] = {"status": "failed", "error": "no counting run"}
    if ins.get("status") == "ok" or (ins.get("status") == "unavailable" and not expected):
        return
    record["status"] = "failed"
    record["error"] = f"instruction count {ins.get('status', 'missing')}: {ins.get('error') or 'no reason given'}"
