"""Provision a board: the runtimes at the host's exact versions and the worker, in a directory edgebert owns.

The board needs no internet: the host downloads the aarch64 wheels of the numpy / onnxruntime /
ai-edge-litert versions it uses itself (``pip install --target --platform ...``, the same command the
emulated-ARM setup uses, with the manylinux tags the board's glibc allows and the board's Python
version), packs the installed tree once per content key (cached under ``cache_dir()/boards``), and
pushes it. On the board everything lives under its board directory (``~/.cache/edgebert-board`` or
``$EDGEBERT_BOARD_DIR``)::

    envs/HASH/site/      the runtimes (HASH: python, wheel tags, versions)  + envs/HASH/.complete
    worker/HASH/         worker.py and the runtime modules it imports       + .complete
    models/SHA256.EXT    artifacts, by content
    runs/ID/             one check's requests, inputs and results (removed when it ends)

A tree is unpacked next to its final name and renamed only when complete, so an interrupted or
failed install (a full disk, a dropped connection) leaves nothing that a later run would trust; a
later run reuses a tree while its hash matches and installs again otherwise.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from ...fsutil import atomic_path, cache_dir
from .. import registry
from .probe import glibc_version, python_tag
from .transport import BoardError, Transport

WORKER_MODULES = ("worker.py", "runtimes.py", "ort_session.py", "litert.py", "litert_profile.py")  # what worker.py imports
BASE_PLATFORMS = ("manylinux2014_aarch64",)
UNPACKED_RATIO = 4  # disk needed on the board per byte of the packed runtimes (the archive + its unpacked tree)


def platforms(info: dict[str, Any]) -> list[str]:
    """Every manylinux aarch64 tag the board's glibc accepts (pip matches each tag exactly)."""
    major, minor = glibc_version(info)
    return [*BASE_PLATFORMS, *(f"manylinux_{major}_{m}_aarch64" for m in range(17, minor + 1))]


def wheel_key(info: dict[str, Any]) -> dict[str, Any]:
    """What the installed runtimes depend on: the board's Python and glibc, the host's versions."""
    from ..arm.setup import wheel_versions

    versions, notes = wheel_versions()
    return {"python": python_tag(info), "platforms": platforms(info), "versions": versions, "notes": notes}


def key_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def worker_files() -> list[Path]:
    return [registry.WORKER_FILE.with_name(name) for name in WORKER_MODULES]


def worker_hash() -> str:
    h = hashlib.sha256()
    for path in worker_files():
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def bundle(key: dict[str, Any]) -> Path:
    """The packed ``site/`` tree for ``key`` on this host (built once with pip, then cached)."""
    from ..arm.setup import SetupError, _run

    final = cache_dir() / "boards" / f"site-{key_hash(key)}.tar.gz"
    if final.is_file():
        return final
    specs = [f"{d}=={v}" for d, v in key["versions"].items()]
    with tempfile.TemporaryDirectory(prefix="edgebert-board-") as tmp:
        site = Path(tmp) / "site"
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
               "--target", str(site), "--python-version", key["python"], "--implementation", "cp",
               "--only-binary=:all:", *[a for p in key["platforms"] for a in ("--platform", p)], *specs]
        try:
            _run(cmd, f"downloading the board's aarch64 wheels for Python {key['python']} ({', '.join(specs)})")
        except SetupError as exc:
            raise BoardError(str(exc)) from None
        with atomic_path(final) as out:
            with tarfile.open(out, "w:gz", compresslevel=6) as tar:
                tar.add(site, arcname="site")
    return final


def _q(path: str) -> str:
    return shlex.quote(path)


