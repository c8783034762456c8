"""``check``: accuracy, agreement with fp32, latency, peak memory and size of every artifact, per device.

The parent (this module) loads data, tokenizes once, and hands the same input arrays to the
measurement worker of each (artifact, device) pair (``edgebert.devices.worker``). Numbers derived
from logits (accuracy, agreement, logit drift) are computed here, so every device and runtime is
judged by the same code. Results go to ``report.json`` (atomically) and into the manifest's
``artifacts[name]["metrics"][device]``.

Emulated devices (ARM under QEMU): the desktop run of the same artifacts is added when not requested,
and each emulated record gets ``drift_vs_desktop`` (max |logit diff| and prediction flips against the
desktop logits of the same artifact) and ``instructions`` (guest instructions per batch-1 inference,
from the device's counting run). Their wall time is emulator time: it goes to ``emulated_wall_ms``,
never to ``latency_ms``. Without ``limit``, a check with an emulated device uses the first
``EMULATED_DEFAULT_LIMIT`` examples on every device (stated in the report).
"""

from __future__ import annotations

import dataclasses
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import devices as _devices
from ..data.datasets import BUILTIN_LABELS, LabelledTexts, load_builtin, load_dataset
from ..data.tokenize import encode
from ..errors import UsageError
from ..fsutil import sha256_file, write_json_atomic
from ..manifest import Manifest, now_iso, package_versions
from ..progress import maybe_step, maybe_track
from ..devices.worker import build_request
from . import metrics

REPORT_NAME = "report.json"
REPORT_SCHEMA_VERSION = 1
DRIFT_REFERENCE = "desktop"
EMULATED_DEFAULT_LIMIT = 200      # examples, when an emulated device is checked and no limit is given
EMULATED_WARMUP, EMULATED_RUNS = 1, 3   # wall-time runs under emulation (not device latency)
COUNT_WARMUP, COUNT_RUNS = 1, 3   # instruction-counting runs (batch 1, latency input)
PROFILE_RUNS = 10                 # per-op profile (``profile``): batch-1 runs in a separate profiling session
PROFILE_EMULATED = ("not profiled: emulated wall time ranks kernels wrongly (the instruction count is the cost "
                    "signal here)")
INSTRUCTIONS_DEFINITION = (
    "guest instructions executed by one batch-1 inference at seq_len (the latency input), counted by a "
    "QEMU TCG plugin between markers the worker issues around runtime.run; median of COUNT_RUNS runs after "
    "COUNT_WARMUP warm-up, in a process with address-space randomisation off and a fixed hash seed, so the "
    "counts repeat exactly from run to run. A deterministic, relative cost signal for the emulated CPU "
    "model, not milliseconds"
)

LATENCY_DEFINITION = (
    "batch 1 at seq_len tokens (one real text, right-padded to seq_len); `warmup` untimed runs, then "
    "`runs` timed runs of the runtime call alone (time.perf_counter_ns) in a fresh worker process; "
    "p50 = median, p90 = numpy linear-interpolation percentile"
)
PEAK_RSS_DEFINITION = (
    "peak resident set (Linux VmHWM) of the worker process after the latency phase: a fresh Python "
    "process that imported numpy and the runtime, loaded the model and ran batch-1 inference at seq_len "
    "(the later accuracy pass at batch_size is excluded; see rss_mb.after_accuracy). Under QEMU "
    "user-mode this is the emulator process's RSS"
)


@dataclass(frozen=True)
class CheckSettings:
    """What ``check`` measures and how (recorded in report.json)."""

    devices: tuple[str, ...] = ("desktop",)
    data: Path | None = None          # CSV/TSV/JSONL with text+label; None -> built-in test split
    text_column: str = "text"
    label_column: str = "label"
    limit: int | None = None          # first N examples (datasets are stored shuffled); None: all, or
                                      # EMULATED_DEFAULT_LIMIT when an emulated device is checked
    seq_len: int = 128                # latency sequence length; accuracy inputs truncated to it
    threads: int | None = 1           # None: each device's default_threads
    warmup: int = 10
    runs: int = 50
    batch_size: int = 32              # accuracy batches
    profile: bool = False             # per-op profile (top operators by time) on native devices

    def validate(self) -> None:
        for name, low in (("seq_len", 2), ("threads", 1), ("warmup", 0), ("runs", 1), ("batch_size", 1)):
            if getattr(self, name) is not None and int(getattr(self, name)) < low:
                raise UsageError(f"{name} must be at least {low} (got {getattr(self, name)})")
        if self.limit is not None and self.limit < 1:
            raise UsageError(f"limit must be at least 1 (got {self.limit})")
        if not self.devices:
            raise UsageError("no device given")

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["devices"] = list(self.devices)
        out["data"] = str(self.data) if self.data is not None else None
        return out


