"""The build's steps as a small registry: export, quantize:MODE and check, each with its fingerprint and run.

A model's build is the list :func:`work_items` gives: ``export``, one ``quantize:MODE`` per int8
precision, then ``check`` (every artifact on every device). A step is *reused* when the fingerprint
recorded for its outputs equals the one computed now and the outputs still match their recorded
sha256 (:func:`reusable`); after it ran, the fingerprint is stamped into the manifest (:func:`stamp`).
Both are written once here for every step that makes artifacts; the check's output is report.json,
recorded under ``manifest["build"]["check"]`` (:func:`check_reused`, :func:`stamp_check`).

The work list depends only on the config, so a caller can pick a subset of it (models, or the
(artifact, device) pairs of a check) before anything runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import devices as registry
from ..cpu_clock import measure
from ..cores import beside_emulation
from ..fsutil import sha256_file
from ..manifest import Manifest, now_iso
from ..progress import Progress
from ..report import REPORT_HTML, REPORT_JSON
from . import fingerprint as fp
from ..vocabulary import BUILD_TARGET_DEVICES
from .config import BuildConfig, ModelSpec

EXPORT, QUANTIZE, CHECK = "export", "quantize", "check"


def mode_of(precision: str) -> str | None:
    """The quantization mode of a precision ("int8-static" -> "static"); None for fp32."""
    return None if precision == "fp32" else precision.split("-", 1)[1]


def quantize_modes(config: BuildConfig) -> tuple[str, ...]:
    return tuple(m for m in (mode_of(p) for p in config.precisions) if m is not None)


# --- records ------------------------------------------------------------------------------------
@dataclass
class StepRecord:
    """One step as summary.json lists it."""

    step: str
    reused: bool
    fingerprint: str
    seconds: float
    artifacts: tuple[str, ...] | None = None   # None: the check (it makes no artifact)
    cpu_seconds: float | None = None           # process tree CPU over the step (``cpu_clock.py``); None: not measured
    beside_emulation: bool = False             # emulated jobs ran in the background meanwhile (their CPU is in it)
    parts: tuple[dict[str, Any], ...] = ()     # quantize: wall and CPU seconds per recipe and format
    torch_threads: list[int] | None = None     # torch's thread counts when capped beside emulation (``cores.py``)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.step, "reused": self.reused}
        if self.artifacts is not None:
            out["artifacts"] = list(self.artifacts)
        return {**out, "fingerprint": self.fingerprint, "seconds": self.seconds, "cpu_seconds": self.cpu_seconds,
                "beside_emulation": self.beside_emulation, **({"parts": list(self.parts)} if self.parts else {}),
                **({"torch_threads": self.torch_threads} if self.torch_threads else {})}


@dataclass
class CheckState:
    """The check of one model: its fingerprint, whether report.json is reused, when it started."""

    fingerprint: dict[str, Any]
    reused: bool
    started: float | None = None


@dataclass
class ModelBuild:
    """One model's build: what ran, what it made, its check and its gate results."""

    spec: ModelSpec
    directory: Path
    status: str = "ok"                     # "ok" | "failed"
    error: str | None = None
    model_seconds: float | None = None     # building a built-in model (first use only)
    model_cpu_seconds: float | None = None  # its CPU (``cpu_clock.py``)
    model_beside_emulation: bool = False   # an earlier model's emulated jobs ran meanwhile
    model_torch_threads: list[int] | None = None  # torch's thread counts when capped beside emulation
    steps: list[StepRecord] = field(default_factory=list)
    stale_removed: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    check: CheckState | None = None
    report: dict[str, Any] | None = None   # report.json once the check finished
    architecture: str | None = None
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    gates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        """The model's entry in summary.json."""
        head = {"name": self.name, "source": self.spec.source, "status": self.status}
        if not self.ok:
            return {**head, "error": self.error, "directory": str(self.directory), "steps": [],
                    "artifacts": [], "gates": self.gates}
        return {**head, "directory": str(self.directory), "model_seconds": self.model_seconds,
                "model_cpu_seconds": self.model_cpu_seconds, "model_beside_emulation": self.model_beside_emulation,
                **({"model_torch_threads": self.model_torch_threads} if self.model_torch_threads else {}),
                "steps": [s.to_json() for s in self.steps], "stale_removed": self.stale_removed,
                "dropped": self.dropped, "architecture": self.architecture, "artifacts": self.artifacts,
                "gates": self.gates}


