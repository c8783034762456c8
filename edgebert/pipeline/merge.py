"""``edgebert build merge OUT PART_DIR...``: the parts of a sharded build as one build.

Each part is the output directory of ``edgebert build CONFIG --shard K/N``. Before anything is
written, the parts must be one complete split of one build: the same N, every K from 1 to N once,
the same config, the same edgebert and package versions, the same device fingerprints (the
emulated-ARM environment), each part's (model, device) pairs exactly the ones this config assigns to
its K (``shard.py``: no overlap, no gap), and per model the same check inputs in every part that
checked it (artifact hashes, data, settings). Any difference is one line and exit 2.

Then OUT gets one directory per model (copied from its first part, artifact hashes verified), its
report.json made of the records each part owns, in the order an unsharded check writes them, its
manifest with every device's metrics and the unsharded check fingerprint (so a later unsharded
``edgebert build`` in OUT reuses it), and summary.json, report.md and report.html with gates (and
``--baseline`` regressions) evaluated on the merged records. They equal an unsharded build's except
for timings (started, finished, seconds, phases, steps' seconds, model_seconds, report ``created``),
``reused`` flags (each part's own), and ``merged`` (the parts merged).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import gate_result
from ..errors import UsageError
from ..fsutil import sha256_file, write_json_atomic
from ..manifest import Manifest, now_iso
from ..report import REPORT_JSON
from . import fingerprint as fp
from . import shard as shard_mod
from .config import BaselineConfig, BuildConfig, GatesConfig, ModelSpec
from .runner import SUMMARY_NAME, SUMMARY_SCHEMA_VERSION, _finish_model, _lock, _phases, write_outputs
from .steps import ModelBuild, StepRecord

_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
# Config keys that may differ between the parts of one build (where the config file was read from).
_CONFIG_LOCAL = ("source",)


@dataclass
class Part:
    directory: Path
    summary: dict[str, Any]

    @property
    def shard(self) -> dict[str, Any]:
        return self.summary["shard"]

    @property
    def spec(self) -> str:
        return f"{self.shard['index']}/{self.shard['count']}"

    @property
    def label(self) -> str:
        return f"{self.directory} (shard {self.spec})"

    def owned(self, model: str) -> list[str]:
        return [d for m, d in self.shard["items"] if m == model]

    def model(self, name: str) -> dict[str, Any]:
        for m in self.summary["models"]:
            if isinstance(m, dict) and m.get("name") == name:
                return m
        raise UsageError(f"{self.label}: summary.json has no model {name!r} although this shard owns it; "
                         f"re-run that shard")


def _fail_shape(path: Path, what: str) -> UsageError:
    return UsageError(f"{path}: {what}; not the summary.json of `edgebert build CONFIG --shard K/N`")


def load_part(directory: str | Path) -> Part:
    """A part's summary.json, its shape checked (it may come from a downloaded CI artifact)."""
    directory = Path(directory)
    file = directory / SUMMARY_NAME
    if not directory.is_dir():
        raise UsageError(f"{directory}: no such directory (a part is the output directory of "
                         f"`edgebert build CONFIG --shard K/N`)")
    if not file.is_file():
        raise UsageError(f"{directory}: no {SUMMARY_NAME}; did that shard's build finish?")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{file}: not readable JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("schema_version") != SUMMARY_SCHEMA_VERSION:
        raise _fail_shape(file, f"schema_version is not {SUMMARY_SCHEMA_VERSION}")
    shard = data.get("shard")
    if not isinstance(shard, dict):
        raise UsageError(f"{directory}: not a sharded build (its summary.json has no shard record); build each "
                         f"part with `edgebert build CONFIG --shard K/N`")
    ok = (isinstance(shard.get("index"), int) and isinstance(shard.get("count"), int)
          and 1 <= shard["index"] <= shard["count"] and isinstance(shard.get("items"), list)
          and all(isinstance(i, list) and len(i) == 2 and all(isinstance(x, str) for x in i) for i in shard["items"])
          and isinstance(shard.get("versions"), dict) and isinstance(shard.get("devices"), dict))
    config = data.get("config")
    ok = ok and isinstance(config, dict) and isinstance(config.get("models"), list) and all(
        isinstance(m, dict) and isinstance(m.get("name"), str) and _NAME.match(m["name"]) and m["name"].strip(".")
        for m in config["models"]) and isinstance((config.get("devices") or {}).get("names"), list)
    ok = ok and isinstance(data.get("models"), list) and isinstance(config.get("gates"), dict)
    if not ok:
        raise _fail_shape(file, "its shard, config or models are malformed")
    return Part(directory, data)


