"""What a check measures and how: :class:`CheckSettings` (recorded in report.json).

Its own module because every stage of a check reads it (the plan, the native and the emulated jobs)
and none of them owns it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .screening import METHODS, ScreeningSettings

BIG_CORES = "big"  # --threads big: one runtime thread per core of a board's biggest cluster


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
    threads: int | str | None = 1     # None: each device's default_threads; "big": a board's big cores
    warmup: int = 10
    runs: int = 50
    batch_size: int = 1               # accuracy pass: 1 = each example alone, as an app runs it
    profile: bool = False             # per-op profile (top operators by time) on native devices
    emulated: ScreeningSettings = ScreeningSettings()  # how emulated devices spend emulator time
    emulated_limit: int | None = None  # emulated devices use the first N of the examples (None: all of them)
    emulated_jobs: int = 2            # emulated jobs at once (each QEMU uses one core)
    clock_ghz: tuple[tuple[str, float], ...] = ()  # (emulated device, GHz): overrides its estimate's reference clock

    def validate(self) -> None:
        if isinstance(self.threads, str) and self.threads != BIG_CORES:
            raise UsageError(f'threads must be a number >= 1 or "{BIG_CORES}" (got {self.threads!r})')
        for name, low in (("seq_len", 2), ("threads", 1), ("warmup", 0), ("runs", 1), ("batch_size", 1),
                          ("emulated_jobs", 1)):
            if name == "threads" and self.threads == BIG_CORES:
                continue
            if getattr(self, name) is not None and int(getattr(self, name)) < low:
                raise UsageError(f"{name} must be at least {low} (got {getattr(self, name)})")
        for name in ("limit", "emulated_limit"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1 (got {getattr(self, name)})")
        if not self.devices:
            raise UsageError("no device given")
        if self.emulated.method not in METHODS:
            raise UsageError(f"unknown emulated method {self.emulated.method!r}; use one of {', '.join(METHODS)}")
        for device, ghz in self.clock_ghz:
            if not (isinstance(ghz, (int, float)) and 0.05 <= ghz <= 10):
                raise UsageError(f"clock of {device} must be between 0.05 and 10 GHz (got {ghz!r})")
        if self.emulated.probe < 1 or self.emulated.probe_fp32 < 1 or not self.emulated.safety >= 1:
            raise UsageError("emulated probe sizes must be at least 1 and the safety factor at least 1")

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["devices"] = list(self.devices)
        out["clock_ghz"] = dict(self.clock_ghz)
        out["data"] = str(self.data) if self.data is not None else None
        return out