# --- work items ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkItem:
    """One step of one model, known from the config alone (nothing has run yet)."""

    model: str                       # ModelSpec name
    step: str                        # "export" | "quantize:MODE" | "check"
    artifacts: tuple[str, ...]       # made by the step; check: the artifacts it checks
    devices: tuple[str, ...] = ()    # check: where each artifact is checked

    @property
    def kind(self) -> str:
        return self.step.split(":", 1)[0]

    @property
    def mode(self) -> str | None:
        return self.step.split(":", 1)[1] if ":" in self.step else None

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        """check: the (artifact, device) pairs it measures."""
        return tuple((a, d) for a in self.artifacts for d in self.devices)


def _artifacts(config: BuildConfig, mode: str | None) -> tuple[str, ...]:
    if mode is None:
        from ..export import EXPORTERS

        return tuple(EXPORTERS[f][0] for f in config.formats)
    from ..quantize import RECIPES

    return tuple(RECIPES[(f, mode)].artifact for f in config.formats)


def work_items(config: BuildConfig, models: tuple[ModelSpec, ...] | None = None) -> list[WorkItem]:
    """Every step of the build, per model in config order: export, quantize:MODE..., check."""
    out: list[WorkItem] = []
    for spec in config.models if models is None else models:
        made = list(_artifacts(config, None))
        out.append(WorkItem(spec.name, EXPORT, tuple(made)))
        for mode in quantize_modes(config):
            names = _artifacts(config, mode)
            made += names
            out.append(WorkItem(spec.name, f"{QUANTIZE}:{mode}", names))
        out.append(WorkItem(spec.name, CHECK, tuple(made), tuple(config.devices.names)))
    return out


# --- reuse and stamps (written once) ------------------------------------------------------------
def reusable(manifest: Manifest | None, names: list[str] | tuple[str, ...], sha: str) -> bool:
    """Every expected artifact is recorded with this fingerprint and its file still matches its hash."""
    if manifest is None:
        return False
    for name in names:
        rec = manifest.artifacts.get(name)
        if not rec or (rec.get("build") or {}).get("fingerprint") != sha:
            return False
        path = manifest.artifact_path(name)
        if not path.is_file() or path.stat().st_size != rec.get("size_bytes") or sha256_file(path) != rec.get("sha256"):
            return False
    return True


def stamp(directory: Path, names: tuple[str, ...], step: str, print_: dict[str, Any]) -> None:
    """Record the step's fingerprint on each artifact it made (only after the step finished)."""
    manifest = Manifest.load(directory)
    kind = step.split(":", 1)[0]
    for name in names:
        manifest.artifacts[name]["build"] = {"step": kind, "fingerprint": print_["sha256"], "stamped": now_iso()}
    manifest.data.setdefault("build", {}).setdefault("fingerprints", {})[
        kind if kind == EXPORT else f"{kind}:{names[0]}"] = print_
    manifest.save()


def check_reused(directory: Path, print_: dict[str, Any]) -> bool:
    """report.json was made by a check with this fingerprint and is unchanged since."""
    manifest = Manifest.load(directory)
    recorded = (manifest.data.get("build") or {}).get("check") or {}
    report = directory / REPORT_JSON
    return (recorded.get("fingerprint") == print_["sha256"] and report.is_file()
            and sha256_file(report) == recorded.get("report_sha256"))


def stamp_check(directory: Path, print_: dict[str, Any]) -> None:
    manifest = Manifest.load(directory)
    manifest.data.setdefault("build", {})["check"] = {
        "fingerprint": print_["sha256"], "inputs": print_["inputs"],
        "report_sha256": sha256_file(directory / REPORT_JSON), "stamped": now_iso()}
    manifest.save()


