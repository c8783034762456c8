"""``check``: accuracy, agreement with fp32, latency, peak memory and size of every artifact, per device.

A check is planned once (:func:`prepare`: data loaded and tokenized, hashes verified), then runs as
**jobs**: one per (artifact, native device), and for each emulated ARM device two per artifact (the
accuracy run and the instruction count; ``emulated.py``). Native jobs run first and alone, so latency
is never measured next to an emulator; emulated jobs then run ``emulated_jobs`` at a time (QEMU is
single-threaded). :func:`finish` merges every job's part into one record per (artifact, device),
derives agreement with fp32 and drift against the desktop, and writes ``report.json`` (atomically)
and ``artifacts[name]["metrics"][device]`` in the manifest. ``edgebert build`` uses the same pieces
to run the emulated jobs of several models in one pool.

Every number derived from logits (accuracy, agreement, drift) is computed here or in ``metrics.py``,
so every device and runtime is judged by the same code. What the jobs share (the plan, the settings,
the worker's files) lives below this module and ``emulated.py`` (``plan.py``, ``settings.py``,
``worker_files.py``), so that each imports downwards only. Emulated devices need the desktop logits of the same artifact
(the drift reference and the margins of ``screening.py``): the desktop is added when not requested,
as an accuracy-only ``drift-reference`` run (no latency, never gated as a native measurement).
"""

from __future__ import annotations

import dataclasses
import functools
import platform
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from .. import devices as _devices
from ..data.datasets import BUILTIN_LABELS, LabelledTexts, load_builtin, load_dataset
from ..data.tokenize import encode
from ..data.tokenizer_fit import load_artifact_tokenizer
from ..errors import UsageError
from ..fsutil import sha256_file, write_json_atomic
from ..manifest import Manifest, package_versions
from ..report import REPORT_JSON
from ..devices.worker import build_request
from . import lengths, metrics, stats
from .emulated import EMULATED_DEFINITIONS, emulated_jobs, finish_emulated
from .metrics import accuracy_fields
# The shared pieces, importable from here as before (emulated.py takes them from their own modules):
from .plan import DRIFT_REFERENCE, REFERENCE_ROLE, SECONDS_SPENT_EARLIER, CheckPlan, Job, artifact_order as _order  # noqa: F401
from .settings import BIG_CORES, CheckSettings  # noqa: F401
from .worker_files import label2id as _label2id, read_logits, write_inputs

REPORT_SCHEMA_VERSION = 2
EMULATED_DEFAULT_LIMIT = 1000     # examples, when an emulated device is checked and no limit is given
PROFILE_RUNS = 10                 # per-op profile (``profile``): batch-1 runs in a separate profiling session
PROFILE_EMULATED = ("not profiled: emulated wall time ranks kernels wrongly (the instruction count is the cost "
                    "signal here)")
LATENCY_DEFINITION = (
    "batch 1 at seq_len tokens (one real text, right-padded to seq_len; a fixed-shape TFLite artifact runs "
    "on its signature length, recorded in latency_ms.seq_len); `warmup` untimed runs, then "
    "`runs` timed runs of the runtime call alone (time.perf_counter_ns) in a fresh worker process; "
    "p50 = median, p90 = numpy linear-interpolation percentile"
)
ACCURACY_DEFINITION = (
    "fraction of examples whose argmax class is the label, each example run alone (batch 1) at its own "
    "token length (TFLite: on the smallest signature that holds it), with a 95% Wilson interval over n"
)
PEAK_RSS_DEFINITION = (
    "peak resident set (Linux VmHWM) of the worker process after the latency phase: a fresh Python "
    "process that imported numpy and the runtime, loaded the model and ran batch-1 inference at seq_len "
    "(the later accuracy pass is excluded; see rss_mb.after_accuracy). Under QEMU user-mode this is the "
    "emulator process's RSS"
)


