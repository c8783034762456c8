"""The ``edgebert`` command: a thin Click layer that parses options into settings and calls the library."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from . import __version__
from .errors import EdgebertError, machine_fault, os_error_in
from .vocabulary import ARCHITECTURES, CALIBRATION_METHODS, QUANT_MODES, QUANTIZE_TARGETS, SCREENING_METHODS

SUPPORTED_MODELS = f"{', '.join(ARCHITECTURES)}, a local Hugging Face model directory, or a hub id"


def _fail(message: str, code: int) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def handle_errors(func):
    """Turn library errors into one line on stderr and an exit code (2 usage, 1 runtime).

    The machine's own faults (disk full, read-only or missing location, permission denied) are one line
    too, naming the path and the cause, exit 1: writes are atomic, so nothing half-written remains.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except EdgebertError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted; no partial artifact was kept", 130)
        except MemoryError:
            _fail("out of memory; try fewer --samples or a smaller --seq-len", 1)
        except Exception as exc:  # an OS error, possibly wrapped by torch/onnx/litert; anything else is a bug
            fault = os_error_in(exc)
            if fault is None:
                raise
            where = next((kwargs[k] for k in OUTPUT_PARAMS if kwargs.get(k) is not None), None)
            _fail(machine_fault(fault, where), 1)

    return wrapper


class _ThreadsParam(click.ParamType):
    """``--threads``: a whole number >= 1, or ``big`` (one per big core of a board)."""

    name = "N|big"

    def convert(self, value, param, ctx):
        if value == "big" or isinstance(value, int):
            return value
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = 0
        if number < 1:
            self.fail(f"{value!r} is not a number of threads >= 1 nor 'big'", param, ctx)
        return number


# The parameter that names a command's output location (named when an OS error carries no path).
OUTPUT_PARAMS = ("output", "directory", "out")


def _progress():
    from .progress import Progress

    return Progress()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgebert")
def main() -> None:
    """Export DistilBERT/SqueezeBERT classifiers to ONNX, quantize them to int8, and check every
    artifact's accuracy and latency per device.

    \b
    edgebert build                 # the whole matrix, checked, gated and reported
    edgebert build edgebert.toml   # a config of your own
    edgebert build edgebert.toml --shard 1/2 -o part-1   # one CI job's share
    edgebert build merge out part-1 part-2               # the parts as one build
    edgebert export distilbert -o out/db
    edgebert quantize out/db --mode dynamic
    edgebert quantize out/db --mode static
    edgebert check out/db
    edgebert report out/db
    """
    from . import noise

    noise.install()  # before any command imports transformers / litert-torch (torchao)


@main.command()
@click.argument("model")
@click.option("-o", "--output", "output", type=click.Path(path_type=Path), required=True,
              help="Artifact directory to create (holds manifest.json, the tokenizer and the artifacts).")
@click.option("--format", "formats", multiple=True, default=("onnx",), show_default=True,
              help="Format to export (repeatable).")
@click.option("--seq-len", type=click.IntRange(min=2), default=128, show_default=True,
              help="Longest sequence used to validate the export (and the fixed length of static-shape formats).")
@click.option("--atol", type=click.FloatRange(min=0, min_open=True), default=1e-4, show_default=True,
              help="Maximum allowed |logit difference| against PyTorch.")
@handle_errors
def export(model: str, output: Path, formats: tuple[str, ...], seq_len: int, atol: float) -> None:
    from .export import ExportSettings, export as run_export

    manifest = run_export(model, output, ExportSettings(formats=tuple(formats), seq_len=seq_len, atol=atol),
                          progress=_progress())
    for name, rec in manifest.artifacts.items():
        val = rec["validation"]
        click.echo(f"{output / name}: {rec['size_bytes'] / 1e6:.1f} MB, max |Δlogit| vs PyTorch "
                   f"{val['max_abs_diff']:.2e} over {len(val['cases'])} shapes (atol {val['atol']:g})")


export.help = f"Export MODEL ({SUPPORTED_MODELS}) to the artifact directory OUTPUT, validated against PyTorch."