# --- inputs -----------------------------------------------------------------------------------
def _label2id(manifest: Manifest) -> dict[str, int]:
    model = manifest.model
    if model.get("label2id"):
        return {str(k): int(v) for k, v in model["label2id"].items()}
    return {str(v): int(k) for k, v in model.get("id2label", {}).items()}


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


def _load_tokenizer(manifest: Manifest):
    from ..hf_safe import load_tokenizer

    path = manifest.tokenizer_dir()
    if not path.is_dir():
        raise UsageError(f"{path}: tokenizer directory missing; re-run `edgebert export`")
    return load_tokenizer(path, within=manifest.directory)  # no remote code; a usage error when unloadable


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


def _order(manifest: Manifest) -> list[str]:
    """Artifacts in manifest order, each format's fp32 reference first."""
    names = list(manifest.artifacts)
    return sorted(names, key=lambda n: (manifest.artifacts[n]["precision"] != "fp32", names.index(n)))


# --- one (artifact, device) -------------------------------------------------------------------
def _base_record(manifest: Manifest, name: str, device: _devices.Device, settings: CheckSettings,
                 n: int) -> dict[str, Any]:
    rec = manifest.artifacts[name]
    path = manifest.artifact_path(name)
    return {
        "artifact": name, "format": rec["format"], "precision": rec["precision"], "device": device.name,
        "status": "failed", "error": None, "reference": manifest.reference_artifact(rec["format"]),
        "accuracy": None, "agreement": None, "max_abs_logit_diff_vs_fp32": None, "n_samples": n,
        "latency_ms": None, "threads": _threads(settings, device), "runtime": None, "emulated": device.emulated,
        "peak_rss_mb": None, "size_bytes": path.stat().st_size if path.is_file() else rec.get("size_bytes"),
    }


def _measure(manifest: Manifest, name: str, device: _devices.Device, settings: CheckSettings,
             labels: np.ndarray, inputs: Path, work: Path, num_labels: int,
             file_problem: str | None) -> tuple[dict[str, Any], np.ndarray | None]:
    record = _base_record(manifest, name, device, settings, len(labels))
    fmt = record["format"]
    if file_problem:
        record["error"] = file_problem
        return record, None
    runtime = device.runtime_for(fmt)
    if runtime is None:
        record["error"] = (f"device {device.name} has no runtime for format {fmt!r} "
                           f"(it runs: {', '.join(device.formats()) or 'nothing'})")
        return record, None
    stem = f"{device.name}.{name}".replace("/", "_")
    warmup, runs = settings.warmup, settings.runs
    if device.emulated:  # wall time is emulator time: a few runs only
        warmup, runs = min(warmup, EMULATED_WARMUP), min(runs, EMULATED_RUNS)
    request = build_request(
        runtime=runtime, model=str(manifest.artifact_path(name).resolve()), threads=record["threads"],
        inputs=str(inputs), outputs=str(work / f"{stem}.logits.npz"), result=str(work / f"{stem}.result.json"),
        batch_size=settings.batch_size, warmup=warmup, runs=runs,
        profile_runs=PROFILE_RUNS if settings.profile and not device.emulated else 0)
    result = device.run_worker(request, work / f"{stem}.request.json")
    record["runtime"] = {"name": result.get("runtime", {}).get("name") or runtime,
                         "version": result.get("runtime", {}).get("version")}
    if result.get("status") != "ok":
        record["error"] = result.get("error") or "worker failed without a reason"
        return record, None
    with np.load(request["outputs"]) as z:
        logits = np.asarray(z["logits"], dtype=np.float32)
    if logits.shape != (len(labels), num_labels):
        record["error"] = (f"logits have shape {list(logits.shape)}; expected "
                           f"[{len(labels)}, {num_labels}] (n_samples, num_labels)")
        return record, None
    timing = {**metrics.latency_summary(result["latency"]["samples_ms"]),
              "runs": result["latency"]["runs"], "warmup": result["latency"]["warmup"],
              "batch": result["latency"]["batch"], "seq_len": result["latency"]["seq_len"]}
    record.update({
        "status": "ok",
        "accuracy": round(metrics.accuracy(logits, labels), 6),
        "latency_ms": None if device.emulated else timing,
        "peak_rss_mb": result.get("peak_rss_mb"),
        "rss_mb": result.get("rss_mb"),
        "load_ms": result.get("load_ms"),
        "runtime_settings": result.get("runtime", {}).get("settings", {}),
        "platform": result.get("platform"),
        "accuracy_pass": result.get("accuracy_pass"),
    })
    if settings.profile:
        record["profile"] = ({"status": "skipped", "reason": PROFILE_EMULATED} if device.emulated
                             else result.get("profile") or {"status": "failed", "reason": "no profile returned"})
    if device.emulated:
        record["emulated_wall_ms"] = timing
    if device.counts_instructions:
        count_request = {**request, "inputs": str(inputs.with_name("latency-inputs.npz")),
                         "outputs": str(work / f"{stem}.count.logits.npz"),
                         "result": str(work / f"{stem}.count.result.json"),
                         "warmup": COUNT_WARMUP, "runs": COUNT_RUNS}
        record["instructions"] = device.count_instructions(count_request, work)
    return record, logits