# --- inputs -----------------------------------------------------------------------------------
def load_data(settings: CheckSettings, label2id: dict[str, int]) -> LabelledTexts:
    """The labelled examples, as the model's label ids, limited to the first ``limit``."""
    if settings.data is not None:
        data = load_dataset(settings.data, label2id, settings.text_column, settings.label_column)
    else:
        data = load_builtin("test")
        lowered = {k.lower(): v for k, v in label2id.items()}
        if all(name in lowered for name in BUILTIN_LABELS.values()):  # map by name (negative/positive)
            data = LabelledTexts(data.name, data.texts,
                                 tuple(lowered[BUILTIN_LABELS[y]] for y in data.labels))
        elif len(label2id) < len(BUILTIN_LABELS):
            raise UsageError(f"the built-in data has {len(BUILTIN_LABELS)} labels but the model has "
                             f"{len(label2id)}; pass a labelled dataset (--data)")
    return data.subset(settings.limit)


def _file_problem(manifest: Manifest, name: str) -> str | None:
    """None if the artifact file exists and matches its recorded sha256; else one line."""
    rec = manifest.artifacts[name]
    path = manifest.artifact_path(name)
    if not path.is_file():
        return f"file missing: {rec['path']} is listed in manifest.json but not on disk"
    expected = rec.get("sha256")
    if expected:
        actual = sha256_file(path)
        if actual != expected:
            return (f"sha256 mismatch: {rec['path']} changed since it was recorded in manifest.json "
                    f"(recorded {expected[:12]}…, now {actual[:12]}…); re-run the command that made it")
    return None


def prepare(directory: str | Path, settings: CheckSettings, progress=None, label: str | None = None) -> CheckPlan:
    """Load, tokenize and hash once; decide the devices (adding the drift reference) and the limit."""
    from ..progress import maybe_step

    directory = Path(directory)
    settings.validate()
    manifest = Manifest.load(directory)
    if not manifest.artifacts:
        raise UsageError(f"no artifacts in {directory}; run `edgebert export` first")
    devices = [_devices.get(name) for name in dict.fromkeys(settings.devices)]
    emulated = [d for d in devices if d.emulated]
    boards = [d for d in devices if getattr(d, "is_board", False)]
    notes, reference_only = [], set()
    if (emulated or boards) and DRIFT_REFERENCE not in {d.name for d in devices}:
        devices.insert(0, _devices.get(DRIFT_REFERENCE))
        reference_only.add(DRIFT_REFERENCE)
        notes.append(f"{DRIFT_REFERENCE} added as the drift reference of the "
                     f"{'emulated devices' if emulated else 'boards'}{' and boards' if emulated and boards else ''} "
                     f"(accuracy only: no latency, not gated)")
    if emulated and settings.batch_size != 1:  # the drift reference must run each example alone, as they do
        settings = dataclasses.replace(settings, batch_size=1)
        notes.append("accuracy at batch 1: emulated devices compare each example with the desktop's run of it alone")
    if emulated and settings.limit is None:
        settings = dataclasses.replace(settings, limit=EMULATED_DEFAULT_LIMIT)
        notes.append(f"limit {EMULATED_DEFAULT_LIMIT}: the default when an emulated device is checked "
                     f"(--limit to change)")
    with maybe_step(progress, "Loading data and tokenizing"):
        data = load_data(settings, _label2id(manifest))
        tokenizer = load_artifact_tokenizer(manifest)
        enc = encode(tokenizer, data.texts, settings.seq_len, pad_to_max=True)
        lat = encode(tokenizer, data.texts[:1], settings.seq_len, pad_to_max=True)
    mismatched = lengths.mismatches(manifest, settings.seq_len, enc["attention_mask"])
    if mismatched:  # once, before any job: the report says it too (dataset notes, latency records)
        line = lengths.describe(mismatched, len(data))
        notes.append(line)
        if progress is not None:
            from rich.markup import escape

            progress.info(f"[yellow]warning:[/] {escape(line)}")
    with maybe_step(progress, "Verifying artifact hashes"):
        problems = {name: _file_problem(manifest, name) for name in manifest.artifacts}
    tmp = tempfile.TemporaryDirectory(prefix="edgebert-check-")
    plan = CheckPlan(directory=directory, manifest=manifest, settings=settings, devices=devices,
                     reference_only=reference_only, data=data, labels=np.asarray(data.labels, dtype=np.int64),
                     ids=enc["input_ids"], mask=enc["attention_mask"], lat_ids=lat["input_ids"],
                     lat_mask=lat["attention_mask"], problems=problems, notes=notes, work=Path(tmp.name),
                     label=label or directory.name, _tmp=tmp)
    write_inputs(plan.inputs, plan.ids, plan.mask, plan.lat_ids, plan.lat_mask)
    return plan