def _difference(a: Any, b: Any, where: str = "") -> str | None:
    """The first key path at which two JSON values differ (None: equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                return f"{where}{key}"
            found = _difference(a[key], b[key], f"{where}{key}.")
            if found:
                return found
        return None
    if a != b:
        return where.rstrip(".") or "(value)"
    return None


def check_parts(parts: list[Part]) -> list[Part]:
    """One complete, consistent split, or a one-line usage error; the parts sorted by K."""
    if not parts:
        raise UsageError("no part given: pass the output directory of every `edgebert build CONFIG --shard K/N`")
    first = parts[0]
    count = first.shard["count"]
    by_index: dict[int, Part] = {}
    for p in parts:
        if p.shard["count"] != count:
            raise UsageError(f"{p.label} is from a {p.shard['count']}-way split but {first.label} from a "
                             f"{count}-way one: merge the parts of one split")
        if p.shard["index"] in by_index:
            raise UsageError(f"{by_index[p.shard['index']].directory} and {p.directory} are both shard {p.spec}: "
                             f"give each shard once")
        by_index[p.shard["index"]] = p
    missing = [k for k in range(1, count + 1) if k not in by_index]
    if missing:
        raise UsageError(f"shard {missing[0]}/{count} is missing (given: "
                         f"{', '.join(sorted((p.spec for p in parts), key=lambda s: int(s.split('/')[0])))}); "
                         f"pass every part's output directory")
    parts = [by_index[k] for k in range(1, count + 1)]
    first = parts[0]
    config = {k: v for k, v in first.summary["config"].items() if k not in _CONFIG_LOCAL}
    for p in parts[1:]:
        other = {k: v for k, v in p.summary["config"].items() if k not in _CONFIG_LOCAL}
        key = _difference(config, other)
        if key:
            raise UsageError(f"{p.label} was built from a different config than {first.label}: {key} differs")
        key = _difference(first.shard["versions"], p.shard["versions"])
        if key:
            raise UsageError(f"{p.label} was built with {key} {p.shard['versions'].get(key, '(none)')} but "
                             f"{first.label} with {first.shard['versions'].get(key, '(none)')}: build every shard "
                             f"with the same edgebert and packages")
        key = _difference(first.shard["devices"], p.shard["devices"])
        if key and ".cpu" in key and not (p.shard["devices"].get(key.split(".")[0]) or {}).get("emulated"):
            device = key.split(".")[0]
            raise UsageError(f"{p.label} ran on another host CPU than {first.label} ({device}: "
                             f"{_cpu(p.shard['devices'], device)} vs {_cpu(first.shard['devices'], device)}): "
                             f"native latency and int8 kernels depend on it; run every shard on one runner type")
        if key:
            raise UsageError(f"{p.label} and {first.label} have different device fingerprints ({key} differs): "
                             f"every shard must use the same devices and emulated-ARM environment")
    work = [(m["name"], d) for m in config["models"] for d in config["devices"]["names"]]
    expected = shard_mod.blocks(work, count)
    seen: dict[tuple[str, str], Part] = {}
    for p, want in zip(parts, expected):
        got = [tuple(i) for i in p.shard["items"]]
        for item in got:
            if item in seen:
                raise UsageError(f"{p.label} and {seen[item].label} both did {item[0]} on {item[1]}: the parts "
                                 f"overlap (built by different edgebert versions or configs?)")
            seen[item] = p
        if got != [tuple(i) for i in want]:
            raise UsageError(f"{p.label} did {_pairs(got)} but shard {p.spec} of this config is {_pairs(want)}: "
                             f"rebuild it with this edgebert")
    return parts


def _cpu(devices: dict[str, Any], name: str) -> str:
    cpu = (devices.get(name) or {}).get("cpu") or {}
    return f"{cpu.get('model')} [{' '.join(cpu.get('isa') or [])}]" if isinstance(cpu, dict) else str(cpu)


def _pairs(items: list) -> str:
    return ", ".join(f"{m}@{d}" for m, d in items) or "nothing"


# --- per model ----------------------------------------------------------------------------------
def _read_json(path: Path, label: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: missing in {label}; upload the whole output directory of each shard") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: not a JSON object")
    return data


def _check_record(part: Part, name: str) -> tuple[Manifest, dict[str, Any], dict[str, Any]]:
    """(manifest, check inputs without the shard, report.json) of one model in one part, verified."""
    directory = part.directory / name
    manifest = Manifest.load_existing(directory)
    if manifest is None:
        raise UsageError(f"{directory}: no manifest.json in {part.label}; upload the whole output directory")
    check = (manifest.data.get("build") or {}).get("check") or {}
    inputs = check.get("inputs")
    if not isinstance(inputs, dict) or not isinstance(inputs.get("shard"), dict):
        raise UsageError(f"{directory}: its manifest has no sharded check record; re-run shard {part.spec}")
    report_path = directory / REPORT_JSON
    report = _read_json(report_path, part.label)
    if sha256_file(report_path) != check.get("report_sha256"):
        raise UsageError(f"{report_path}: changed since shard {part.spec} wrote it (sha256 differs from the manifest)")
    if not isinstance(report.get("records"), list) or not isinstance(report.get("devices"), dict):
        raise UsageError(f"{report_path}: records or devices missing")
    return manifest, {k: v for k, v in inputs.items() if k != "shard"}, report


def _merged_records(name: str, owners: list[Part], reports: list[dict[str, Any]],
                    manifest: Manifest) -> list[dict[str, Any]]:
    """Each part's owned records (and the drift-reference desktop once), in unsharded check order."""
    base = reports[0]
    reference = {d for d, info in base["devices"].items() if isinstance(info, dict) and info.get("role")}
    records: dict[tuple[str, str], dict[str, Any]] = {}
    for part, report in zip(owners, reports):
        owned = set(part.owned(name))
        mine = [r for r in report["records"] if isinstance(r, dict) and r.get("device") in owned | reference]
        for device in owned:
            if not any(r["device"] == device for r in mine):
                raise UsageError(f"{part.directory / name}: no records on {device}, which shard {part.spec} owns; "
                                 f"re-run that shard")
        for r in mine:
            records.setdefault((r["device"], r.get("artifact")), r)
    order = list(base["devices"])
    rank = {n: i for i, n in enumerate(manifest.artifacts)}
    unknown = [k for k in records if k[0] not in order or k[1] not in rank]
    if unknown:
        raise UsageError(f"{name}: a part has a record of {unknown[0][1]} on {unknown[0][0]}, which the build has not")
    return sorted(records.values(), key=lambda r: (order.index(r["device"]), rank[r["artifact"]]))


