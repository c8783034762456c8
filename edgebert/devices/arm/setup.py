"""``edgebert devices setup``: build the emulated-ARM environment under the edgebert cache.

Everything lands in ``cache_dir()/arm`` and needs no root (only ``apt-get``/``dpkg``/``pip``/``gcc``
as an ordinary user, with private apt state):

- ``sysroot/``: Debian bookworm **arm64** packages unpacked with ``dpkg -x``: the dependency closure
  of ``python3.11`` plus ``libstdc++6`` and ``libgomp1`` (numpy and the runtimes need them).
- ``site/``: the aarch64 wheels of numpy, onnxruntime and ai-edge-litert, at the host's versions.
- ``qemu/qemu-aarch64``: QEMU 10 user mode (static, from bookworm-backports ``qemu-user``): runs the
  worker for accuracy and drift; it emulates ``/proc/cpuinfo`` per ``-cpu`` model.
- ``qemu-plugin/``: bookworm's QEMU 7.2 user mode (dynamic, loads TCG plugins; ``qemu-aarch64``, and
  ``qemu-x86_64`` for the estimator's check on this host), the host libraries it links, and ``libinsn_count.so``, our instruction and instruction-class counter
  (``edgebert/devices/qemu/insn_count.c``) compiled against that QEMU's ``qemu-plugin.h``: counts
  cortex-a53/a72/a76 and neoverse-n1.
- ``qemu-plugin10/`` (last step, only when a CPU model 7.2 lacks is asked for: cortex-a55/a710): QEMU 10
  user mode built from Debian trixie's qemu 10.0 source with plugin support (Debian ships QEMU 10 user
  mode static-only, which cannot load plugins; see ``qemu_build.py``), its glib libraries and the counter.
- ``llvm/``: ``llvm-mca`` and ``llvm-mc`` from Debian's ``llvm-19`` (bookworm; unpacked, with the
  libraries they link): the cycle model that turns the executed blocks into estimated milliseconds
  (``edgebert/devices/estimate``). LLVM >= 17 because its Neoverse-N1 model is the stand-in for the A76.
- ``prefix/MODEL/``: per CPU model, the sysroot plus a ``proc/cpuinfo`` captured from QEMU 10's
  emulation of that model (the counting runs use ``-L prefix/MODEL``, so both QEMUs see the same).

Each step writes into a temporary directory, renames it into place, then writes its stamp
(``stamps/STEP.json``, holding the step's inputs, e.g. versions): an interrupted run resumes at the
first step without a matching stamp; a finished one does nothing.

Only the installer and its self-check (``devices setup --check``) live here: what a run needs from the
finished environment is ``environment.py``, so ``check`` never imports the installer.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import EdgebertError
from . import content, qemu_build
from .catalog import CPU_MODELS
from .environment import (
    MARKER_SYSCALL,
    PYTHON,
    ArmEnv,
    default_env,
    guest_env,
    plugin_command,
    plugin_host_env,
    read_counts,
)

DEBIAN = "http://deb.debian.org/debian"
SUITE = "bookworm"
BACKPORTS = "bookworm-backports"
# QEMU 7.2's dynamic qemu-aarch64 links these; the rest (glib, gnutls, zlib, libc) are on any host.
PLUGIN_QEMU_LIBS = ("libcapstone4", "liburing2", "libnuma1")
LLVM_MAJOR = "19"  # bookworm main; >= 17 has the Neoverse-N1 (A76-derived) and N2 scheduling models
LLVM_PACKAGES = (f"llvm-{LLVM_MAJOR}", f"libllvm{LLVM_MAJOR}", "libz3-4", "libxml2", "libicu72", "libedit2",
                 "libbsd0", "libmd0", "libtinfo6")
LLVM_TOOLS = ("llvm-mca", "llvm-mc")
QEMU_SOURCE_SUITE = "trixie"  # backports' qemu source is not on the mirror; trixie's is the same 10.0 line
SYSROOT_PACKAGES = (PYTHON, "libstdc++6", "libgomp1")
WHEEL_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_27_aarch64",
                   "manylinux_2_28_aarch64")
RUNTIME_WHEELS = ("numpy", "onnxruntime", "ai-edge-litert")
PLUGIN_SOURCE = Path(__file__).resolve().parents[1] / "qemu" / "insn_count.c"  # package data of edgebert.devices
PROJECT_ROOT = Path(__file__).resolve().parents[3]


class SetupError(EdgebertError):
    """A setup step failed (one line: what and why)."""


# --- helpers ------------------------------------------------------------------------------------
def _run(cmd: list[str], what: str, cwd: Path | None = None, env: dict[str, str] | None = None,
         timeout: float = 1800) -> str:
    """Run a command; on failure raise a one-line SetupError naming ``what`` and the tool's reason."""
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise SetupError(f"{what} failed: {cmd[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise SetupError(f"{what} failed: timed out after {timeout:.0f}s") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + "\n" + proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith(("E:", "ERROR", "error", "Err:"))]
        reason = (errors or lines or [f"exit status {proc.returncode}"])[-1 if not errors else 0]
        raise SetupError(f"{what} failed: {reason[:300]}")
    return proc.stdout


class _Apt:
    """apt-get/apt-cache with private state (lists, cache, sources): no root, host apt untouched."""

    def __init__(self, directory: Path, arch: str, sources: list[str]):
        self.dir = directory
        self.arch = arch
        (directory / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (directory / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        (directory / "sources.list").write_text("\n".join(sources) + "\n", encoding="utf-8")

    def options(self) -> list[str]:
        d = self.dir
        return [f"-oAPT::Architecture={self.arch}", f"-oAPT::Architectures={self.arch}",
                f"-oDir::State::Lists={d / 'lists'}", f"-oDir::Cache={d / 'cache'}",
                "-oDir::State::status=/dev/null", f"-oDir::Etc::SourceList={d / 'sources.list'}",
                "-oDir::Etc::SourceParts=/nonexistent", "-oDir::Etc::Preferences=/dev/null",
                "-oDir::Etc::PreferencesParts=/nonexistent", "-oAPT::Sandbox::User=root"
                if os.geteuid() == 0 else "-oAPT::Sandbox::User=" + _user(),
                "-oDebug::NoLocking=1", "-qq"]

    def update(self) -> None:
        _run(["apt-get", *self.options(), "update"], f"apt-get update ({self.arch} package lists)")

    def closure(self, packages: tuple[str, ...]) -> list[str]:
        out = _run(["apt-cache", *self.options(), "depends", "--recurse", "--no-recommends",
                    "--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances",
                    *packages], f"resolving the dependencies of {', '.join(packages)}")
        names = [ln.strip() for ln in out.splitlines() if ln and not ln[0].isspace()]
        return sorted({n.split(":")[0] for n in names if not n.startswith("<")})

    def download(self, packages: list[str], into: Path) -> list[Path]:
        into.mkdir(parents=True, exist_ok=True)
        _run(["apt-get", *self.options(), "download", *packages], f"downloading {_short(packages)}", cwd=into)
        return sorted(into.glob("*.deb"))

    def download_source(self, package: str, into: Path) -> list[Path]:
        into.mkdir(parents=True, exist_ok=True)
        _run(["apt-get", *self.options(), "source", "--download-only", package],
             f"downloading the {package} source package", cwd=into)
        return sorted(into.iterdir())


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def _short(packages: list[str]) -> str:
    return ", ".join(packages[:3]) + (f" and {len(packages) - 3} more" if len(packages) > 3 else "")


def _fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _publish(tmp: Path, final: Path) -> None:
    """Atomically-ish replace ``final`` by ``tmp`` (rename; the old one is removed first)."""
    if final.exists():
        old = final.with_name(final.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old)
    else:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(final)


def _dpkg_x(deb: Path, into: Path) -> None:
    _run(["dpkg-deb", "-x", str(deb), str(into)], f"unpacking {deb.name}")


def _host_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _pinned_version(dist: str) -> str | None:
    """``dist==X`` from the project's pyproject.toml (source checkouts), else None."""
    path = PROJECT_ROOT / "pyproject.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    m = re.search(rf'"{re.escape(dist)}==([^"\s;,]+)', text)
    return m.group(1) if m else None


def wheel_versions() -> tuple[dict[str, str], list[str]]:
    """(dist -> version to install for aarch64, notes on what is skipped)."""
    versions, notes = {}, []
    for dist in RUNTIME_WHEELS:
        v = _host_version(dist) or _pinned_version(dist)
        if v:
            versions[dist] = v
        elif dist == "numpy" or dist == "onnxruntime":
            raise SetupError(f"{dist} is not installed on the host; install edgebert first")
        else:
            notes.append(f"{dist} skipped: not installed on the host nor pinned in pyproject.toml")
    return versions, notes


# --- steps --------------------------------------------------------------------------------------
@dataclass
class _Ctx:
    env: ArmEnv
    work: Path

    def apt(self, arch: str) -> _Apt:
        return _Apt(self.env.root / f"apt-{arch}", arch, SOURCES[arch])


SOURCES = {
    "arm64": [f"deb {DEBIAN} {SUITE} main"],
    "amd64": [f"deb {DEBIAN} {SUITE} main", f"deb {DEBIAN} {BACKPORTS} main", f"deb-src {DEBIAN} {SUITE} main",
              f"deb-src {DEBIAN} {QEMU_SOURCE_SUITE} main"],
}


def _step_apt(ctx: _Ctx, key: dict) -> dict:
    for arch in ("arm64", "amd64"):
        ctx.apt(arch).update()
    return {}


def _step_sysroot(ctx: _Ctx, key: dict) -> dict:
    apt = ctx.apt("arm64")
    packages = apt.closure(SYSROOT_PACKAGES)
    debs = apt.download(packages, ctx.work / "debs")
    tree = _fresh(ctx.work / "sysroot")
    for deb in debs:
        _dpkg_x(deb, tree)
    if not (tree / "usr" / "bin" / PYTHON).is_file():
        raise SetupError(f"the arm64 packages do not contain usr/bin/{PYTHON}")
    for unused in ("doc", "man", "info", "locale", "lintian"):
        shutil.rmtree(tree / "usr" / "share" / unused, ignore_errors=True)
    # Byte-compile the stdlib with the host's CPython 3.11 (same bytecode): emulated start-up then
    # skips compiling it on every run.
    if sys.version_info[:2] == (3, 11):
        subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(tree / "usr/lib/python3.11")],
                       capture_output=True, check=False)
    _publish(tree, ctx.env.sysroot)
    return {"packages": len(packages)}


def _step_wheels(ctx: _Ctx, key: dict) -> dict:
    tree = _fresh(ctx.work / "site")
    specs = [f"{d}=={v}" for d, v in key["versions"].items()]
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
           "--target", str(tree), "--python-version", "3.11", "--implementation", "cp", "--only-binary=:all:",
           *[a for p in WHEEL_PLATFORMS for a in ("--platform", p)], *specs]
    _run(cmd, f"downloading the aarch64 wheels ({', '.join(specs)})")
    _publish(tree, ctx.env.site)
    return {"info": {"wheels": key["versions"], "wheel_notes": key["notes"]}}


def _qemu_version(cmd: list[str], env: dict | None = None) -> str:
    out = _run([*cmd, "--version"], "running qemu-aarch64 --version", env=env)
    m = re.search(r"version (\S+)", out)
    return m.group(1) if m else out.splitlines()[0]


def _step_qemu(ctx: _Ctx, key: dict) -> dict:
    apt = ctx.apt("amd64")
    debs = apt.download([f"qemu-user/{BACKPORTS}"], ctx.work / "debs")
    tree = _fresh(ctx.work / "qemu")
    _extract_member(debs[0], "usr/bin/qemu-aarch64", tree / "qemu-aarch64")
    version = _qemu_version([str(tree / "qemu-aarch64")])
    _publish(tree, ctx.env.qemu.parent)
    return {"info": {"qemu_version": version, "qemu_package": debs[0].name}}


def _extract_member(deb: Path, member: str, dest: Path) -> None:
    """One file out of a .deb (via ``dpkg-deb --fsys-tarfile``), executable."""
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    found = False
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for info in tar:  # read to the end: dpkg-deb complains when its pipe closes early
                if not found and info.name.lstrip("./") == member and info.isfile():
                    dest.write_bytes(tar.extractfile(info).read())
                    dest.chmod(0o755)
                    found = True
    finally:
        proc.stdout.close()
        proc.wait()
    if not found:
        raise SetupError(f"{deb.name} has no {member}")


def _step_plugin_qemu72(ctx: _Ctx, key: dict) -> dict:
    """Bookworm's QEMU 7.2 user mode (dynamic, loads plugins; 18 s to fetch) + the counter."""
    apt = ctx.apt("amd64")
    debs = apt.download([f"qemu-user/{SUITE}", *PLUGIN_QEMU_LIBS], ctx.work / "debs")
    unpacked = _fresh(ctx.work / "unpacked")
    for deb in debs:
        _dpkg_x(deb, unpacked)
    tree = _fresh(ctx.work / "qemu-plugin")
    shutil.copy2(unpacked / "usr/bin/qemu-aarch64", tree / "qemu-aarch64")
    # the same QEMU for x86-64 guests: the cycle model's check against native runs on this host
    # (benchmarks/bench_latency_estimate.py) runs the same counter under it
    shutil.copy2(unpacked / "usr/bin/qemu-x86_64", tree / "qemu-x86_64")
    (tree / "lib").mkdir()
    for lib in (unpacked / "usr/lib/x86_64-linux-gnu").glob("*.so*"):
        shutil.copy2(lib, tree / "lib" / lib.name, follow_symlinks=True)
    env = {**os.environ, "LD_LIBRARY_PATH": str(tree / "lib")}
    qemu = [str(tree / "qemu-aarch64")]
    version = _qemu_version(qemu, env)
    helptext = _run([*qemu, "-h"], "running the plugin QEMU", env=env)
    if "-plugin" not in helptext:
        raise SetupError(f"QEMU {version} from {SUITE} was built without TCG plugin support")
    listing = subprocess.run([*qemu, "-cpu", "help"], env=env, capture_output=True, text=True).stdout
    cpus = [ln.strip() for ln in listing.splitlines()[1:] if ln.strip()]  # exits 1 after listing
    if not cpus:
        raise SetupError(f"QEMU {version} from {SUITE} lists no CPU models")
    # qemu-plugin.h of the same QEMU: from Debian's qemu source package
    src = apt.download_source(f"qemu/{SUITE}", ctx.work / "src")
    orig = next((p for p in src if p.name.endswith(".orig.tar.xz")), None)
    if orig is None:
        raise SetupError("the qemu source package has no .orig.tar.xz")
    with tarfile.open(orig, "r:xz") as tar:
        for info in tar:
            if info.name.endswith("include/qemu/qemu-plugin.h"):
                (tree / "include").mkdir()
                (tree / "include" / "qemu-plugin.h").write_bytes(tar.extractfile(info).read())
                break
        else:
            raise SetupError(f"{orig.name} has no include/qemu/qemu-plugin.h")
    shutil.rmtree(ctx.work / "src")
    _run(["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-I", str(tree / "include"), str(PLUGIN_SOURCE),
          "-o", str(tree / "libinsn_count.so")], "compiling the instruction-counting plugin")
    _publish(tree, ctx.env.counting_root("qemu72"))
    return {"info": {"plugin_qemu72_version": version, "plugin_qemu72_cpus": cpus,
                     "plugin_qemu72_package": next(d.name for d in debs if d.name.startswith("qemu-user"))}}


def _step_plugin_qemu(ctx: _Ctx, key: dict) -> dict:
    """QEMU 10 user mode with plugin support, built from Debian's qemu source package, + the counter."""
    apt = ctx.apt("amd64")
    src = apt.download_source(key["source"], ctx.work / "src")
    orig = next((p for p in src if p.name.endswith(".orig.tar.xz")), None)
    if orig is None:
        raise SetupError(f"the {key['source']} source package has no .orig.tar.xz")
    debs = apt.download(list(key["glib_packages"]), ctx.work / "debs")
    sysroot = qemu_build.unpack_sysroot(debs, _fresh(ctx.work / "glib"), _dpkg_x)
    built = qemu_build.build_qemu(orig, sysroot, _fresh(ctx.work / "build"), _run)
    tree = _fresh(ctx.work / "qemu-plugin")
    shutil.copy2(built, tree / "qemu-aarch64")
    try:
        qemu_build.copy_runtime_libs(sysroot, tree / "lib")
    except FileNotFoundError as exc:
        raise SetupError(str(exc)) from None
    env = {**os.environ, "LD_LIBRARY_PATH": str(tree / "lib")}
    qemu = [str(tree / "qemu-aarch64")]
    version = _qemu_version(qemu, env)
    if "-plugin" not in _run([*qemu, "-h"], "running the plugin QEMU", env=env):
        raise SetupError(f"the QEMU {version} build has no TCG plugin support")
    cpus = qemu_build.cpu_models(qemu, env)
    if not cpus:
        raise SetupError(f"the QEMU {version} build lists no CPU models")
    source_dir = built.parents[1]
    includes = [a for d in qemu_build.plugin_include_dirs(source_dir, sysroot) for a in ("-I", str(d))]
    _run(["gcc", "-shared", "-fPIC", "-O2", "-Wall", *includes, str(PLUGIN_SOURCE),
          "-o", str(tree / "libinsn_count.so")], "compiling the instruction-counting plugin")
    _publish(tree, ctx.env.counting_root("qemu10"))
    return {"info": {"plugin_qemu_version": version, "plugin_qemu_cpus": cpus,
                     "plugin_qemu_package": f"{orig.name} (built: aarch64-linux-user, --enable-plugins)"}}


def _step_llvm(ctx: _Ctx, key: dict) -> dict:
    """llvm-mca / llvm-mc from Debian's llvm-{LLVM_MAJOR} and the libraries they link (~30 MB download)."""
    apt = ctx.apt("amd64")
    debs = apt.download(list(key["packages"]), ctx.work / "debs")
    unpacked = _fresh(ctx.work / "unpacked")
    for deb in debs:
        _dpkg_x(deb, unpacked)
    tree = _fresh(ctx.work / "llvm")
    (tree / "bin").mkdir()
    (tree / "lib").mkdir()
    for tool in LLVM_TOOLS:
        src = unpacked / "usr" / "lib" / f"llvm-{LLVM_MAJOR}" / "bin" / tool
        if not src.is_file():
            raise SetupError(f"llvm-{LLVM_MAJOR} has no {tool}")
        shutil.copy2(src, tree / "bin" / tool)
    for lib in (unpacked / "usr" / "lib" / qemu_build.MULTIARCH).glob("*.so.*"):  # runtime names only
        shutil.copy2(lib, tree / "lib" / lib.name, follow_symlinks=False)  # relative links stay links
    from ..estimate.mca import LlvmTools

    version = LlvmTools(tree).version()
    if not version.startswith(LLVM_MAJOR + "."):
        raise SetupError(f"llvm-mca reports version {version}, expected {LLVM_MAJOR}.x")
    _publish(tree, ctx.env.llvm)
    return {"info": {"llvm_version": version}}


def _step_prefixes(ctx: _Ctx, key: dict) -> dict:
    """Per CPU model: sysroot entries (symlinks) + proc/cpuinfo as QEMU 10 emulates that model."""
    tree = _fresh(ctx.work / "prefix")
    env = ctx.env
    for cpu in key["cpus"]:
        d = tree / cpu
        (d / "proc").mkdir(parents=True)
        for entry in env.sysroot.iterdir():
            (d / entry.name).symlink_to(entry)
        cpuinfo = _run([str(env.qemu), "-cpu", cpu, "-L", str(env.sysroot), str(env.python), "-S", "-c",
                        "import sys; sys.stdout.write(open('/proc/cpuinfo').read())"],
                       f"reading /proc/cpuinfo of {cpu} under QEMU", env=guest_env(env))
        if "CPU part" not in cpuinfo:
            raise SetupError(f"QEMU's /proc/cpuinfo for {cpu} has no 'CPU part' line")
        (d / "proc" / "cpuinfo").write_text(cpuinfo, encoding="utf-8")
    _publish(tree, env.root / "prefix")
    return {}


@dataclass(frozen=True)
class Step:
    name: str
    message: str
    run: Callable[[_Ctx, dict], dict]
    key: Callable[[], dict]
    optional: bool = False  # run only when ``setup(..., counting_cpus=...)`` needs it
    owns: tuple[str, ...] = ()  # directories under the environment root it makes (their content is stamped)


def _cpus() -> list[str]:
    return [m.qemu_cpu for m in CPU_MODELS]


def steps() -> list[Step]:
    return [
        Step("apt", "Fetching Debian package lists (arm64 and amd64, private apt state)", _step_apt,
             lambda: {"sources": SOURCES}),
        Step("sysroot", f"Building the arm64 {PYTHON} sysroot (Debian {SUITE})", _step_sysroot,
             lambda: {"packages": list(SYSROOT_PACKAGES), "suite": SUITE}, owns=("sysroot",)),
        Step("wheels", "Installing the aarch64 wheels", _step_wheels,
             lambda: dict(zip(("versions", "notes"), wheel_versions())), owns=("site",)),
        Step("qemu", f"Fetching QEMU user mode ({BACKPORTS} qemu-user)", _step_qemu,
             lambda: {"package": f"qemu-user/{BACKPORTS}"}, owns=("qemu",)),
        Step("plugin-qemu", f"Fetching the plugin-capable QEMU 7.2 ({SUITE}) and compiling the instruction counter",
             _step_plugin_qemu72, lambda: {"package": f"qemu-user/{SUITE}", "libs": list(PLUGIN_QEMU_LIBS),
                                            "source_sha": _file_digest(PLUGIN_SOURCE)}, owns=("qemu-plugin",)),
        Step("prefixes", "Capturing each CPU model's /proc/cpuinfo", _step_prefixes,
             lambda: {"cpus": _cpus()}, owns=("prefix",)),
        Step("llvm", f"Fetching the cycle model (Debian's llvm-{LLVM_MAJOR}: llvm-mca, llvm-mc)", _step_llvm,
             lambda: {"packages": list(LLVM_PACKAGES), "tools": list(LLVM_TOOLS)}, owns=("llvm",)),
        # last, and only when asked for: QEMU 7.2 lacks cortex-a55 / cortex-a710 (see ``qemu_build.py``)
        Step("plugin-qemu10", f"Building QEMU 10 user mode with plugins from Debian's qemu source "
             f"({QEMU_SOURCE_SUITE}; ~3 min on 2 cores) for counting on CPU models QEMU 7.2 lacks",
             _step_plugin_qemu, lambda: {"source": f"qemu/{QEMU_SOURCE_SUITE}",
                                         "glib_packages": list(qemu_build.GLIB_DEV_PACKAGES),
                                         "configure": list(qemu_build.CONFIGURE_FLAGS),
                                         "tools": list(qemu_build.BUILD_TOOLS),
                                         "source_sha": _file_digest(PLUGIN_SOURCE)}, optional=True,
             owns=("qemu-plugin10",)),
    ]


def _file_digest(path: Path) -> str:
    from ...fsutil import sha256_file

    return sha256_file(path)[:16]  # environment.counter_digest() compares the counter's with this


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


QEMU72_CPUS_HINT = ("cortex-a53", "cortex-a72", "cortex-a76", "neoverse-n1")  # models bookworm's 7.2 has


def setup(env: ArmEnv | None = None, progress=None, force: bool = False,
          counting_cpus: tuple[str, ...] | None = None, verify: bool = False) -> dict[str, Any]:
    """Run every step whose stamp is missing or stale, or whose content is damaged; return a summary
    (steps run, size, seconds).

    ``counting_cpus``: the CPU models instructions will be counted on; the QEMU 10 counting build
    (~3 min) runs only when one of them is not in QEMU 7.2. None (``edgebert devices setup``): all.
    ``verify``: compare every file's sha256 with the stamp (~2 s for the default environment), not just
    paths and sizes (``edgebert devices setup`` does; a build's setup takes the quick check).
    """
    from ...progress import maybe_step

    env = env or default_env()
    env.root.mkdir(parents=True, exist_ok=True)
    env.stamps.mkdir(exist_ok=True)
    start, ran = time.perf_counter(), []
    rerun = force
    for step in steps():
        if step.optional and not _wanted(env, counting_cpus):
            continue
        key = step.key()
        stamp = env.stamp(step.name)
        # later steps depend on earlier ones; the optional QEMU 10 build depends only on its own key
        damaged = content.problem(env.root, stamp, full=verify) if step.owns else None
        if damaged and progress is not None:
            progress.info(f"The emulated-ARM environment's {step.name} is damaged ({damaged}); rebuilding it")
        if (not rerun or step.optional) and stamp is not None and stamp.get("key") == json.loads(json.dumps(key)) \
                and not damaged:
            if step.owns and "content" not in stamp:  # stamped by an edgebert before content records
                _write_stamp(env, step.name, {**stamp, "content": content.record(env.root, step.owns)})
            continue
        rerun = True
        (env.stamps / f"{step.name}.json").unlink(missing_ok=True)
        work = _fresh(env.root / "tmp" / step.name)
        with maybe_step(progress, step.message):
            result = step.run(_Ctx(env, work), key)
        shutil.rmtree(work, ignore_errors=True)
        record = {"key": key, **result, "done": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if step.owns:
            record["content"] = content.record(env.root, step.owns)
        _write_stamp(env, step.name, record)
        ran.append(step.name)
    shutil.rmtree(env.root / "tmp", ignore_errors=True)
    return {"root": str(env.root), "ran": ran, "seconds": round(time.perf_counter() - start, 1),
            "size_mb": round(_tree_size(env.root) / 1e6, 1), **env.info()}


def _write_stamp(env: ArmEnv, name: str, record: dict[str, Any]) -> None:
    stamp_path = env.stamps / f"{name}.json"
    tmp = stamp_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
    os.replace(tmp, stamp_path)


def _wanted(env: ArmEnv, counting_cpus: tuple[str, ...] | None) -> bool:
    """Whether the QEMU 10 counting build is needed for ``counting_cpus`` (None: every catalog model)."""
    cpus = _cpus() if counting_cpus is None else list(counting_cpus)
    have = (env.stamp("plugin-qemu") or {}).get("info", {}).get("plugin_qemu72_cpus") or QEMU72_CPUS_HINT
    return any(c not in have for c in cpus)


# --- verification (`devices setup --check`) ------------------------------------------------------
CHECK_CODE = (
    "import platform, numpy, onnxruntime, sys\n"
    "try:\n import ai_edge_litert; lv = getattr(ai_edge_litert, '__version__', 'installed')\n"
    "except ImportError: lv = None\n"
    "info = open('/proc/cpuinfo').read().split('\\n')\n"
    "part = next((l.split(':')[1].strip() for l in info if l.startswith('CPU part')), '?')\n"
    "feats = next((l.split(':')[1].split() for l in info if l.startswith('Features')), [])\n"
    "print(platform.machine(), platform.python_version(), numpy.__version__, onnxruntime.__version__, lv, part,"
    " ','.join(f for f in ('asimddp', 'i8mm', 'sve', 'sve2', 'bf16') if f in feats))\n"
)


def check_environment(env: ArmEnv | None = None, cpus: list[str] | None = None) -> list[dict[str, Any]]:
    """Per CPU model: start the emulated Python, import numpy and onnxruntime, report versions.

    Also counts the instructions of a tiny numpy loop twice under the plugin QEMU (they must match).
    Never raises for one model: each row has ``ok`` and ``error``.
    """
    env = env or default_env()
    rows = []
    missing = env.missing()
    for model in CPU_MODELS:
        if cpus and model.name not in cpus:
            continue
        row: dict[str, Any] = {"device": model.name, "ok": False, "error": missing}
        if not missing:
            try:
                out = _run([str(env.qemu), "-cpu", model.qemu_cpu, "-L", str(env.sysroot), str(env.python),
                            "-c", CHECK_CODE], f"the emulated Python on {model.name}", env=guest_env(env),
                           timeout=300).split()
                row.update(dict(zip(("machine", "python", "numpy", "onnxruntime", "ai_edge_litert", "cpu_part",
                                     "features"), out + [""] * 7)))
                row["ok"], row["error"] = out[0] == "aarch64", None if out[0] == "aarch64" else f"machine {out[0]}"
            except SetupError as exc:
                row["error"] = str(exc)
            row["counting"] = env.counting_missing(model.qemu_cpu)
            if row["counting"] is None:
                try:
                    import tempfile

                    with tempfile.TemporaryDirectory(prefix="edgebert-count-") as tmp:
                        counts = count_selftest(env, model.qemu_cpu, Path(tmp))
                    row["counting"] = f"ok ({counts[-1]} instructions for a marked 64x64 matmul)"
                except SetupError as exc:
                    row["counting"] = f"failed: {exc}"
        rows.append(row)
    return rows


def count_selftest(env: ArmEnv, cpu: str, work: Path) -> list[int]:
    """Instructions of the same small numpy computation, marked twice, under the plugin QEMU."""
    code = ("import ctypes, numpy as np\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            f"a = np.ones((64, 64), np.float32)\n"
            f"for i in range(3):\n libc.syscall({MARKER_SYSCALL}, 1, i); a @ a; libc.syscall({MARKER_SYSCALL}, 2, i)\n")
    out = work / "counts.txt"
    cmd = plugin_command(env, cpu, out) + ["-c", code]
    _run(cmd, f"the instruction counter on {cpu}", env={**guest_env(env), **plugin_host_env(env, cpu)}, timeout=300)
    return [c for _, c in read_counts(out)]