# --- the steps ----------------------------------------------------------------------------------
@dataclass
class Context:
    """What the steps of one model share: the config, the model's directory, earlier fingerprints."""

    config: BuildConfig
    build: ModelBuild
    progress: Progress | None = None
    prints: dict[str, dict[str, Any]] = field(default_factory=dict)   # step -> fingerprint
    parts: list[dict[str, Any]] = field(default_factory=list)  # the running step's per-recipe timings
    running: Callable[[], int] = lambda: 0  # emulated jobs running in the background now (``cores.py``)
    # called with (the model, an artifact's file name) as soon as the export step wrote that artifact; True
    # when it started background jobs (they then ran beside the rest of the step)
    exported: Callable[[ModelBuild, str], bool] = lambda model, name: False
    started_jobs: bool = False  # the running step started background jobs (``exported``)

    def background(self) -> bool:
        """True while emulated jobs run in the background (a step's CPU then holds theirs too)."""
        return self.running() > 0

    def hand_over(self, artifact: str) -> None:
        """The export step wrote ``artifact``: tell ``exported``, and note whether it started jobs."""
        self.started_jobs |= bool(self.exported(self.build, artifact))

    @property
    def directory(self) -> Path:
        return self.build.directory


def check_settings(config: BuildConfig):
    from ..check import CheckSettings
    from ..check.screening import ScreeningSettings

    ev = config.evaluation
    return CheckSettings(devices=config.devices.names, data=ev.data, text_column=ev.text_column,
                         label_column=ev.label_column, limit=ev.limit, seq_len=config.seq_len,
                         threads=config.devices.threads, warmup=ev.warmup, runs=ev.runs, profile=ev.profile,
                         emulated=ScreeningSettings(method=ev.emulated_method, probe=ev.emulated_probe,
                                                    probe_fp32=ev.emulated_probe_fp32, safety=ev.emulated_safety),
                         emulated_limit=ev.emulated_limit, emulated_jobs=config.devices.emulated_jobs,
                         clock_ghz=config.devices.clock_ghz)


def _export_settings(config: BuildConfig):
    from ..export import ExportSettings

    return ExportSettings(formats=config.formats, seq_len=config.seq_len)


def _quantize_settings(config: BuildConfig, mode: str):
    from ..quantize import QuantizeSettings

    cal = config.calibration
    target, target_reason = build_target(config)
    return QuantizeSettings(mode=mode, calibration=cal.data, text_column=cal.text_column, samples=cal.samples,
                            method=cal.method, per_channel=cal.per_channel if mode == "static" else None,
                            seq_len=config.seq_len, formats=config.formats,
                            min_agreement=config.quantize.min_agreement, target=target,
                            target_reason=target_reason, max_drop=config.quantize.max_drop,
                            keep_best=config.quantize.keep_best, agreement_data=config.evaluation.data,
                            agreement_text_column=config.evaluation.text_column)


def build_target(config: BuildConfig) -> tuple[str, str]:
    """The ONNX dynamic preset a build quantizes for, and why (``[quantize] target``)."""
    from ..quantize import presets

    if config.quantize.target != BUILD_TARGET_DEVICES:
        return config.quantize.target, "[quantize] target"
    target = presets.target_for_devices(config.devices.names)
    return target, (f"build devices {', '.join(config.devices.names)}: the weakest int8 core's preset "
                    f"({' > '.join(presets.PREFERENCE)})")


def _export_print(ctx: Context, mode: str | None) -> dict[str, Any]:
    ctx.build.model_beside_emulation = ctx.background()
    with beside_emulation(ctx.running) as threads, \
            measure() as span:  # a built-in model is trained on first use, here: the "model" phase
        model_inputs = fp.model_inputs(ctx.build.spec.source, progress=ctx.progress)
    ctx.build.model_torch_threads = threads.describe()
    ctx.build.model_seconds = round(span.wall, 1)
    ctx.build.model_cpu_seconds = round(span.cpu, 1)
    return fp.fingerprint(EXPORT, model=model_inputs, settings=asdict(_export_settings(ctx.config)))


def _export_run(ctx: Context, mode: str | None) -> None:
    from ..export import export

    export(ctx.build.spec.source, ctx.directory, _export_settings(ctx.config), progress=ctx.progress,
           on_artifact=ctx.hand_over)
    stale_html = ctx.directory / REPORT_HTML  # derived from the previous export's check
    if stale_html.is_file():
        stale_html.unlink()