def _verify_copy(src: Path, manifest: Manifest) -> None:
    """A model directory of a part has no symlink and every artifact matches its recorded hash."""
    for p in src.rglob("*"):
        if p.is_symlink():
            raise UsageError(f"{p}: a symbolic link in a part; refusing to merge it")
    for n in manifest.artifacts:
        problem = _file_problem(manifest, n)
        if problem:
            raise UsageError(f"{src}: {problem}")


def _copy_model(src: Path, dst: Path) -> None:
    """``src`` -> ``dst``, replacing it (hidden temp and lock files left out)."""
    tmp, old = dst.parent / f".{dst.name}.merge.tmp", dst.parent / f".{dst.name}.old.tmp"
    for t in (tmp, old):
        if t.exists():
            shutil.rmtree(t)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(".*"))  # no temp or lock files
    if dst.exists():
        dst.rename(old)
        tmp.rename(dst)
        shutil.rmtree(old)
    else:
        tmp.rename(dst)


def _file_problem(manifest: Manifest, name: str) -> str | None:
    from ..check.runner import _file_problem as problem

    return problem(manifest, name)


@dataclass
class _ModelPlan:
    """What the merge of one model will write, every input verified."""

    name: str
    owners: list[Part]
    entries: list[dict[str, Any]]
    failed: dict[str, Any] | None = None
    checked: list[tuple[Manifest, dict[str, Any], dict[str, Any]]] = dataclasses.field(default_factory=list)
    records: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def _verify_model(name: str, owners: list[Part]) -> _ModelPlan:
    """Every check on one model's parts, before anything is written."""
    if not owners:
        raise UsageError(f"{name}: no part has any (model, device) pair of it; the split is incomplete")
    entries = [p.model(name) for p in owners]
    failed = [e for e in entries if e.get("status") != "ok"]
    if failed:
        return _ModelPlan(name, owners, entries, failed=failed[0])
    checked = [_check_record(p, name) for p in owners]
    first_inputs = checked[0][1]
    for p, (_, inputs, _) in zip(owners[1:], checked[1:]):
        key = _difference(first_inputs, inputs)
        if key:
            raise UsageError(f"{name}: {p.label} and {owners[0].label} checked different inputs ({key} differs); "
                             f"were they built from the same model and data?")
    manifest0, _, _ = checked[0]
    records = _merged_records(name, owners, [c[2] for c in checked], manifest0)
    _verify_copy(owners[0].directory / name, manifest0)
    return _ModelPlan(name, owners, entries, checked=checked, records=records)


