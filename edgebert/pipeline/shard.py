"""``edgebert build CONFIG --shard K/N``: which share of a build's work one CI job does.

The work items are the (model, device) pairs of the config, model-major in config order (models as
listed, each with its devices as listed). Shard K of N takes the K-th of N contiguous blocks of that
list whose sizes differ by at most one. The assignment depends only on the config and N, so it is the
same on every machine, and contiguous blocks keep a model's devices together: a model is exported and
quantized only by the shards whose block reaches it (with N <= models, at most two shards share one
model; with N = models x devices, every shard has one pair).

Why (model, device) and not (artifact, device): a record's agreement with fp32 needs the fp32 logits
of the same format on the same device, so every artifact of a model on one device is checked in one
place. A shard that checks an emulated device of a model without owning its desktop pair still runs
the desktop accuracy pass of that model (the drift reference and the margins emulation needs; no
latency) and drops those records: the owner of (model, desktop) reports them. A shard exports and
quantizes every model it checks; the merge requires their artifacts to be identical (sha256) across
shards, which they are for the same inputs and tool versions (export and quantization are
deterministic here).

:class:`Whole` (no ``--shard``) and :class:`Share` answer the same questions, so the build asks them
without an ``if`` at each place: which models, which check jobs, which records. Every shard sets up
every device of the config (a no-op once cached), even a desktop-only share: the device fingerprints,
which the merge compares, must be the same in every part.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from .config import BuildConfig, ModelSpec

ASSIGNMENT = "contiguous blocks of the (model, device) pairs, model-major in config order"
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse(text: str) -> ShardSpec:
    """``"K/N"`` with 1 <= K <= N; anything else is a one-line usage error."""
    m = _SPEC.match(str(text))
    if not m:
        raise UsageError(f"--shard {text!r}: expected K/N, e.g. 1/4 (shard K of N, counted from 1)")
    index, count = int(m.group(1)), int(m.group(2))
    if count < 1 or not 1 <= index <= count:
        raise UsageError(f"--shard {text}: K must be between 1 and N (got K={index}, N={count})")
    return ShardSpec(index, count)


def items(config: BuildConfig) -> list[tuple[str, str]]:
    """Every (model, device) pair of the build, in the order shards are cut from."""
    return [(m.name, d) for m in config.models for d in config.devices.names]


def blocks(work: list[Any], count: int) -> list[list[Any]]:
    """``count`` contiguous blocks of ``work`` whose sizes differ by at most one (some empty if count > len)."""
    n = len(work)
    return [work[(k * n) // count:((k + 1) * n) // count] for k in range(count)]


def share_items(config: BuildConfig, spec: ShardSpec) -> list[tuple[str, str]]:
    return blocks(items(config), spec.count)[spec.index - 1]


class Whole:
    """The unsharded build: everything."""

    spec: ShardSpec | None = None

    def __init__(self, config: BuildConfig):
        self.config = config

    def models(self) -> tuple[ModelSpec, ...]:
        return self.config.models

    def work(self, items: list) -> list:
        """The build's work items (``steps.work_items``) this share does."""
        return items

    def check_fingerprint(self, model: str, print_: dict[str, Any]) -> dict[str, Any]:
        return print_

    def jobs(self, model: str, jobs: list) -> list:
        return jobs

    def prune(self, model: str, plan) -> None:
        return None

    def summary(self) -> dict[str, Any]:
        return {}


class Share(Whole):
    """Shard K of N: the (model, device) pairs of its block, plus what they need."""

    def __init__(self, config: BuildConfig, spec: ShardSpec):
        super().__init__(config)
        self.spec = spec
        self.items = share_items(config, spec)
        self.owned: dict[str, tuple[str, ...]] = {}
        for model, device in self.items:
            self.owned[model] = (*self.owned.get(model, ()), device)

    def models(self) -> tuple[ModelSpec, ...]:
        return tuple(m for m in self.config.models if m.name in self.owned)

    def _needs_reference(self, model: str) -> bool:
        from .. import devices as registry

        return any(registry.get(d).emulated for d in self.owned.get(model, ()))

    def work(self, items: list) -> list:
        """The steps of owned models; a check narrowed to the owned devices."""
        return [dataclasses.replace(i, devices=tuple(d for d in i.devices if d in self.owned[i.model]))
                if i.devices else i for i in items if i.model in self.owned]

    def check_fingerprint(self, model: str, print_: dict[str, Any]) -> dict[str, Any]:
        """The check's fingerprint with the share added: a check of another share is never reused for
        this one (the merge drops ``shard`` again to get the unsharded fingerprint)."""
        from . import fingerprint as fp

        inputs = {**print_["inputs"], "shard": {"spec": str(self.spec), "devices": list(self.owned.get(model, ()))}}
        return {"sha256": fp.digest(inputs), "inputs": inputs}

    def jobs(self, model: str, jobs: list) -> list:
        """The check jobs of owned devices, and the desktop accuracy pass when an owned device is emulated."""
        from ..check.runner import DRIFT_REFERENCE

        owned = self.owned.get(model, ())
        reference = self._needs_reference(model)
        return [j for j in jobs if j.key[0] in owned
                or (reference and j.key[0] == DRIFT_REFERENCE and j.kind == "accuracy")]

    def prune(self, model: str, plan) -> None:
        """Drop the records of devices this shard does not own (kept: a drift-reference-only desktop,
        which the unsharded report has too; every shard that needs it has the same one)."""
        owned = set(self.owned.get(model, ())) | set(plan.reference_only)
        for key in [k for k in plan.records if k[0] not in owned]:
            del plan.records[key]

    def summary(self) -> dict[str, Any]:
        """The ``shard`` record of this part's summary.json: what ``build merge`` checks parts against."""
        from ..manifest import package_versions
        from .steps import _device_fingerprint

        return {"shard": {"index": self.spec.index, "count": self.spec.count, "spec": str(self.spec),
                          "assignment": ASSIGNMENT, "items": [list(i) for i in self.items],
                          "versions": package_versions(),
                          "devices": _device_fingerprint(self.config.devices.names)}}


def for_build(config: BuildConfig, spec: ShardSpec | None) -> Whole:
    return Whole(config) if spec is None else Share(config, spec)


def owners(config_items: Iterable[tuple[str, str]], count: int) -> dict[tuple[str, str], int]:
    """(model, device) -> the 1-based shard that owns it."""
    return {item: k + 1 for k, block in enumerate(blocks(list(config_items), count)) for item in block}
