"""Time `edgebert build` as a new user meets it: its own empty cache, a fresh output directory.

    python benchmarks/bench_build.py                       # the default build on a fresh machine (15+ min)
    python benchmarks/bench_build.py --cache ~/.cache/edgebert   # "cached": built-in models and ARM env reused
    python benchmarks/bench_build.py --config edgebert.toml --out /tmp/b   # another build config

Runs ``python -m edgebert build [CONFIG] -o OUT`` in a subprocess with ``EDGEBERT_CACHE`` pointing at an
empty temporary directory (or at ``--cache``), so nothing a previous build made is reused; installing
edgebert is not part of the time. Then prints, as Markdown: the date, the machine (CPU model, cores),
the build's phase table (``summary.json`` ``phase_table``: wall and CPU seconds per phase, the same rows
as the report's "Where the time went"), the total wall time measured here, the CPU time and the peak RSS
of the build's processes (``getrusage(RUSAGE_CHILDREN)``: the largest single process, workers and QEMU
included once they are reaped). The documentation quotes this output for the default build's timing.
Exit code: the build's (0 every gate passed, 1 a gate or artifact failed, 2 usage).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (x86 ``model name``; ARM ``Hardware``/``CPU part``), else platform."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for key in ("model name", "Hardware", "CPU part"):
        for line in text.splitlines():
            if line.split(":", 1)[0].strip() == key and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> dict:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "usable_cores": usable,
            "system": f"{platform.system()} {platform.release()} {platform.machine()}",
            "python": platform.python_version()}


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _seconds(value) -> str:
    return "—" if value is None else f"{value:.1f}"


def phase_lines(summary: dict) -> list[str]:
    """The phase table as Markdown, the rows the build report shows (``edgebert/report/phases.py``)."""
    from edgebert.report import phases

    rows = phases.table(summary)
    if not rows:
        return ["(summary.json has no phase table)"]
    escape = lambda cell: str(cell).replace("|", "\\|")  # noqa: E731
    return (["| " + " | ".join(phases.HEADERS) + " |",
             "|" + "|".join("---:" if h in ("Wall s", "CPU s") else "---" for h in phases.HEADERS) + "|"]
            + ["| " + " | ".join(escape(c) for c in row) + " |" for row in rows])


def run(config: Path | None, cache: Path, out: Path) -> dict:
    """Run the build in a subprocess; wall time, children's CPU and peak RSS measured here."""
    cmd = [sys.executable, "-m", "edgebert", "build", *([str(config)] if config else []), "-o", str(out)]
    env = {**os.environ, "EDGEBERT_CACHE": str(cache)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"command": cmd, "returncode": proc.returncode, "stderr_tail": proc.stderr.splitlines()[-20:],
            "wall_seconds": wall,
            "cpu_seconds": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "peak_rss_bytes": after.ru_maxrss * 1024}  # Linux: kilobytes


def report(result: dict, summary: dict | None, *, config: Path | None, cache: Path, cache_case: str,
           when: datetime.datetime) -> list[str]:
    m = machine()
    commit = git_commit()
    lines = [f"# edgebert build, {cache_case}",
             "",
             f"- date: {when.strftime('%Y-%m-%d %H:%M UTC')}",
             f"- machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable); {m['system']}, "
             f"Python {m['python']}",
             f"- edgebert: {_version()}" + (f" (git {commit})" if commit else ""),
             f"- config: {config if config else 'the built-in default'}",
             f"- cache: {cache} ({cache_case})",
             f"- command: `EDGEBERT_CACHE={cache} python {' '.join(result['command'][1:])}` (installation not timed)",
             f"- exit code: {result['returncode']}"
             + (f" ({summary['status']}: {summary['gates']['checked']} gate checks, {summary['gates']['failed']} "
                f"failed)" if summary else " (no summary.json written)"),
             ""]
    if summary:
        lines += phase_lines(summary) + [""]
    lines += [f"- total wall: {result['wall_seconds']:.1f} s"
              + (f" (the build's own summary: {summary['seconds']:.1f} s)" if summary else ""),
              f"- CPU: {result['cpu_seconds']:.1f} s (user + system of the build and every process it started)",
              f"- peak RSS: {result['peak_rss_bytes'] / 1e9:.2f} GB (the largest single process)"]
    if result["returncode"] != 0 and result["stderr_tail"]:
        lines += ["", "Last lines of the build's stderr:", "", "```", *result["stderr_tail"], "```"]
    return lines


def _version() -> str:
    try:
        from edgebert import __version__
    except ImportError:
        return "?"
    return __version__


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=None, help="build config (TOML) [default: the built-in default]")
    ap.add_argument("--cache", type=Path, default=None,
                    help="EDGEBERT_CACHE to use and keep (the 'cached' case) [default: an empty temp dir, removed]")
    ap.add_argument("--out", type=Path, default=None,
                    help="output directory, must be empty or absent [default: a temp dir, removed]")
    args = ap.parse_args(argv)
    if args.out is not None and args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        print(f"bench_build: --out {args.out} is not empty: a timing needs a fresh output directory", file=sys.stderr)
        return 2
    if args.config is not None and not args.config.is_file():
        print(f"bench_build: --config {args.config}: no such file", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench_build-") as tmp:
        tmp_path = Path(tmp)
        if args.cache is None:
            cache, cache_case = tmp_path / "cache", "fresh: empty cache"
            cache.mkdir()
        else:
            cache = args.cache.resolve()
            cached = cache.is_dir() and any(cache.iterdir())
            cache_case = "cached: reusing this cache" if cached else "fresh: empty cache (kept)"
            cache.mkdir(parents=True, exist_ok=True)
        out = (args.out or tmp_path / "edgebert-build").resolve()
        config = args.config.resolve() if args.config else None
        when = datetime.datetime.now(datetime.timezone.utc)
        result = run(config, cache, out)
        summary_file = out / "summary.json"
        summary = json.loads(summary_file.read_text(encoding="utf-8")) if summary_file.is_file() else None
        print("\n".join(report(result, summary, config=args.config, cache=cache, cache_case=cache_case,
                               when=when)))
        if args.out is None:
            print(f"\n(output directory {out} removed; --out keeps it)")
    return result["returncode"] if summary else (result["returncode"] or 1)


if __name__ == "__main__":
    sys.exit(main())