# --- native jobs ------------------------------------------------------------------------------
def native_jobs(plan: CheckPlan, phase: str) -> list[Job]:
    """Per (artifact, native device): the ``accuracy`` pass (every example, untimed; the drift reference
    included) or the ``latency`` phase (timed runs, memory, profile; requested native devices only).

    They run in separate worker processes so that the latency phase can wait until nothing else runs
    (no emulator next to it), while the accuracy pass may share the machine.
    """
    jobs = []
    for device in plan.devices:
        if device.emulated or (phase == "latency" and device.name in plan.reference_only):
            continue
        for name in _order(plan.manifest):
            jobs.append(Job(plan, (device.name, name), lambda d=device, n=name: _native(plan, n, d, phase), phase))
    return jobs


def _native(plan: CheckPlan, name: str, device: _devices.Device, phase: str) -> tuple[dict[str, Any], np.ndarray | None]:
    record = plan.base_record(name, device)
    if plan.problems[name]:
        record["error"] = plan.problems[name]
        return record, None
    runtime = device.runtime_for(record["format"])
    if runtime is None:
        record["error"] = (f"device {device.name} has no runtime for format {record['format']!r} "
                           f"(it runs: {', '.join(device.formats()) or 'nothing'})")
        return record, None
    settings = plan.settings
    timed = phase == "latency"
    stem = f"{device.name}.{name}.{phase}".replace("/", "_")
    inputs = plan.inputs
    if timed:  # the latency input only
        empty = np.zeros((0, plan.ids.shape[1]), np.int64)
        inputs = write_inputs(plan.work / f"{stem}.inputs.npz", empty, empty, plan.lat_ids, plan.lat_mask)
    request = build_request(
        runtime=runtime, model=str(plan.manifest.artifact_path(name).resolve()), threads=record["threads"],
        inputs=str(inputs), outputs=str(plan.work / f"{stem}.logits.npz"),
        result=str(plan.work / f"{stem}.result.json"), batch_size=settings.batch_size,
        warmup=settings.warmup if timed else 0, runs=settings.runs if timed else 0,
        profile_runs=PROFILE_RUNS if settings.profile and timed else 0)
    result = device.run_worker(request, plan.work / f"{stem}.request.json")
    record["runtime"] = {"name": result.get("runtime", {}).get("name") or runtime,
                         "version": result.get("runtime", {}).get("version")}
    record.update(device.record_fields(result))
    if result.get("status") != "ok":
        error = result.get("error") or "worker failed without a reason"
        record["error"] = f"latency phase: {error}" if timed else error
        return record, None
    common = {"status": "ok", "runtime_settings": result.get("runtime", {}).get("settings", {}),
              "platform": result.get("platform"), **device.record_fields(result)}
    if timed:
        lat = result["latency"]
        latency = {**metrics.latency_summary(lat["samples_ms"]), "runs": lat["runs"], "warmup": lat["warmup"],
                   "batch": lat["batch"], "seq_len": lat["seq_len"],
                   **({"requested_seq_len": settings.seq_len} if lat["seq_len"] != settings.seq_len else {})}
        wall = {} if device.wall_time_is_latency() else \
            {"emulated_wall_ms": {**latency, "note": getattr(device, "emulated_note", "NOT device latency")}}
        part = {**common, **({"latency_ms": latency} if not wall else wall),
                "peak_rss_mb": result.get("peak_rss_mb"), "rss_mb": result.get("rss_mb"),
                "load_ms": result.get("load_ms")}
        if settings.profile:
            part["profile"] = result.get("profile") or {"status": "failed", "reason": "no profile returned"}
        return part, None
    logits = read_logits(request["outputs"], len(plan.labels), plan.manifest)
    if isinstance(logits, str):
        record["error"] = logits
        return record, None
    record.update({**common, **accuracy_fields(logits, plan.labels, "measured"),
                   "accuracy_pass": result.get("accuracy_pass")})
    return record, logits