@main.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--mode", type=click.Choice(QUANT_MODES), required=True,
              help="dynamic: int8 weights, activations quantized at run time; static: int8 QDQ calibrated on data.")
@click.option("--calibration", type=click.Path(path_type=Path), default=None,
              help="CSV/TSV/JSONL with a text column for static calibration [default: built-in calibration split].")
@click.option("--text-column", default="text", show_default=True, help="Text column of --calibration.")
@click.option("--samples", type=click.IntRange(min=1), default=256, show_default=True,
              help="Calibration samples (static).")
@click.option("--method", type=click.Choice(CALIBRATION_METHODS), default=CALIBRATION_METHODS[0],
              show_default=True, help="Calibration method (static).")
@click.option("--per-channel/--per-tensor", default=None,
              help="Weight scales per output channel or one per tensor [default: the --target preset's choice "
                   "for dynamic, per-channel for static].")
@click.option("--seq-len", type=click.IntRange(min=2), default=128, show_default=True,
              help="Calibration sequence length (ONNX; a TFLite model calibrates at its fixed length).")
@click.option("--format", "formats", multiple=True,
              help="Format to quantize (repeatable) [default: every fp32 format in DIRECTORY].")
@click.option("--min-agreement", type=click.FloatRange(0, 1), default=0.9, show_default=True,
              help="Keep an int8 model only if its predictions agree with fp32 on at least this fraction of the "
                   "confident texts (fp32 margin above the int8 noise; near-ties are reported apart) among the "
                   "first 200 of --data, else --calibration, else the built-in validation texts; 0 turns the "
                   "check off.")
@click.option("--target", type=click.Choice(QUANTIZE_TARGETS), default=QUANTIZE_TARGETS[0],
              show_default=True, help="CPU the dynamic int8 ONNX recipe is tuned for (auto: this machine).")
@click.option("--max-drop", type=float, default=None, metavar="POINTS",
              help="Accuracy goal: points of accuracy int8 may lose vs fp32 on the goal texts; above it the most "
                   "sensitive layers go back to float until it holds (not met: exit 1, no file).")
@click.option("--keep-best", is_flag=True, help="With --max-drop: keep the best model found even if the goal is not met.")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Your labelled CSV/TSV/JSONL: the int8 vs fp32 agreement texts, and the --max-drop goal's "
                   "(--text-column, --label-column) [default: built-in validation split].")
@click.option("--label-column", default="label", show_default=True, help="Label column of --data.")
@click.option("--max-float-layers", "max_float", type=int, default=None, metavar="N",
              help="With --max-drop: return at most N layers to float (bounds the size/latency cost) "
                   "[default: all but one].")
@handle_errors
def quantize(directory: Path, mode: str, calibration: Path | None, text_column: str, samples: int,
             method: str, per_channel: bool | None, seq_len: int, formats: tuple[str, ...], min_agreement: float,
             target: str, max_drop: float | None, keep_best: bool, data: Path | None, label_column: str,
             max_float: int | None) -> None:
    """Quantize the fp32 artifacts in DIRECTORY to int8 (adds model.int8-<mode>.onnx / .tflite).

    Each int8 model is compared with its fp32 parent on your texts (--data, else --calibration) or the
    built-in validation texts, and kept only if their predictions agree often enough on the texts where
    fp32 is confident beyond the int8 noise (--min-agreement); otherwise exit code 1 and no file.
    """
    from .manifest import Manifest
    from .quantize import QuantizeSettings, quantize as run_quantize

    Manifest.load(directory)  # a clear error before any heavy import
    settings = QuantizeSettings(mode=mode, calibration=calibration, text_column=text_column, samples=samples,
                                method=method, per_channel=per_channel, seq_len=seq_len,
                                formats=tuple(formats) or None, min_agreement=min_agreement, target=target,
                                max_drop=max_drop, keep_best=keep_best, data=data, label_column=label_column,
                                max_float=max_float)
    names = run_quantize(directory, settings, progress=_progress())
    manifest = Manifest.load(directory)
    for name in names:
        rec = manifest.artifacts[name]
        parent = manifest.artifacts.get(rec.get("parent") or "", {})
        ratio = parent.get("size_bytes", 0) / rec["size_bytes"] if parent else float("nan")
        ops = ", ".join(f"{k}×{v}" for k, v in rec["quantization"].get("quantized_ops", {}).items())
        click.echo(f"{directory / name}: {rec['size_bytes'] / 1e6:.1f} MB ({ratio:.1f}× smaller); int8 ops: {ops}")
        if "agreement" in rec.get("validation", {}):
            from .quantize.validate import summary as agreement_summary

            click.echo(f"  {agreement_summary(rec['validation'])}")
        goal = rec["quantization"].get("accuracy_goal")
        if goal:
            from .goal_summary import summary

            click.echo(f"  {summary(goal)}")