def _threads(settings: CheckSettings, device: _devices.Device) -> int:
    return int(settings.threads) if settings.threads is not None else int(device.default_threads)


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
        rec["agreement"] = round(metrics.agreement(mine, ref_logits), 6)
        rec["max_abs_logit_diff_vs_fp32"] = float(f"{metrics.max_abs_diff(mine, ref_logits):.6g}")


def _add_drift(records: list[dict[str, Any]], logits: dict[tuple[str, str], np.ndarray],
               emulated: set[str]) -> None:
    """Emulated records vs the desktop logits of the same artifact: max |logit diff|, prediction flips."""
    for rec in records:
        if rec["device"] not in emulated:
            continue
        ref = logits.get((DRIFT_REFERENCE, rec["artifact"]))
        mine = logits.get((rec["device"], rec["artifact"]))
        if mine is None:
            rec["drift_vs_desktop"] = None
        elif ref is None:
            rec["drift_vs_desktop"] = {"error": f"{rec['artifact']} failed on {DRIFT_REFERENCE}"}
        else:
            flips = int(np.sum(np.argmax(mine, axis=1) != np.argmax(ref, axis=1))) if len(mine) else 0
            rec["drift_vs_desktop"] = {"max_abs_logit_diff": float(f"{metrics.max_abs_diff(mine, ref):.6g}"),
                                       "prediction_flips": flips, "n": int(len(mine))}


def _manifest_metrics(rec: dict[str, Any], dataset: dict[str, Any], created: str) -> dict[str, Any]:
    keys = ("status", "error", "accuracy", "agreement", "max_abs_logit_diff_vs_fp32", "n_samples",
            "latency_ms", "threads", "runtime", "emulated", "peak_rss_mb", "drift_vs_desktop")
    out = {**{k: rec.get(k) for k in keys}, "dataset": dataset["name"], "checked": created}
    if rec.get("instructions"):
        out["instructions_per_inference"] = rec["instructions"].get("per_inference")
    return out