def _quantize_print(ctx: Context, mode: str | None) -> dict[str, Any]:
    assert mode is not None
    static = mode == "static"
    settings = asdict(_quantize_settings(ctx.config, mode))
    from ..quantize.agreement_texts import source_of

    origin, path, column = source_of(_quantize_settings(ctx.config, mode))
    return fp.fingerprint(QUANTIZE, export=ctx.prints[EXPORT]["sha256"],
                          settings={k: v for k, v in settings.items()
                                    if static or k not in ("calibration", "samples", "method")},
                          calibration_data=fp.file_digest(ctx.config.calibration.data) if static else None,
                          agreement_texts={"origin": origin, "column": column, "sha256": fp.file_digest(path)})


def _quantize_run(ctx: Context, mode: str | None) -> None:
    from ..quantize import quantize

    assert mode is not None
    quantize(ctx.directory, _quantize_settings(ctx.config, mode), progress=ctx.progress, timings=ctx.parts)


def _device_fingerprint(names: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for name in names:
        device = registry.get(name)
        info = device.identity()  # a board: its CPU, kernel, Python, glibc and runtime versions (probed)
        if device.emulated:
            from ..devices.arm.environment import default_env

            info["env"] = default_env().info()
        out[name] = info
    return out


def _check_print(ctx: Context, mode: str | None) -> dict[str, Any]:
    """Covers every artifact's hash, the settings, the data and the devices."""
    config = ctx.config
    manifest = Manifest.load(ctx.directory)
    return fp.fingerprint(
        CHECK, artifacts={n: r["sha256"] for n, r in manifest.artifacts.items()},
        settings={**check_settings(config).to_json(), "devices": list(config.devices.names),
                  "emulated_limit": config.evaluation.emulated_limit},
        data=fp.file_digest(config.evaluation.data), devices=_device_fingerprint(config.devices.names))


def _check_run(ctx: Context, mode: str | None) -> None:
    """The check on its own (``edgebert check``); a build pipelines it across models instead (runner)."""
    from ..check import check

    ctx.build.report = check(ctx.directory, check_settings(ctx.config), progress=ctx.progress)


@dataclass(frozen=True)
class Step:
    """A kind of step: its fingerprint and its run, both given the model's context and the mode."""

    name: str
    fingerprint: Callable[[Context, str | None], dict[str, Any]]
    run: Callable[[Context, str | None], None]


STEPS: dict[str, Step] = {s.name: s for s in (
    Step(EXPORT, _export_print, _export_run),
    Step(QUANTIZE, _quantize_print, _quantize_run),
    Step(CHECK, _check_print, _check_run),
)}


def run_artifact_step(ctx: Context, item: WorkItem, force: bool, hook: Callable[[str, str], None] | None) -> None:
    """Run (or reuse) one artifact-making step; the fingerprint is stamped only once it finished."""
    step = STEPS[item.kind]
    print_ = step.fingerprint(ctx, item.mode)  # not timed: a built-in model's first build is its own phase
    ctx.prints[item.step] = print_
    name = ctx.build.name
    ctx.parts, ctx.started_jobs = [], False
    busy = ctx.background()  # jobs are submitted between steps, or by this step itself (``exported``)
    with beside_emulation(ctx.running) as threads, measure() as span:
        reused = not force and reusable(Manifest.load_existing(ctx.directory), item.artifacts, print_["sha256"])
        if reused:
            _info(ctx, f"{name}: {item.step}: reused ({', '.join(item.artifacts)}; inputs unchanged)")
        else:
            _info(ctx, f"{name}: {item.step}: running")
            if hook:
                hook(name, item.step)
            step.run(ctx, item.mode)
            stamp(ctx.directory, item.artifacts, item.step, print_)
    beside = busy or ctx.started_jobs
    ctx.build.steps.append(StepRecord(item.step, reused, print_["sha256"], round(span.wall, 2), item.artifacts,
                                      round(span.cpu, 2), beside, tuple(ctx.parts), threads.describe()))


def _info(ctx: Context, message: str) -> None:
    if ctx.progress:
        ctx.progress.info(message)


__all__ = ["CHECK", "EXPORT", "QUANTIZE", "STEPS", "CheckState", "Context", "ModelBuild", "Step", "StepRecord",
           "WorkItem", "check_reused", "check_settings", "mode_of", "reusable", "run_artifact_step", "stamp",
           "stamp_check", "work_items"]