@main.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--device", "devices", multiple=True, default=("desktop",), show_default=True,
              help="Device to check on (repeatable; see `edgebert devices list`).")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Labelled CSV/TSV/JSONL [default: built-in test split].")
@click.option("--text-column", default="text", show_default=True)
@click.option("--label-column", default="label", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Use only the first N examples [default: all; 1000 when an emulated ARM device is checked].")
@click.option("--seq-len", type=click.IntRange(min=2), default=128, show_default=True,
              help="Sequence length for latency (accuracy inputs are truncated to it).")
@click.option("--threads", type=_ThreadsParam(), default=None,
              help="Runtime threads (stated in every result): N, or 'big' = one per core of a board's biggest "
                   "cluster (other devices: their default) [default: each device's default, 1].")
@click.option("--runs", type=click.IntRange(min=1), default=50, show_default=True, help="Timed latency runs.")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="Untimed warm-up runs.")
@click.option("--profile", is_flag=True,
              help="Also record the slowest operators of each artifact (ONNX Runtime's profiler, in a separate "
                   "session after the timed runs; native devices only).")
@click.option("--emulated", "emulated_method", type=click.Choice(SCREENING_METHODS), default=SCREENING_METHODS[0],
              show_default=True,
              help="Emulated devices: 'screened' runs a random probe and every example near the decision "
                   "boundary under emulation and carries the desktop prediction over for the rest (the report "
                   "states the bound); 'all' runs every example under emulation.")
@click.option("--emulated-limit", type=click.IntRange(min=1), default=None,
              help="Emulated devices are judged on the first N of the examples [default: all of them].")
@click.option("--probe", type=click.IntRange(min=1), default=32, show_default=True,
              help="Random examples emulated per int8 artifact (screened; fp32 artifacts use 4).")
@click.option("--safety", type=click.FloatRange(min=1), default=1.5, show_default=True,
              help="Screened: drift bound = SAFETY x the largest drift measured under emulation.")
@click.option("--jobs", type=click.IntRange(min=1), default=2, show_default=True,
              help="Emulated jobs at once (each QEMU uses one core).")
@handle_errors
def check(directory: Path, devices: tuple[str, ...], data: Path | None, text_column: str, label_column: str,
          limit: int | None, seq_len: int, threads: int | str | None, runs: int, warmup: int, profile: bool,
          emulated_method: str, emulated_limit: int | None, probe: int, safety: float, jobs: int) -> None:
    """Measure accuracy, agreement with fp32, latency, memory and size of every artifact in DIRECTORY.

    On emulated ARM devices (`edgebert devices list`; run `edgebert devices setup` once) the same
    worker runs under QEMU: the report gives accuracy, drift against the desktop run of the same
    artifact (added automatically) and guest instructions per inference instead of latency.
    """
    from .check import CheckSettings, check as run_check
    from .check.screening import ScreeningSettings
    from .manifest import Manifest
    from .report import render_markdown

    Manifest.load(directory)
    settings = CheckSettings(devices=tuple(devices), data=data, text_column=text_column,
                             label_column=label_column, limit=limit, seq_len=seq_len, threads=threads,
                             runs=runs, warmup=warmup, profile=profile,
                             emulated=ScreeningSettings(method=emulated_method, probe=probe, safety=safety),
                             emulated_limit=emulated_limit, emulated_jobs=jobs)
    report = run_check(directory, settings, progress=_progress())
    click.echo(render_markdown(directory))
    failed = [r for r in report["records"] if r.get("status") != "ok"]
    if failed:
        _fail(f"{len(failed)} of {len(report['records'])} checks failed: "
              + "; ".join(f"{r['artifact']} on {r['device']}: {r.get('error')}" for r in failed), 1)


