"""``edgebert build``: the whole matrix from one config, incrementally, with gates and reports.

For each model: export (every configured format) -> quantize (each int8 mode) -> check (native devices
on the full evaluation set, emulated ARM devices on ``emulated_limit`` examples with the desktop run
of the same examples as drift reference) -> gates. Every step calls the library function the CLI
command calls (``export``, ``quantize``, ``check``); the steps, their fingerprints and their reuse
are in ``steps.py``; this module decides what to run when, pipelines the checks and writes the summary.

Incremental: each step's input fingerprint (``fingerprint.py``) is recorded in the manifest, on every
artifact it made (``artifacts[name]["build"]``) and for the check (``manifest["build"]["check"]``).
A step whose fingerprint is unchanged and whose outputs still match their recorded sha256 is reused.
Export, quantize and check write their files atomically and add an artifact to the manifest only
once it is complete, and the fingerprint is stamped only after the step finished: an interrupted
build (Ctrl-C, SIGKILL) resumes at the first step that had not finished, and never leaves a manifest
pointing at a missing file. Stale temp files of a killed run are removed under the build lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from .. import devices as registry
from .. import gate_result, safepath
from ..cpu_clock import cpu_seconds, measure
from ..errors import EdgebertError, UsageError
from ..fsutil import write_json_atomic, write_text_atomic
from ..manifest import Manifest, now_iso
from ..progress import Progress
from ..report import REPORT_HTML, REPORT_JSON, REPORT_MD
from . import gates as gates_mod
from . import shard as shard_mod
from . import phase_table, steps
from .config import BuildConfig, ModelSpec
from .steps import ModelBuild, WorkItem

SUMMARY_NAME = "summary.json"
LOCK_NAME = ".edgebert-build.lock"
SUMMARY_SCHEMA_VERSION = 1

#: ``hook(model, step)`` is called just before a step runs (not when it is reused): tests use it to
#: simulate an interruption at a precise point.
Hook = Callable[[str, str], None]


@contextlib.contextmanager
def _lock(out: Path) -> Iterator[None]:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOCK_NAME, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UsageError(f"{out}: another `edgebert build` is running on this output directory") from None
        yield


def _clean_stale(directory: Path) -> list[str]:
    """Temp files/dirs left by a killed run (atomic writes name them ``.<name>.*.tmp``, ``.tokenizer.*``)."""
    removed = []
    if not directory.is_dir():
        return removed
    for p in directory.iterdir():
        if p.name.startswith(".") and (p.name.endswith(".tmp") or p.name.startswith(".tokenizer.")
                                       or ".tmp" in p.name):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()  # a link: only the link
            removed.append(p.name)
    return removed


def _load_manifest(directory: Path) -> Manifest | None:
    """None when there is no manifest yet; a crafted or damaged one is a usage error (exit 2)."""
    return Manifest.load_existing(directory)


def _drop_unwanted(directory: Path, wanted: set[str], info: Callable[[str], None] = lambda m: None) -> list[str]:
    """Remove artifacts the config no longer asks for: manifest entry first, then the file, but only a
    file edgebert provably made (same sha256 as recorded); one it did not is kept and said so."""
    manifest = _load_manifest(directory)
    if manifest is None:
        return []
    extra = [n for n in manifest.artifacts if n not in wanted]
    if not extra:
        return []
    records = {n: manifest.artifacts.pop(n) for n in extra}
    manifest.save()
    for rec in records.values():
        result = safepath.remove_made_file(directory, rec.get("path"), rec.get("sha256"))
        if result.outcome == "kept":
            info(f"{directory.name}: dropped from the manifest but kept {result.describe()}")
    return extra


# --- the build -----------------------------------------------------------------------------------
def _ensure_devices(config: BuildConfig, progress: Progress | None) -> list[str]:
    """Emulated devices need the ARM environment: set it up (config ``devices.setup``) or say how."""
    devices = [registry.get(d) for d in config.devices.names]
    counting = tuple(dev.cpu.qemu_cpu for dev in devices if dev.counts_instructions)
    missing = [(dev.name, dev.setup_missing()) for dev in devices]
    missing = [(d, why) for d, why in missing if why]
    if not missing:
        return []
    if not config.devices.setup:
        d, why = missing[0]
        raise UsageError(f"device {d} is not ready ({why}); run `edgebert devices setup` or set "
                         f"[devices] setup = true")
    from ..devices.arm import setup as arm_setup

    summary = arm_setup.setup(arm_setup.default_env(), progress=progress, counting_cpus=counting)
    still = [d for d in config.devices.names if registry.get(d).unavailable_reason()]
    if still:
        raise EdgebertError(f"device {still[0]} is still unavailable after `edgebert devices setup`: "
                            f"{registry.get(still[0]).unavailable_reason()}")
    return list(summary.get("ran") or [])


def _prepare_model(spec: ModelSpec, items: list[WorkItem], config: BuildConfig, out: Path, force: bool,
                   progress: Progress | None, hook: Hook | None, share: shard_mod.Whole | None = None,
                   running: Callable[[], int] = lambda: 0,
                   exported: Callable[[ModelBuild, str], bool] = lambda m, name: False) -> ModelBuild:
    """Run (or reuse) the model's artifact steps, drop what the config no longer asks for, and decide
    whether its check can be reused (the check itself runs in :class:`_Checks`). ``running``: how many
    emulated jobs run in the background now (the steps then leave them their cores, ``cores.py``, and the
    steps' CPU holds theirs too, ``cpu_clock.py``); ``exported(model, artifact)`` is called as soon as the
    export step wrote each artifact (not when reused: then the check may be reused too)."""
    model = ModelBuild(spec, out / spec.name)
    model.stale_removed = _clean_stale(model.directory)
    ctx = steps.Context(config, model, progress, running=running, exported=exported)
    info = (lambda m: progress.info(m)) if progress else (lambda m: None)
    wanted: set[str] = set()
    for item in items:
        if item.kind != steps.CHECK:
            steps.run_artifact_step(ctx, item, force, hook)
            wanted.update(item.artifacts)
    model.dropped = _drop_unwanted(model.directory, wanted, info)
    print_ = steps.STEPS[steps.CHECK].fingerprint(ctx, None)
    if share is not None:  # --shard: the check of this share only (never reused for another share)
        print_ = share.check_fingerprint(spec.name, print_)
    model.check = steps.CheckState(print_, reused=not force and steps.check_reused(model.directory, print_))
    return model


def _finish_model(model: ModelBuild, config: BuildConfig) -> None:
    """The model's own report.md/report.html, its artifact list and its gate results."""
    from ..report import write_report

    assert model.report is not None
    directory = model.directory
    write_report(directory, html_too=True)
    manifest = Manifest.load(directory)
    reused = {n for s in model.steps if s.reused for n in (s.artifacts or ())}
    model.architecture = manifest.architecture
    model.artifacts = [
        {"name": n, "format": r["format"], "precision": r["precision"], "path": str(directory / r["path"]),
         "size_bytes": r["size_bytes"], "sha256": r["sha256"], "fingerprint": (r.get("build") or {}).get("fingerprint"),
         "reused": n in reused}
        for n, r in manifest.artifacts.items()]
    model.gates = gates_mod.evaluate(model.name, model.report, config.gates)


class _Checks:
    """The checks of a build, pipelined: as soon as a model is exported and quantized, its desktop
    accuracy pass runs (the drift reference) and its emulated jobs go to a background pool while the
    next model builds; the desktop latency phases run last, when no emulator is running."""

    def __init__(self, config: BuildConfig, progress: Progress | None, hook: Hook | None,
                 share: shard_mod.Whole | None = None):
        from ..check.runner import JobRunner

        self.config, self.progress, self.hook = config, progress, hook
        self.share = share or shard_mod.Whole(config)  # --shard: only this share's jobs and records
        self.plans: dict[str, Any] = {}
        self.seconds = {"desktop_accuracy": 0.0, "emulated_wall": 0.0, "emulated_after_last_model": 0.0,
                        "desktop_latency": 0.0}
        self.cpu = dict.fromkeys(self.seconds, 0.0)  # the same spans' process tree CPU (cpu_clock.py)
        self.beside = dict.fromkeys(self.seconds, False)  # span ran while emulated jobs were in the background
        self.first_submit: float | None = None
        self.first_submit_cpu = 0.0
        self.early: dict[str, dict] = {}  # model -> its early counts' futures (``emulated.early_counts``)
        self.early_plans: list[Any] = []  # their plans: kept open until the checks finish (their files)
        self.emulated = JobRunner(config.devices.emulated_jobs, progress,
                                  "Emulated ARM checks (in the background while the next model builds)")

    def _submit(self, jobs: list) -> None:
        if jobs and self.first_submit is None:
            self.first_submit, self.first_submit_cpu = time.perf_counter(), cpu_seconds()
        self.emulated.submit(jobs)

    def count_early(self, m: ModelBuild, artifact: str) -> bool:
        """Right after the export step wrote ``artifact`` (an fp32 file): its counting jobs go to the background
        pool (``emulated.early_counts``: they need only the file), while the next format converts, the model
        is quantized and its desktop pass runs; the check's own counting jobs take their results. True when it
        started jobs."""
        from ..check.emulated import early_counts
        from ..check.runner import prepare

        if not any(registry.get(d).counts_instructions for d in self.config.devices.names):
            return False
        try:
            plan = prepare(m.directory, steps.check_settings(self.config), None, label=m.name)
        except EdgebertError:  # the check itself will say what is wrong, at its turn
            return False
        jobs, futures = early_counts(plan)
        started = self.early.setdefault(m.name, {})
        jobs = [j for j in self.share.jobs(m.name, jobs) if j.key[1] == artifact and j.key not in started]
        if not jobs:
            plan.close_files()
            return False
        self.early_plans.append(plan)
        started.update({job.key: futures[job.key] for job in jobs})
        if self.progress:
            self.progress.info(f"{m.name}: counting instructions of {artifact} in the background (a count needs "
                               f"only the file)")
        self._submit(jobs)
        return True

    def start(self, m: ModelBuild) -> None:
        from ..check.emulated import emulated_jobs
        from ..check.runner import native_jobs, prepare, run_jobs

        assert m.check is not None
        if m.check.reused:
            if self.progress:
                self.progress.info(f"{m.name}: check: reused (artifacts, data, settings and devices unchanged)")
            return
        m.check.started = time.perf_counter()
        if self.progress:
            self.progress.info(f"{m.name}: check: running on {', '.join(self.config.devices.names)}")
        if self.hook:
            self.hook(m.name, steps.CHECK)
        self.beside["desktop_accuracy"] |= self.emulated.busy()
        with measure() as span:
            plan = prepare(m.directory, steps.check_settings(self.config), self.progress, label=m.name)
            self.plans[m.name] = plan
            run_jobs(self.share.jobs(m.name, native_jobs(plan, "accuracy")), 1, self.progress,
                     f"{m.name}: accuracy on native devices")
        self.seconds["desktop_accuracy"] += span.wall
        self.cpu["desktop_accuracy"] += span.cpu
        plan.early_counts = self.early.pop(m.name, {})
        self._submit(self.share.jobs(m.name, emulated_jobs(plan)))

    def finish(self, models: list[ModelBuild]) -> None:
        import json

        from ..check.runner import finish, native_jobs, run_jobs

        with measure() as span:
            self.emulated.wait()
            for plan in self.plans.values():  # idle pooled workers: not kept while latency runs alone
                plan.close_pools()
        if self.first_submit is not None:
            self.seconds["emulated_wall"] = time.perf_counter() - self.first_submit
            self.cpu["emulated_wall"] = cpu_seconds() - self.first_submit_cpu
            self.seconds["emulated_after_last_model"], self.cpu["emulated_after_last_model"] = span.wall, span.cpu
        with measure() as span:
            for name, plan in self.plans.items():
                run_jobs(self.share.jobs(name, native_jobs(plan, "latency")), 1, self.progress,
                         f"{name}: latency on native devices (alone)")
        self.seconds["desktop_latency"], self.cpu["desktop_latency"] = span.wall, span.cpu
        for m in models:
            if not m.ok:
                continue
            c = m.check
            assert c is not None
            if m.name in self.plans:
                self.share.prune(m.name, self.plans[m.name])
                m.report = finish(self.plans.pop(m.name))
                steps.stamp_check(m.directory, c.fingerprint)
            else:
                m.report = json.loads((m.directory / REPORT_JSON).read_text(encoding="utf-8"))
            m.steps.append(steps.StepRecord(
                steps.CHECK, c.reused, c.fingerprint["sha256"],
                round(time.perf_counter() - c.started, 2) if c.started is not None else 0.0))
        self._close_early()

    def _close_early(self) -> None:
        for plan in self.early_plans:
            plan.close_files()
        self.early_plans, self.early = [], {}

    def close(self) -> None:
        self.emulated.cancel()  # after an error: queued emulated jobs are dropped, running ones end
        for plan in self.plans.values():
            plan.close()
        self.plans = {}
        self._close_early()


def build(config: BuildConfig, output: str | Path | None = None, *, force: bool = False,
          progress: Progress | None = None, hook: Hook | None = None, baseline: str | Path | None = None,
          write_baseline: str | Path | None = None, shard: shard_mod.ShardSpec | None = None) -> dict[str, Any]:
    """Run the build; write summary.json, report.md and report.html under the output dir; return the summary.

    ``baseline``: a baseline file to gate regressions against (loaded and validated before anything is
    built); ``write_baseline``: where to write this build's baseline (after the reports); ``shard``:
    do only this share of the (model, device) pairs (``shard.py``; ``merge.py`` combines the parts)."""
    from . import baseline as baseline_mod

    out = Path(output or config.output).resolve()
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a directory")
    previous = baseline_mod.load(baseline) if baseline is not None else None
    if write_baseline is not None and (Path(write_baseline).is_dir() or not Path(write_baseline).parent.is_dir()):
        raise UsageError(f"--write-baseline {write_baseline}: not a file in an existing directory")
    start, start_cpu = time.perf_counter(), cpu_seconds()
    started = now_iso()
    share = shard_mod.for_build(config, shard)
    with _lock(out):
        for spec in share.models():  # a crafted or damaged manifest stops the build before any file is touched
            _load_manifest(out / spec.name)
        with measure() as setup:
            setup_ran = _ensure_devices(config, progress)
        setup_seconds = round(setup.wall, 1)
        items = share.work(steps.work_items(config))
        builds: list[ModelBuild] = []
        checks = _Checks(config, progress, hook, share)
        try:
            for spec in share.models():
                try:
                    builds.append(_prepare_model(spec, [i for i in items if i.model == spec.name], config, out,
                                                 force, progress, hook, share, checks.emulated.running,
                                                 checks.count_early))
                except UsageError:
                    raise
                except EdgebertError as exc:  # this model failed; the others still build
                    builds.append(ModelBuild(spec, out / spec.name, status="failed", error=str(exc)))
                    continue
                checks.start(builds[-1])
            checks.finish(builds)
        finally:
            checks.close()
        model_reports = {}
        for m in builds:
            if m.ok:
                assert m.report is not None
                model_reports[m.name] = m.report
                _finish_model(m, config)
        models = [m.to_json() for m in builds]
        figures, vs_baseline = baseline_mod.gate(models, model_reports, previous, baseline, config.baseline)
        results = [g for m in models for g in m["gates"]]
        failures = [g for g in results if not g["passed"]]
        failed_models = [m for m in models if m["status"] != "ok"]
        summary = {
            "schema_version": SUMMARY_SCHEMA_VERSION,
            "status": "passed" if not failures and not failed_models else "failed",
            "started": started, "finished": now_iso(),
            "seconds": round(time.perf_counter() - start, 1),
            "output": str(out), "config": config.to_json(), "setup_ran": setup_ran,
            "phases": _phases(models, setup_seconds, checks.seconds),
            "cpu_seconds": round(cpu_seconds() - start_cpu, 1),
            "phase_table": phase_table.rows(models, model_reports, setup=(setup.wall, setup.cpu, not setup_ran),
                                            checks=(checks.seconds, checks.cpu, checks.beside)),
            "models": models,
            "gates": {"checked": len(results), "failed": len(failures),
                      "failures": [{**g, "message": gate_result.describe(g)} for g in failures]},
            "reused": all(s["reused"] for m in models for s in m["steps"]) and bool(models),
            "baseline": vs_baseline,
            **share.summary(),
        }
        write_outputs(out, summary, figures, write_baseline)
    return summary


def write_outputs(out: Path, summary: dict[str, Any], figures, write_baseline: str | Path | None) -> None:
    """summary.json (with the models side by side per device, ``report/compare.py``, when there are several),
    the build's report.md/report.html (also to a GitHub step summary) and the baseline file."""
    from ..report import build_manifests, compare, html, markdown
    from . import baseline as baseline_mod

    reports = _reports(summary)
    manifests = build_manifests(summary)
    comparison = compare.comparison(summary, reports, manifests)  # None with one model: no section
    if comparison is not None:
        summary["comparison"] = comparison
    write_json_atomic(out / SUMMARY_NAME, summary)
    md = markdown.render_build(summary, reports, manifests)
    write_text_atomic(out / REPORT_MD, md)
    write_text_atomic(out / REPORT_HTML, html.render_build(summary, reports, manifests))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as f:
            f.write(md + "\n")
    if write_baseline is not None:
        baseline_mod.write(write_baseline, figures)


def _phases(models: list[dict[str, Any]], setup_seconds: float, checks: dict[str, float]) -> dict[str, float]:
    """Wall seconds by phase (emulated checks overlap the later models' export and quantization)."""
    done = [s for m in models for s in m.get("steps", [])]
    return {"devices_setup": setup_seconds,
            "builtin_models": round(sum(m.get("model_seconds") or 0 for m in models), 1),
            "export": round(sum(s["seconds"] for s in done if s["step"] == steps.EXPORT), 1),
            "quantize": round(sum(s["seconds"] for s in done if s["step"].startswith(steps.QUANTIZE)), 1),
            **{k: round(v, 1) for k, v in checks.items()}}


def _reports(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each built model's report.json (by model name)."""
    from ..report import load_report

    out = {}
    for m in summary["models"]:
        if m["status"] == "ok":
            out[m["name"]] = load_report(m["directory"])
    return out


def exit_code(summary: dict[str, Any]) -> int:
    return 0 if summary["status"] == "passed" else 1