# --- the command ------------------------------------------------------------------------------
def check(directory: str | Path, settings: CheckSettings, progress=None) -> dict[str, Any]:
    """Measure every artifact of ``directory`` on each device; write report.json; return its data."""
    directory = Path(directory)
    settings.validate()
    manifest = Manifest.load(directory)
    if not manifest.artifacts:
        raise UsageError(f"no artifacts in {directory}; run `edgebert export` first")
    devices = [_devices.get(name) for name in dict.fromkeys(settings.devices)]
    emulated = {d.name for d in devices if d.emulated}
    notes = []
    if emulated and DRIFT_REFERENCE not in {d.name for d in devices}:
        devices.insert(0, _devices.get(DRIFT_REFERENCE))
        notes.append(f"{DRIFT_REFERENCE} added: the reference for drift on emulated devices")
    if emulated and settings.limit is None:
        settings = dataclasses.replace(settings, limit=EMULATED_DEFAULT_LIMIT)
        notes.append(f"limit {EMULATED_DEFAULT_LIMIT}: the default when an emulated device is checked "
                     f"(--limit to change)")
    label2id = _label2id(manifest)
    num_labels = int(manifest.model.get("num_labels") or len(label2id))

    with maybe_step(progress, "Loading data and tokenizing"):
        data = load_data(settings, label2id)
        tokenizer = _load_tokenizer(manifest)
        enc = encode(tokenizer, data.texts, settings.seq_len, pad_to_max=True)
        lat = encode(tokenizer, data.texts[:1], settings.seq_len, pad_to_max=True)
    labels = np.asarray(data.labels, dtype=np.int64)
    with maybe_step(progress, "Verifying artifact hashes"):
        problems = {name: _file_problem(manifest, name) for name in manifest.artifacts}

    created = now_iso()
    records, logits = [], {}
    with tempfile.TemporaryDirectory(prefix="edgebert-check-") as tmp:
        work = Path(tmp)
        inputs = work / "inputs.npz"
        np.savez(inputs, input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                 latency_input_ids=lat["input_ids"], latency_attention_mask=lat["attention_mask"])
        if any(d.counts_instructions for d in devices):  # latency input only, for counting runs
            empty = np.zeros((0, enc["input_ids"].shape[1]), np.int64)
            np.savez(work / "latency-inputs.npz", input_ids=empty, attention_mask=empty,
                     latency_input_ids=lat["input_ids"], latency_attention_mask=lat["attention_mask"])
        jobs = [(device, name) for device in devices for name in _order(manifest)]
        for device, name in maybe_track(progress, jobs, len(jobs), "Measuring artifacts"):
            record, out = _measure(manifest, name, device, settings, labels, inputs, work, num_labels,
                                   problems[name])
            records.append(record)
            if out is not None:
                logits[(device.name, name)] = out
    _add_agreement(records, logits)
    _add_drift(records, logits, emulated)
    rank = {name: i for i, name in enumerate(manifest.artifacts)}
    records.sort(key=lambda r: ([d.name for d in devices].index(r["device"]), rank[r["artifact"]]))

    dataset = {"name": data.name, "n": len(data), "limit": settings.limit, "notes": notes,
               "path": str(settings.data) if settings.data is not None else None,
               "text_column": settings.text_column, "label_column": settings.label_column}
    model = manifest.model
    report = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "created": created,
        "directory": str(directory.resolve()),
        "model": {k: model.get(k) for k in ("architecture", "source", "num_labels", "id2label")},
        "dataset": dataset,
        "settings": settings.to_json(),
        "latency_input": {"batch": 1, "seq_len": settings.seq_len,
                          "real_tokens": int(lat["attention_mask"].sum()), "definition": LATENCY_DEFINITION},
        "peak_rss_definition": PEAK_RSS_DEFINITION,
        **({"drift_reference": DRIFT_REFERENCE, "instructions_definition": INSTRUCTIONS_DEFINITION
            .replace("COUNT_RUNS", str(COUNT_RUNS)).replace("COUNT_WARMUP", str(COUNT_WARMUP)),
            "emulated_wall_definition": f"emulator wall time of {EMULATED_RUNS} batch-1 runs after "
                                        f"{EMULATED_WARMUP} warm-up: NOT device latency"} if emulated else {}),
        "host": {"machine": platform.machine(), "python": platform.python_version()},
        "versions": package_versions(),
        "devices": {d.name: d.info() for d in devices},
        "records": records,
    }
    write_json_atomic(directory / REPORT_NAME, report)
    for rec in records:
        manifest.artifacts[rec["artifact"]].setdefault("metrics", {})[rec["device"]] = \
            _manifest_metrics(rec, dataset, created)
    manifest.save()
    return report