# --- running jobs -----------------------------------------------------------------------------
class JobRunner:
    """Runs jobs ``workers`` at a time in background threads, merging each part into its plan and
    printing one line per finished record. Jobs may be submitted in several batches (a build submits
    each model's emulated jobs as soon as the model is ready, and keeps building the next one)."""

    def __init__(self, workers: int = 1, progress=None, description: str = "Measuring"):
        from concurrent.futures import ThreadPoolExecutor

        self.workers = max(1, int(workers))
        self.pool = ThreadPoolExecutor(max_workers=self.workers) if self.workers > 1 else None
        self.progress, self.description = progress, description
        self.lines = None
        self.futures: list = []
        self.waiting: set[Future] = set()  # jobs not yet queued: what they wait for is not done (``_after``)
        self.total = 0

    def submit(self, jobs: list[Job]) -> "JobRunner":
        if not jobs:
            return self
        for job in jobs:
            with job.plan.lock:
                job.plan.parts_left[job.key] = job.plan.parts_left.get(job.key, 0) + 1
            if job.provides is not None:
                job.plan.expect(job.provides)
        self.total += len({(id(j.plan), j.key) for j in jobs})
        if self.progress is not None:
            if self.lines is None:
                self.lines = self.progress.jobs(self.total, self.description)
            else:
                self.lines.grow(self.total)
        for job in sorted(jobs, key=_expected_cost, reverse=True):  # longest first: the pool ends together
            awaited = job.plan.awaited(job.waits_for) if job.waits_for is not None else None
            if self.pool is None:
                self._one(job)
            elif awaited is None or awaited.done():
                self.futures.append(self.pool.submit(self._one, job))
            else:
                self.futures.append(self._after(awaited, job))
        return self

    def _after(self, awaited: Future, job: Job) -> Future:
        """``job``, queued only once ``awaited`` is done: a job waiting for another's result must not hold a
        worker (its core would idle while the other job emulates). The returned future ends with the job."""
        pool, proxy = self.pool, Future()
        self.waiting.add(proxy)

        def start(_: Future) -> None:
            self.waiting.discard(proxy)
            try:
                started = pool.submit(self._one, job)
            except RuntimeError as exc:  # the pool was shut down (cancelled): nothing waits for this job
                proxy.set_exception(exc)
                return
            started.add_done_callback(functools.partial(_pass_on, proxy))

        awaited.add_done_callback(start)
        return proxy

    def _one(self, job: Job) -> None:
        start = time.perf_counter()
        try:
            part, logits = job.run()
        except Exception as exc:  # a bug in one job must not lose the others' records
            error = f"{job.kind} job failed: {type(exc).__name__}: {exc}"
            logits = None
            part = ({"instructions": {"status": "failed", "error": error}} if job.kind == "instructions" else
                    {**job.plan.base_record(job.key[1], _devices.get(job.key[0])), "error": error})
        seconds = time.perf_counter() - start
        if isinstance(part, dict) and SECONDS_SPENT_EARLIER in part:  # its work ran in an earlier job
            seconds = float(part.pop(SECONDS_SPENT_EARLIER))
        if job.plan.merge(job.key, part, logits, job.kind, seconds) and self.lines is not None:
            record = job.plan.records[job.key]
            self.lines.done(f"{job.plan.label}: {job.key[1]} on {job.key[0]}: {key_figure(record)} "
                            f"({_seconds(record)})")

    def busy(self) -> bool:
        """Jobs submitted and not finished (the build marks what ran beside them)."""
        return any(not f.done() for f in self.futures)

    def running(self) -> int:
        """Jobs running now or about to (the build leaves them their cores: ``cores.py``): unfinished jobs, at
        most one per worker. Not ``Future.running()``: a job submitted a moment ago is not yet marked running
        while this thread holds the GIL, and the step that starts right after would take every core."""
        waiting = set(self.waiting)
        return min(self.workers, sum(1 for f in list(self.futures) if not f.done() and f not in waiting))

    def wait(self) -> None:
        try:
            for future in self.futures:
                future.result()
        finally:
            self.futures = []
            if self.pool is not None:
                self.pool.shutdown(wait=True)
                self.pool = None
            if self.lines is not None:
                self.lines.close()
                self.lines = None


    def cancel(self) -> None:
        """Drop queued jobs and wait for the running ones (after an error elsewhere)."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        self.futures = []
        if self.lines is not None:
            self.lines.close()
            self.lines = None


def _pass_on(proxy: Future, done: Future) -> None:
    """End ``proxy`` as ``done`` ended."""
    if done.cancelled():
        proxy.cancel()
    elif done.exception() is not None:
        proxy.set_exception(done.exception())
    else:
        proxy.set_result(done.result())


def _expected_cost(job: Job) -> float:
    """Rough emulator seconds of a job, for longest-first scheduling (fp32 counts are the longest)."""
    precision = job.plan.manifest.artifacts[job.key[1]]["precision"]
    fmt = job.plan.manifest.artifacts[job.key[1]]["format"]
    if job.waits_for is not None:  # after everything else: its provider runs first
        return 0.0
    if job.kind == "instructions":
        return (35.0 if precision == "fp32" else 10.0) * (1.2 if fmt == "tflite" else 1.0)
    if job.kind == "accuracy":
        return 15.0 if precision == "fp32" else 30.0 * (1.6 if fmt == "tflite" else 1.0)
    return 1.0


def run_jobs(jobs: list[Job], workers: int = 1, progress=None, description: str = "Measuring") -> None:
    """Run ``jobs`` and wait for them (see :class:`JobRunner`)."""
    JobRunner(workers, progress, description).submit(jobs).wait()


def _seconds(record: dict[str, Any]) -> str:
    spent = record.get("job_seconds") or {}
    if len(spent) == 1:
        return f"{next(iter(spent.values())):.0f}s"
    return ", ".join(f"{kind} {s:.0f}s" for kind, s in spent.items())


def key_figure(record: dict[str, Any]) -> str:
    """The one-line result of a record, for progress lines."""
    if record.get("status") != "ok" and record.get("error"):
        return f"FAILED: {record['error']}"
    parts = []
    if record.get("accuracy") is not None:
        lo, hi = record.get("accuracy_ci95") or (None, None)
        acc = f"accuracy {record['accuracy'] * 100:.1f}%"
        if lo is not None:
            acc += f" [{lo * 100:.1f}, {hi * 100:.1f}]"
        em = record.get("emulation") or {}
        acc += f" n={record['n_samples']}" + (f" ({em['n_emulated']} emulated)" if em else "")
        parts.append(acc)
    if (record.get("latency_ms") or {}).get("p50") is not None:
        lat = record["latency_ms"]
        parts.append(f"p50 {lat['p50']:.2f} ms, p90 {lat['p90']:.2f} ms ({record['threads']} thread"
                     f"{'s' if record['threads'] != 1 else ''})")
    ins = record.get("instructions") or {}
    if ins.get("status") == "ok":
        parts.append(f"{ins['per_inference'] / 1e6:.1f} M instructions/inference")
    elif ins:
        parts.append(f"instructions {ins.get('status')}")
    est = record.get("estimated_latency") or {}
    if est.get("status") == "ok":
        parts.append(f"~{est['ms']:.3g} {est['label']} ±{est['error_band_pct']:.0f}%")
    flips = ((record.get("emulation") or {}).get("flips") or {})
    if flips:
        parts.append(f"flips {flips['k']}/{flips['n']}")
    return ", ".join(parts) or record.get("status", "?")


# --- finishing --------------------------------------------------------------------------------
def _add_agreement(records: list[dict[str, Any]], logits: dict[tuple[str, str], np.ndarray]) -> None:
    """Agreement and max |logit diff| of each ok record with its format's fp32 on the same device."""
    for rec in records:
        if rec["status"] != "ok":
            continue
        ref = rec["reference"]
        ref_logits = logits.get((rec["device"], ref)) if ref else None
        if ref_logits is None:
            rec["agreement_note"] = (f"no fp32 {rec['format']} artifact" if not ref
                                     else f"fp32 reference {ref} failed on {rec['device']}")
            continue
        mine = logits[(rec["device"], rec["artifact"])]
        ref_logits = ref_logits[:len(mine)]
        agree = int(np.sum(np.argmax(mine, axis=1) == np.argmax(ref_logits, axis=1)))
        rec["agreement"] = round(agree / len(mine), 6) if len(mine) else None
        rec["agreement_ci95"] = [round(x, 6) for x in stats.wilson(agree, len(mine))] if len(mine) else None
        rec["max_abs_logit_diff_vs_fp32"] = float(f"{metrics.max_abs_diff(mine, ref_logits):.6g}")