def _merge_model(plan: _ModelPlan, out: Path, config: BuildConfig) -> tuple[dict[str, Any], dict | None]:
    """Write one merged model; its entry of summary.json and its report (None when it failed to build)."""
    name, owners, entries, checked = plan.name, plan.owners, plan.entries, plan.checked
    if plan.failed is not None:
        return {**plan.failed, "directory": str(out / name)}, None
    first_inputs = checked[0][1]
    directory = out / name
    _copy_model(owners[0].directory / name, directory)

    report = {**checked[0][2], "directory": str(directory.resolve()), "records": plan.records}
    write_json_atomic(directory / REPORT_JSON, report)
    manifest = Manifest.load(directory)
    reference = {d for d, info in report["devices"].items() if isinstance(info, dict) and info.get("role")}
    for artifact in manifest.artifacts.values():  # the first part's, minus the devices it does not own
        artifact["metrics"] = {d: v for d, v in (artifact.get("metrics") or {}).items() if d in reference}
    for (part_manifest, _, _), part in zip(checked, owners):
        for artifact, rec in part_manifest.artifacts.items():
            for device, metrics in (rec.get("metrics") or {}).items():
                if device in part.owned(name) and artifact in manifest.artifacts:
                    manifest.artifacts[artifact]["metrics"][device] = metrics
    whole = {"sha256": fp.digest(first_inputs), "inputs": first_inputs}
    manifest.data.setdefault("build", {})["check"] = {
        "fingerprint": whole["sha256"], "inputs": whole["inputs"],
        "report_sha256": sha256_file(directory / REPORT_JSON), "stamped": now_iso()}
    manifest.save()

    first = entries[0]
    model = ModelBuild(ModelSpec(name, str(first.get("source"))), directory, model_seconds=first.get("model_seconds"),
                       stale_removed=list(first.get("stale_removed") or []), dropped=list(first.get("dropped") or []),
                       report=report)
    try:
        model.steps = [StepRecord(s["step"], bool(s["reused"]), s["fingerprint"], float(s.get("seconds") or 0),
                                  tuple(s["artifacts"])) for s in first.get("steps") or [] if s.get("step") != "check"]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise UsageError(f"{owners[0].directory / SUMMARY_NAME}: the steps of model {name} are malformed") from None
    checks = [s for e in entries for s in e.get("steps") or [] if s.get("step") == "check"]
    model.steps.append(StepRecord("check", all(s.get("reused") for s in checks) and bool(checks), whole["sha256"],
                                  round(sum(s.get("seconds") or 0 for s in checks), 2)))
    _finish_model(model, config)
    return model.to_json(), report


