"""What every job of a check shares: the :class:`CheckPlan` (data, inputs, devices, records as they
arrive) and the :class:`Job` that runs against it.

``runner.py`` (native jobs, scheduling, finishing) and ``emulated.py`` (emulated jobs) both build on
these; keeping them here lets each of those import downwards only.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import devices as _devices
from ..data.datasets import LabelledTexts
from ..manifest import Manifest, now_iso
from .settings import BIG_CORES, CheckSettings

DRIFT_REFERENCE = "desktop"
REFERENCE_ROLE = "drift-reference"
#: A job part's own job seconds when its work ran in an earlier job (an early count, ``emulated.py``):
#: the runner records these instead of the seconds the handing-over job took.
SECONDS_SPENT_EARLIER = "_seconds_spent_earlier"


def artifact_order(manifest: Manifest) -> list[str]:
    """Artifacts in manifest order, each format's fp32 reference first."""
    names = list(manifest.artifacts)
    return sorted(names, key=lambda n: (manifest.artifacts[n]["precision"] != "fp32", names.index(n)))


@dataclass
class CheckPlan:
    """Everything a check's jobs share: data, inputs, devices, and the records as they arrive."""

    directory: Path
    manifest: Manifest
    settings: CheckSettings
    devices: list[_devices.Device]
    reference_only: set[str]
    data: LabelledTexts
    labels: np.ndarray
    ids: np.ndarray
    mask: np.ndarray
    lat_ids: np.ndarray
    lat_mask: np.ndarray
    problems: dict[str, str | None]
    notes: list[str]
    work: Path
    label: str
    created: str = field(default_factory=now_iso)
    records: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    logits: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    parts_left: dict[tuple[str, str], int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    shared: dict[tuple, Future] = field(default_factory=dict)  # results one job hands to another (``expect``)
    # (device, artifact) -> (the artifact's sha256, future of (part, seconds)): counts started before this plan
    early_counts: dict[tuple[str, str], tuple[str, Future]] = field(default_factory=dict)
    pools: dict[str, _devices.SessionPool] = field(default_factory=dict)  # emulated device -> its idle workers
    _tmp: Any = None

    @property
    def inputs(self) -> Path:
        return self.work / "inputs.npz"

    @property
    def emulated(self) -> list[_devices.Device]:
        return [d for d in self.devices if d.emulated]

    @property
    def n_emulated(self) -> int:
        """Examples an emulated device is judged on: the first ``emulated_limit`` of them."""
        limit = self.settings.emulated_limit
        return len(self.labels) if limit is None else min(int(limit), len(self.labels))

    def threads(self, device: _devices.Device) -> int:
        own = getattr(device, "own_threads", lambda: None)()  # a board's own setting (e.g. one per big core)
        if own is not None:
            return own
        if self.settings.threads == BIG_CORES:  # one per big core where a board says how many; else the default
            big = getattr(device, "big_core_threads", lambda: None)()
            return int(big) if big else int(device.default_threads)
        return int(self.settings.threads) if self.settings.threads is not None else int(device.default_threads)

    def base_record(self, name: str, device: _devices.Device) -> dict[str, Any]:
        rec = self.manifest.artifacts[name]
        path = self.manifest.artifact_path(name)
        return {
            "artifact": name, "format": rec["format"], "precision": rec["precision"], "device": device.name,
            "role": REFERENCE_ROLE if device.name in self.reference_only else "measured",
            "status": "failed", "error": None, "reference": self.manifest.reference_artifact(rec["format"]),
            "accuracy": None, "accuracy_ci95": None, "accuracy_method": None, "agreement": None,
            "max_abs_logit_diff_vs_fp32": None,
            "n_samples": self.n_emulated if device.emulated else len(self.labels),
            "latency_ms": None, "threads": self.threads(device), "runtime": None, "emulated": device.emulated,
            "peak_rss_mb": None, "size_bytes": path.stat().st_size if path.is_file() else rec.get("size_bytes"),
        }

    def merge(self, key: tuple[str, str], part: dict[str, Any], logits: np.ndarray | None = None,
              kind: str = "measure", seconds: float = 0.0) -> bool:
        """Add one job's part to its record (and its wall seconds); True when the record is complete."""
        with self.lock:
            record = self.records.setdefault(key, {})
            failed = record.get("status") == "failed" and record.get("error")
            record.update({k: v for k, v in part.items() if not (failed and k in ("status", "error"))})
            record.setdefault("job_seconds", {})[kind] = round(seconds, 2)
            if logits is not None:
                self.logits[key] = logits
            self.parts_left[key] = self.parts_left.get(key, 1) - 1
            return self.parts_left[key] <= 0

    def expect(self, key: tuple) -> None:
        """A job that will ``share`` ``key`` is submitted: jobs that wait for it may now do so."""
        with self.lock:
            self.shared.setdefault(key, Future())

    def share(self, key: tuple, value: Any) -> None:
        """Hand ``value`` to the jobs waiting for ``key`` (once; a later call is ignored)."""
        with self.lock:
            future = self.shared.setdefault(key, Future())
            if not future.done():
                future.set_result(value)

    def awaited(self, key: tuple) -> Future | None:
        """The future a job waiting for ``key`` blocks on (None: no job provides it)."""
        with self.lock:
            return self.shared.get(key)

    def shared_result(self, key: tuple, timeout: float) -> Any:
        """What the job that ``expect``-ed ``key`` shared (waiting for it), or None if no such job was submitted."""
        with self.lock:
            future = self.shared.get(key)
        if future is None:
            return None
        try:
            return future.result(timeout=timeout)
        except TimeoutError:
            return None

    def worker_session(self, device: _devices.Device):
        """A serve-mode worker on ``device`` for one job (context manager): under emulation a started one
        from the device's pool (``SessionPool``), else a new one."""
        if not device.emulated or getattr(device, "is_board", False):
            return device.session()
        with self.lock:
            pool = self.pools.setdefault(device.name, _devices.SessionPool(device))
        return pool.lend()

    def close_pools(self) -> None:
        """End the idle pooled workers (each holds its QEMU and imported runtime): the build does so right
        after the last emulated job, before the desktop latency runs alone."""
        with self.lock:
            pools, self.pools = list(self.pools.values()), {}
        for pool in pools:
            pool.close()

    def close(self) -> None:
        self.close_pools()
        for device in self.devices:
            device.close()
        self.close_files()

    def close_files(self) -> None:
        """Remove the plan's work files (a plan of early counts: its devices belong to the check's plan)."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


@dataclass(frozen=True)
class Job:
    """One unit of check work: ``run()`` returns (record part, logits or None) for ``key``."""

    plan: CheckPlan
    key: tuple[str, str]          # (device, artifact)
    run: Callable[[], tuple[dict[str, Any], np.ndarray | None]]
    kind: str = "measure"         # "measure" (native), "accuracy" / "instructions" (emulated)
    provides: tuple | None = None   # a result it ``share``s with other jobs (registered when submitted)
    waits_for: tuple | None = None  # a result it waits for: started only once that is there (``JobRunner``)