def add_board_drift(records: list[dict[str, Any]], logits: dict[tuple[str, str], np.ndarray]) -> None:
    """``drift_vs_desktop`` of each ok board record: max |logit diff| and prediction flips against the
    desktop's run of the same artifact on the same examples (with the flip rate's 95% upper bound)."""
    for rec in records:
        if rec["status"] != "ok" or not rec.get("board"):
            continue
        mine, ref = logits.get((rec["device"], rec["artifact"])), logits.get((DRIFT_REFERENCE, rec["artifact"]))
        if mine is None or ref is None or len(ref) < len(mine):
            rec["drift_note"] = f"no {DRIFT_REFERENCE} logits of {rec['artifact']} to compare with"
            continue
        ref = ref[:len(mine)]
        k, n = int(np.sum(np.argmax(mine, axis=1) != np.argmax(ref, axis=1))), len(mine)
        rec["drift_vs_desktop"] = {"max_abs_logit_diff": float(f"{metrics.max_abs_diff(mine, ref):.6g}"),
                                   "prediction_flips": k, "n": n, "n_emulated": None,
                                   "flip_rate_upper95": round(stats.upper_bound(k, n), 6) if n else None}


def _manifest_metrics(rec: dict[str, Any], dataset: dict[str, Any], created: str) -> dict[str, Any]:
    keys = ("status", "error", "role", "accuracy", "accuracy_ci95", "accuracy_method", "agreement",
            "max_abs_logit_diff_vs_fp32", "n_samples", "latency_ms", "threads", "runtime", "emulated",
            "peak_rss_mb", "drift_vs_desktop")
    out = {**{k: rec.get(k) for k in keys}, "dataset": dataset["name"], "checked": created}
    if rec.get("instructions"):
        out["instructions_per_inference"] = rec["instructions"].get("per_inference")
        if rec["instructions"].get("carried_from"):  # another core's count (check/count_sharing.py)
            out["instructions_carried_from"] = rec["instructions"]["carried_from"]
    if (rec.get("estimated_latency") or {}).get("status") == "ok":
        est = rec["estimated_latency"]
        out["estimated_latency"] = {k: est[k] for k in ("kind", "ms", "label", "error_band_pct", "core_model",
                                                        "clock_ghz", "seq_len")}
    return out