class _ShardType(click.ParamType):
    """``K/N``: shard K of N (edgebert.pipeline.shard.parse; a bad value is a one-line usage error)."""

    name = "K/N"

    def convert(self, value, param, ctx):
        from .errors import UsageError
        from .pipeline.shard import ShardSpec, parse

        if isinstance(value, ShardSpec):
            return value
        try:
            return parse(value)
        except UsageError as exc:
            self.fail(str(exc).removeprefix(f"--shard {value!r}: ").removeprefix(f"--shard {value}: "), param, ctx)


class _BuildCommand(click.Command):
    """``edgebert build [CONFIG]`` as before, and ``edgebert build merge OUT PART_DIR...``: a first
    argument ``merge`` runs the merge command (a config file named ``merge``: write ``./merge``)."""

    def make_context(self, info_name, args, parent=None, **extra):
        if args and args[0] == "merge":
            return build_merge.make_context(f"{info_name} merge", list(args[1:]), parent=parent, **extra)
        return super().make_context(info_name, args, parent=parent, **extra)

    def format_epilog(self, ctx, formatter):
        super().format_epilog(ctx, formatter)
        with formatter.section("Merging shards"):
            formatter.write_text("edgebert build merge OUT PART_DIR...   (see `edgebert build merge --help`)")


def _finish_build(summary: dict, as_json: bool, write_baseline) -> None:
    """Print a build's (or merged build's) summary and exit with its gate verdict."""
    import json

    from .pipeline import exit_code

    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        _echo_summary(summary, write_baseline)
    code = exit_code(summary)
    if code:
        sys.exit(code)


def _echo_summary(summary: dict, write_baseline: Path | None) -> None:
    from .pipeline.runner import SUMMARY_NAME
    from .report import REPORT_HTML, REPORT_MD

    out = Path(summary["output"])
    for m in summary["models"]:
        if m["status"] != "ok":
            click.echo(f"{m['name']}: FAILED to build: {m.get('error')}")
            continue
        built = [s["step"] for s in m["steps"] if not s["reused"]]
        click.echo(f"{m['name']}: {len(m['artifacts'])} artifacts in {m['directory']} "
                   f"({'built/checked: ' + ', '.join(built) if built else 'all reused'})")
    for failure in summary["gates"]["failures"]:
        click.echo(f"gate failed: {failure['message']}")
    vs = summary.get("baseline")
    if vs:
        new = sum(r["status"] == "new" for r in vs["records"])
        click.echo(f"baseline {vs['file']}: {len(vs['records']) - new} records compared, {new} new, "
                   f"{len(vs['missing'])} missing")
    if write_baseline is not None:
        click.echo(f"wrote baseline {write_baseline}")
    shard = summary.get("shard")
    if shard:
        click.echo(f"shard {shard['spec']}: {len(shard['items'])} (model, device) pairs: "
                   + (", ".join(f"{m}@{d}" for m, d in shard["items"]) or "nothing to do")
                   + "; combine the parts with `edgebert build merge OUT PART_DIR...`")
    merged = summary.get("merged")
    if merged:
        click.echo(f"merged {len(merged['parts'])} parts: " + ", ".join(
            f"{p['shard']} ({p['directory']})" for p in merged["parts"]))
    click.echo(f"{summary['status'].upper()}: {summary['gates']['checked']} gate checks, "
               f"{summary['gates']['failed']} failed; reports: {out / REPORT_MD}, {out / REPORT_HTML}, "
               f"{out / SUMMARY_NAME} ({summary['seconds']:.0f}s)")


