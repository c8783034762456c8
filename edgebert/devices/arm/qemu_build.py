"""Build QEMU user mode (aarch64) with TCG plugin support from Debian's qemu source package.

Why: Debian ships QEMU 10 user mode only as static binaries, which cannot load plugins, and its one
dynamic build (bookworm's 7.2) has no cortex-a55 / cortex-a710 models. Building only the
``aarch64-linux-user`` target of QEMU 10 (the line the accuracy runs use) takes about two
minutes on 2 cores, and needs nothing but Debian's packages and PyPI:

- the qemu source package (``apt-get source``), its ``.orig.tar.xz`` unpacked;
- glib's development files (amd64 ``.deb`` files unpacked into a private sysroot, no root);
- meson, ninja, pkgconf and pycotap in a private venv (QEMU's configure wants them).

The result is ``qemu-aarch64`` plus the glib/pcre2 libraries it links (``lib/``), and the
``qemu-plugin.h`` / glib headers the instruction counter compiles against. Everything is built in a
work directory the caller owns (setup publishes it by rename, so an interrupted build leaves nothing).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

# glib's development files and the runtime libraries they point at (bookworm, amd64).
GLIB_DEV_PACKAGES = (
    "libglib2.0-dev", "libglib2.0-0", "libpcre2-dev", "libpcre2-8-0", "libpcre2-16-0", "libpcre2-32-0",
    "libpcre2-posix3", "libffi-dev", "libffi8", "zlib1g-dev", "zlib1g", "libmount-dev", "libmount1",
    "libblkid-dev", "libblkid1", "libselinux1-dev", "libselinux1", "libsepol-dev", "libsepol2",
)
BUILD_TOOLS = ("meson==1.8.2", "ninja==1.13.2", "pkgconf==3.0.7.post0", "pycotap==1.3.1")
CONFIGURE_FLAGS = (
    "--target-list=aarch64-linux-user", "--enable-plugins", "--disable-system", "--disable-tools",
    "--disable-docs", "--disable-werror", "--disable-install-blobs", "--disable-capstone",
    "--disable-linux-io-uring", "--disable-numa", "--disable-gnutls", "--disable-nettle",
    "--disable-gcrypt", "--disable-slirp", "--disable-selinux", "--disable-rust",
)
RUNTIME_LIBS = ("libglib-2.0.so.0", "libgmodule-2.0.so.0", "libpcre2-8.so.0")
MULTIARCH = "x86_64-linux-gnu"

Run = Callable[..., str]


def unpack_sysroot(debs: list[Path], into: Path, dpkg_x: Callable[[Path, Path], None]) -> Path:
    """Unpack ``debs`` into ``into`` and point absolute symlinks at their copies inside it."""
    for deb in debs:
        dpkg_x(deb, into)
    for link in into.rglob("*"):
        if link.is_symlink() and os.path.isabs(target := os.readlink(link)):
            inside = into / target.lstrip("/")
            if inside.exists():
                link.unlink()
                link.symlink_to(os.path.relpath(inside, link.parent))
    return into


def lib_dirs(sysroot: Path) -> list[Path]:
    return [sysroot / "usr" / "lib" / MULTIARCH, sysroot / "lib" / MULTIARCH]


def build_qemu(source_tar: Path, sysroot: Path, work: Path, run: Run) -> Path:
    """Configure and build ``qemu-aarch64`` from ``source_tar`` against ``sysroot``; its path."""
    run(["tar", "-xJf", str(source_tar), "-C", str(work)], f"unpacking {source_tar.name}")
    src = next(p for p in work.iterdir() if p.is_dir() and p.name.startswith("qemu-"))
    venv = work / "tools"
    run([sys.executable, "-m", "venv", str(venv)], "creating the QEMU build-tools venv")
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         *BUILD_TOOLS], f"installing {', '.join(BUILD_TOOLS)}")
    pkgconfig = [sysroot / "usr" / "lib" / MULTIARCH / "pkgconfig", sysroot / "usr" / "share" / "pkgconfig"]
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
           "PKG_CONFIG": str(venv / "bin" / "pkgconf"), "PKG_CONFIG_SYSROOT_DIR": str(sysroot),
           "PKG_CONFIG_LIBDIR": os.pathsep.join(map(str, pkgconfig))}
    rpath_link = ",".join(f"-rpath-link,{d}" for d in lib_dirs(sysroot))
    out = src / "b"
    out.mkdir()
    run([str(src / "configure"), f"--python={venv / 'bin' / 'python'}", *CONFIGURE_FLAGS,
         f"--extra-ldflags=-Wl,{rpath_link}"], "configuring QEMU (aarch64-linux-user, plugins)",
        cwd=out, env=env)
    jobs = str(os.cpu_count() or 2)
    run([str(venv / "bin" / "ninja"), "-j", jobs, "qemu-aarch64"],
        "building QEMU user mode (about 2 minutes on 2 cores)", cwd=out, env=env, timeout=3600)
    return out / "qemu-aarch64"


def plugin_include_dirs(source: Path, sysroot: Path) -> list[Path]:
    """qemu-plugin.h and the glib headers it includes (QEMU 9+ plugin headers need glib.h)."""
    return [source / "include" / "qemu", sysroot / "usr" / "include" / "glib-2.0",
            sysroot / "usr" / "lib" / MULTIARCH / "glib-2.0" / "include"]


def copy_runtime_libs(sysroot: Path, into: Path) -> None:
    """The shared libraries ``qemu-aarch64`` links that a stock host may lack."""
    into.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_LIBS:
        found = next((d / name for d in lib_dirs(sysroot) if (d / name).exists()), None)
        if found is None:
            raise FileNotFoundError(f"{name} is not in the unpacked glib packages")
        shutil.copy2(found, into / name, follow_symlinks=True)


def cpu_models(qemu: list[str], env: dict[str, str]) -> list[str]:
    """``qemu-aarch64 -cpu help``: the CPU models it emulates (it exits 1 after listing)."""
    listing = subprocess.run([*qemu, "-cpu", "help"], check=False, env=env, capture_output=True, text=True).stdout
    return [ln.strip() for ln in listing.splitlines()[1:] if ln.strip()]