def ensure(transport: Transport, info: dict[str, Any], python: str, progress=None) -> dict[str, Any]:
    """Install (or reuse) the runtimes and the worker on the board; return where they are and what runs.

    Returns ``{"root", "site", "worker", "env_hash", "worker_hash", "versions": {...}}``, the
    versions as the board's Python imports them. BoardError (one line) on any failure.
    """
    root = info["board_dir"]
    key = wheel_key(info)
    env_hash, w_hash = key_hash(key), worker_hash()
    env_dir, w_dir = f"{root}/envs/{env_hash}", f"{root}/worker/{w_hash}"
    state = transport.run(
        f"mkdir -p {_q(root + '/envs')} {_q(root + '/worker')} {_q(root + '/models')} {_q(root + '/runs')} "
        f"{_q(root + '/incoming')} && "
        f"if [ -f {_q(env_dir + '/.complete')} ]; then echo have-env; fi; "
        f"if [ -f {_q(w_dir + '/.complete')} ]; then echo have-worker; fi",
        "preparing the board directory").stdout.decode("utf-8", "replace").split()
    if "have-env" not in state:
        local = bundle(key)
        if progress is not None:
            progress.info(f"{transport.target.address}: installing the runtimes ({local.stat().st_size / 1e6:.0f} MB) "
                          f"into {env_dir}")
        incoming = f"{root}/incoming/{local.name}"
        need = local.stat().st_size * UNPACKED_RATIO
        free = info.get("free_bytes")
        if isinstance(free, int) and free < need:
            raise BoardError(f"the board has {free / 1e6:.0f} MB free in {root} and the runtimes need about "
                             f"{need / 1e6:.0f} MB: free some space there or set EDGEBERT_BOARD_DIR on the board "
                             f"to a larger disk")
        try:
            transport.push([local], f"{root}/incoming", "pushing the runtimes to the board")
        except BoardError:
            transport.run(f"rm -f {_q(incoming)}", "removing a partial upload", check=False, timeout=60)
            raise
        tmp = f"{env_dir}.tmp"
        transport.run(
            f"rm -rf {_q(tmp)} && mkdir -p {_q(tmp)} && tar -xzf {_q(incoming)} -C {_q(tmp)} && "
            f"touch {_q(tmp + '/.complete')} && rm -rf {_q(env_dir)} && mv {_q(tmp)} {_q(env_dir)} && "
            f"rm -f {_q(incoming)} && for d in {_q(root + '/envs')}/*; do "
            f"[ \"$d\" = {_q(env_dir)} ] || rm -rf \"$d\"; done"
            f" || {{ s=$?; rm -rf {_q(tmp)} {_q(incoming)}; exit $s; }}",
            "installing the runtimes on the board", timeout=1800)
    if "have-worker" not in state:
        tmp = f"{w_dir}.tmp"
        transport.run(f"rm -rf {_q(tmp)} && mkdir -p {_q(tmp)}", "preparing the worker directory")
        transport.push(worker_files(), tmp, "pushing the worker to the board")
        transport.run(f"touch {_q(tmp + '/.complete')} && rm -rf {_q(w_dir)} && mv {_q(tmp)} {_q(w_dir)}",
                      "installing the worker on the board")
    versions = _installed_versions(transport, python, f"{env_dir}/site")
    return {"root": root, "site": f"{env_dir}/site", "worker": w_dir, "env_hash": env_hash, "worker_hash": w_hash,
            "versions": versions, "wheel_platforms": key["platforms"], **({"notes": key["notes"]} if key["notes"] else {})}


_VERSIONS_SCRIPT = r'''
import json, importlib
out = {}
for mod, dist in (("numpy", "numpy"), ("onnxruntime", "onnxruntime"), ("ai_edge_litert", "ai-edge-litert")):
    try:
        from importlib.metadata import version
        importlib.import_module(mod)
        out[dist] = version(dist)
    except Exception as exc:
        out[dist] = None
        out.setdefault("errors", {})[dist] = (type(exc).__name__ + ": " + str(exc))[:200]
print(json.dumps(out))
'''


def _installed_versions(transport: Transport, python: str, site: str) -> dict[str, Any]:
    """Import each runtime on the board (a runtime that cannot load there fails here, with its reason)."""
    proc = transport.run(f"PYTHONPATH={_q(site)} PYTHONNOUSERSITE=1 ORT_DISABLE_TELEMETRY=1 {python} -",
                         "importing the runtimes on the board", stdin=_VERSIONS_SCRIPT.encode(), check=False)
    lines = [ln for ln in proc.stdout.decode("utf-8", "replace").splitlines() if ln.startswith("{")]
    try:
        data = json.loads(lines[-1]) if lines else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise BoardError(f"importing the runtimes on the board failed (exit {proc.returncode})"
                         + (f": {tail[-1][:300]}" if tail else ""))
    if not data.get("numpy") or not data.get("onnxruntime"):
        errors = data.get("errors") or {}
        raise BoardError("the runtimes do not import on the board: "
                         + "; ".join(f"{k}: {v}" for k, v in errors.items()))
    return {k: v for k, v in data.items() if isinstance(v, str) or k == "errors"}