def finish(plan: CheckPlan) -> dict[str, Any]:
    """Merge, derive, write report.json and the manifest metrics; return the report."""
    try:
        records = [plan.records[(d.name, n)] for d in plan.devices for n in _order(plan.manifest)
                   if (d.name, n) in plan.records]
        for rec in records:
            if rec.get("emulated"):
                finish_emulated(rec, _devices.get(rec["device"]))
        _add_agreement(records, plan.logits)
        add_board_drift(records, plan.logits)
        rank = {name: i for i, name in enumerate(plan.manifest.artifacts)}
        order = [d.name for d in plan.devices]
        records.sort(key=lambda r: (order.index(r["device"]), rank[r["artifact"]]))
        settings = plan.settings
        dataset = {"name": plan.data.name, "n": len(plan.data), "limit": settings.limit, "notes": plan.notes,
                   "path": str(settings.data) if settings.data is not None else None,
                   "text_column": settings.text_column, "label_column": settings.label_column,
                   "token_lengths": _length_summary(plan.mask)}
        model = plan.manifest.model
        report = {
            "schema_version": REPORT_SCHEMA_VERSION,
            "created": plan.created,
            "directory": str(plan.directory.resolve()),
            "model": {k: model.get(k) for k in ("architecture", "source", "num_labels", "id2label")},
            "dataset": dataset,
            "settings": settings.to_json(),
            "accuracy_definition": ACCURACY_DEFINITION,
            "latency_input": {"batch": 1, "seq_len": settings.seq_len, "real_tokens": int(plan.lat_mask.sum()),
                              "definition": LATENCY_DEFINITION,
                              **({"fixed_shape_ran_at": ran} if (ran := _ran_at(plan)) else {})},
            "peak_rss_definition": PEAK_RSS_DEFINITION,
            **({"drift_reference": DRIFT_REFERENCE, **EMULATED_DEFINITIONS} if plan.emulated else {}),
            "host": {"machine": platform.machine(), "python": platform.python_version()},
            "versions": package_versions(),
            "devices": {d.name: {**d.info(), **({"role": REFERENCE_ROLE} if d.name in plan.reference_only else {})}
                        for d in plan.devices},
            "records": records,
        }
        write_json_atomic(plan.directory / REPORT_JSON, report)
        manifest = Manifest.load(plan.directory)
        for rec in records:
            manifest.artifacts[rec["artifact"]].setdefault("metrics", {})[rec["device"]] = \
                _manifest_metrics(rec, dataset, plan.created)
        manifest.save()
        return report
    finally:
        plan.close()


def _ran_at(plan: CheckPlan) -> dict[str, int]:
    """Fixed-shape artifacts whose latency input ran at another length than seq_len: name -> length."""
    return {m.artifact: m.ran for m in lengths.mismatches(plan.manifest, plan.settings.seq_len, plan.mask)}


def _length_summary(mask: np.ndarray) -> dict[str, float] | None:
    if not len(mask):
        return None
    real = mask.sum(axis=1)
    return {"mean": round(float(real.mean()), 2), "p50": float(np.percentile(real, 50)),
            "p90": float(np.percentile(real, 90)), "max": int(real.max())}


# --- the command ------------------------------------------------------------------------------
def check(directory: str | Path, settings: CheckSettings, progress=None) -> dict[str, Any]:
    """Measure every artifact of ``directory`` on each device; write report.json; return its data."""
    plan = prepare(directory, settings, progress)
    try:
        run_jobs(native_jobs(plan, "accuracy"), 1, progress, "Accuracy on native devices")
        run_jobs(emulated_jobs(plan), plan.settings.emulated_jobs, progress, "Emulated devices")
        run_jobs(native_jobs(plan, "latency"), 1, progress, "Latency on native devices (nothing else running)")
    except BaseException:
        plan.close()
        raise
    return finish(plan)