@main.command(cls=_BuildCommand)
@click.argument("config", type=click.Path(path_type=Path), required=False)
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Output directory [default: the config's build.output, else edgebert-build].")
@click.option("--force", is_flag=True, help="Rebuild and re-check everything, even what is up to date.")
@click.option("--shard", type=_ShardType(), default=None,
              help="Do only shard K of N of the (model, device) pairs (e.g. 2/4, one CI job each); combine the "
                   "parts with `edgebert build merge OUT PART_DIR...`.")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json on stdout (progress stays on stderr).")
@click.option("--no-setup", is_flag=True,
              help="Do not set up the emulated-ARM environment when a device needs it: fail and say how.")
@click.option("--baseline", "baseline", type=click.Path(path_type=Path), default=None,
              help="Gate regressions against this baseline file (instructions +2%, accuracy -0.5 pt, size +2% by "
                   "default; see the config's [baseline] table).")
@click.option("--write-baseline", "write_baseline", type=click.Path(path_type=Path), default=None,
              help="Write this build's baseline (JSON to commit) to this file.")
@click.option("--max-latency-increase", type=click.FloatRange(min=0), default=None,
              help="With --baseline: also gate desktop latency p50 (fraction, e.g. 0.10) [default: the config's "
                   "baseline.max_latency_increase, else information only].")
@handle_errors
def build(config: Path | None, output: Path | None, force: bool, shard, as_json: bool, no_setup: bool,
          baseline: Path | None, write_baseline: Path | None, max_latency_increase: float | None) -> None:
    """Build, check and gate the whole matrix of CONFIG (TOML; default: the built-in config).

    \b
    One artifact directory per model under the output dir, then summary.json, report.md and
    report.html there. Up-to-date artifacts and checks are reused (--force rebuilds). Exit code 0 when
    every gate holds, 1 when a gate fails or an artifact does not run, 2 for usage errors.

    \b
    CI across N jobs: `edgebert build CONFIG --shard K/N -o part-K` in each job (its exit code gates
    its own share), then `edgebert build merge OUT part-1 ... part-N` for the whole build's reports.
    """
    import dataclasses

    from .pipeline import build as run_build, default_config, load_config

    cfg = load_config(config) if config is not None else default_config()
    if no_setup:
        cfg = dataclasses.replace(cfg, devices=dataclasses.replace(cfg.devices, setup=False))
    if max_latency_increase is not None:
        cfg = dataclasses.replace(cfg, baseline=dataclasses.replace(cfg.baseline,
                                                                    max_latency_increase=max_latency_increase))
    summary = run_build(cfg, output, force=force, progress=_progress(), baseline=baseline,
                        write_baseline=write_baseline, shard=shard)
    _finish_build(summary, as_json, write_baseline)


@click.command("merge")
@click.argument("out", type=click.Path(path_type=Path))
@click.argument("parts", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="PART_DIR...")
@click.option("--json", "as_json", is_flag=True, help="Print the merged summary.json on stdout.")
@click.option("--baseline", "baseline", type=click.Path(path_type=Path), default=None,
              help="Gate regressions of the merged build against this baseline file (as `edgebert build --baseline`).")
@click.option("--write-baseline", "write_baseline", type=click.Path(path_type=Path), default=None,
              help="Write the merged build's baseline (JSON to commit) to this file.")
@click.option("--max-latency-increase", type=click.FloatRange(min=0), default=None,
              help="With --baseline: also gate desktop latency p50 (fraction) [default: the config's].")
@handle_errors
def build_merge(out: Path, parts: tuple[Path, ...], as_json: bool, baseline: Path | None,
                write_baseline: Path | None, max_latency_increase: float | None) -> None:
    """Combine the parts of `edgebert build CONFIG --shard K/N` (one PART_DIR per K) into OUT.

    \b
    OUT gets every model directory, summary.json, report.md and report.html, and the exit code is the
    gate verdict of the whole build (0 pass, 1 a gate failed), as an unsharded build would give. A
    missing shard, a shard given twice, or parts from different configs, edgebert/package versions or
    device fingerprints are refused with one line (exit 2) before anything is written.
    """

    from .pipeline.merge import merge

    summary = merge(out, list(parts), baseline=baseline, write_baseline=write_baseline,
                    max_latency_increase=max_latency_increase)
    _finish_build(summary, as_json, write_baseline)


@main.command()
@click.argument("directory", type=click.Path(path_type=Path))
@handle_errors
def report(directory: Path) -> None:
    """Render DIRECTORY/report.md from report.json (written by `edgebert check`)."""
    from .report import write_report

    for path in write_report(directory):
        click.echo(f"wrote {path}")


@main.group()
def devices() -> None:
    """Devices that `check` can measure on."""


@devices.command("list")
def devices_list() -> None:
    """List the registered devices, what each stands for, and whether it is ready."""
    from . import devices as registry

    for name in registry.names():
        device = registry.get(name)
        state = device.unavailable_reason()
        click.echo(f"{name:14s} {device.description}")
        runtimes = ", ".join(f"{fmt}: {rt}" for fmt, rt in device.runtimes.items())
        extra = f"threads {device.default_threads} by default; {runtimes}"
        if device.emulated:
            extra += "; not set up: run `edgebert devices setup`" if state else "; ready"
        click.echo(f"{'':14s} {extra}")
    click.echo(f"{'ssh://USER@HOST[:PORT]':14s} a real 64-bit ARM board over SSH (or ssh:ALIAS, a Host of your ssh "
               f"config; or a board named in a build config): probed, provisioned and measured on first use")


@devices.command("setup")
@click.option("--check", "verify", is_flag=True,
              help="Verify the environment instead: run the emulated Python per CPU model and print versions.")
@click.option("--force", is_flag=True, help="Rebuild every step, even those already done.")
@handle_errors
def devices_setup(verify: bool, force: bool) -> None:
    """Build the emulated-ARM environment under the edgebert cache (idempotent, resumable).

    \b
    Debian bookworm arm64 Python 3.11 sysroot, aarch64 wheels of numpy/onnxruntime/ai-edge-litert
    (host versions), QEMU 10 user mode (bookworm-backports), the plugin-capable QEMU 7.2 (bookworm)
    and QEMU 10 user mode built with plugins from Debian's source (~3 min; for cortex-a55/a710,
    which 7.2 lacks), with edgebert's instruction-counting plugin compiled with gcc, and llvm-mca/llvm-mc
    from Debian's llvm-19 (the cycle model behind estimated ms). No root needed.
    """
    from .devices.arm import setup as arm_setup

    env = arm_setup.default_env()
    if verify:
        rows = arm_setup.check_environment(env)
        bad = 0
        for row in rows:
            if row["ok"]:
                click.echo(f"{row['device']:12s} ok: {row['machine']} Python {row['python']}, numpy {row['numpy']}, "
                           f"onnxruntime {row['onnxruntime']}, ai-edge-litert {row['ai_edge_litert']}; "
                           f"CPU part {row['cpu_part']} {row['features'] or '(no dotprod/i8mm/sve)'}; "
                           f"instruction counting: {row['counting']}")
            else:
                bad += 1
                click.echo(f"{row['device']:12s} FAILED: {row['error']}")
        if bad:
            _fail(f"{bad} of {len(rows)} CPU models failed the check", 1)
        return
    summary = arm_setup.setup(env, progress=_progress(), force=force, verify=True)
    done = "built " + ", ".join(summary["ran"]) if summary["ran"] else "already set up"
    click.echo(f"{summary['root']}: {done} ({summary['seconds']}s, {summary['size_mb']} MB); QEMU "
               f"{summary.get('qemu_version')}, counting QEMU {summary.get('plugin_qemu72_version')} and "
               f"{summary.get('plugin_qemu_version') or '(10: not built)'}; cycle model llvm-mca "
               f"{summary.get('llvm_version') or '(not set up)'}; wheels "
               + ", ".join(f"{k} {v}" for k, v in (summary.get("wheels") or {}).items()))
    for note in summary.get("wheel_notes") or ():
        click.echo(f"note: {note}")


if __name__ == "__main__":
    main()