def _config_for_gates(config: dict[str, Any], max_latency_increase: float | None) -> BuildConfig:
    """The gate and baseline limits of the parts' config (all ``_finish_model`` and baselines need)."""
    try:
        gates = dict(config["gates"])
        gates["max_instructions"] = tuple((str(k), float(v)) for k, v in (gates.get("max_instructions") or {}).items())
        limits = BaselineConfig(**(config.get("baseline") or {}))
        built = BuildConfig(gates=GatesConfig(**gates), baseline=limits)
    except (TypeError, ValueError, AttributeError) as exc:
        raise UsageError(f"the parts' config has malformed gates or baseline limits ({exc})") from None
    if max_latency_increase is not None:
        built = dataclasses.replace(built, baseline=dataclasses.replace(built.baseline,
                                                                        max_latency_increase=max_latency_increase))
    return built


def merge(output: str | Path, part_dirs: list[str | Path], *, baseline: str | Path | None = None,
          write_baseline: str | Path | None = None, max_latency_increase: float | None = None) -> dict[str, Any]:
    """Check the parts, write OUT as the unsharded build would have; return its summary."""

    from . import baseline as baseline_mod

    start = time.perf_counter()
    out = Path(output).resolve()
    parts = check_parts([load_part(d) for d in part_dirs])
    for p in parts:
        r = p.directory.resolve()
        if r == out or out.is_relative_to(r) or r.is_relative_to(out):
            raise UsageError(f"OUT {output} overlaps part {p.directory}: merge into a directory of its own")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a directory")
    previous = baseline_mod.load(baseline) if baseline is not None else None
    if write_baseline is not None and (Path(write_baseline).is_dir() or not Path(write_baseline).parent.is_dir()):
        raise UsageError(f"--write-baseline {write_baseline}: not a file in an existing directory")
    cfg_json = parts[0].summary["config"]
    config = _config_for_gates(cfg_json, max_latency_increase)
    plans = [_verify_model(m["name"], [p for p in parts if p.owned(m["name"])]) for m in cfg_json["models"]]

    with _lock(out):
        models, model_reports = [], {}
        for plan in plans:
            entry, report = _merge_model(plan, out, config)
            models.append(entry)
            if report is not None:
                model_reports[entry["name"]] = report
        figures, vs_baseline = baseline_mod.gate(models, model_reports, previous, baseline, config.baseline)
        results = [g for m in models for g in m["gates"]]
        failures = [g for g in results if not g["passed"]]
        phases: dict[str, float] = {}
        for p in parts:
            for k, v in (p.summary.get("phases") or {}).items():
                phases[k] = round(phases.get(k, 0.0) + float(v or 0), 1)
        ordered = sorted(parts, key=lambda p: p.shard["index"])
        cpu = [p.summary.get("cpu_seconds") for p in ordered]
        summary = {
            "schema_version": SUMMARY_SCHEMA_VERSION,
            "status": "passed" if not failures and all(m["status"] == "ok" for m in models) else "failed",
            "started": min(str(p.summary.get("started")) for p in parts), "finished": now_iso(),
            "seconds": round(max(float(p.summary.get("seconds") or 0) for p in parts)
                             + time.perf_counter() - start, 1),
            "output": str(out), "config": cfg_json,
            "setup_ran": list(dict.fromkeys(s for p in parts for s in p.summary.get("setup_ran") or [])),
            "phases": phases or _phases(models, 0.0, {}),
            # each shard's own rows, named by its shard (they ran on other machines, in parallel): the merged
            # build's wall time is the slowest shard's plus the merge, its CPU time all of theirs
            "phase_table": [{**row, "phase": f"shard {p.spec}: {row['phase']}"}
                            for p in ordered for row in p.summary.get("phase_table") or []],
            "cpu_seconds": round(sum(cpu), 1) if cpu and None not in cpu else None,
            "models": models,
            "gates": {"checked": len(results), "failed": len(failures),
                      "failures": [{**g, "message": gate_result.describe(g)} for g in failures]},
            "reused": all(s["reused"] for m in models for s in m["steps"]) and bool(models),
            "baseline": vs_baseline,
            "merged": {"assignment": shard_mod.ASSIGNMENT,
                       "parts": [{"directory": str(p.directory.resolve()), "shard": p.spec,
                                  "items": p.shard["items"], "status": p.summary.get("status"),
                                  "seconds": p.summary.get("seconds")} for p in parts]},
        }
        write_outputs(out, summary, figures, write_baseline)
    return summary
