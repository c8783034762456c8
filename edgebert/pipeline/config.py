"""The build configuration (``edgebert.toml``): typed, frozen dataclasses parsed from TOML.

One config describes the whole CI matrix: models x formats x precisions, calibration, evaluation,
devices and gates. Every key is checked: an unknown key or a wrong type is a :class:`UsageError`
naming the key and its line (``tomllib`` gives no line numbers for keys, so the line is found by
scanning the source text for the key inside its table). Relative paths are relative to the file.

Every key is optional: an omitted key (or table) takes the default of its dataclass field below, the
one source of defaults (``parse`` reads them from the dataclasses). Every key, with its default
(``tests/test_build_config.py`` parses this block and compares it with ``parse("")``)::

    [build]
    models = ["distilbert", "squeezebert"]        # built-in name, local HF dir, hub id, or {name, source}
    formats = ["onnx"]
    precisions = ["fp32", "int8-dynamic", "int8-static"]
    seq_len = 128
    output = "edgebert-build"  # omitted: in the working directory; set: relative to this file

    [calibration]      # int8-static
    data = ""          # CSV/TSV/JSONL with a text column; "" = built-in calibration split
    text_column = "text"
    samples = 256
    method = "minmax"
    per_channel = true

    [quantize]
    min_agreement = 0.9  # int8 vs fp32 agreement on the confident texts (docs/quantization.md); below: refused
    target = "devices"   # ONNX dynamic preset: "devices" = the weakest int8 core among the devices; or a --target
    # max_drop = 0.5     # accuracy goal: points int8 may lose vs fp32 on the validation split (unset: none)
    keep_best = false    # goal not met: keep the best model found anyway (the build still fails)

    [evaluation]
    data = ""          # labelled CSV/TSV/JSONL; "" = built-in test split
    text_column = "text"
    label_column = "label"
    limit = 0          # native devices: the first N examples (0 = all of them)
    emulated_limit = 500      # emulated devices: the first N of those examples (0 = all of them)
    emulated_method = "screened"  # "screened" (margin screening) | "all" (every example emulated)
    emulated_probe = 32       # random examples emulated per int8 artifact (screened)
    emulated_probe_fp32 = 4   # per fp32 artifact
    emulated_safety = 1.5     # drift bound = safety x the largest drift measured under emulation
    runs = 50
    warmup = 10
    profile = true     # per-op profile on the native devices

    [devices]
    names = ["desktop"]  # e.g. ["desktop", "cortex-a53", "cortex-a76", "pi5"] (``edgebert devices list``)
    threads = 1
    setup = true       # set up the emulated-ARM environment when it is missing
    emulated_jobs = 2  # models checked at once on emulated devices (each QEMU uses one core)
    boards = {}        # real boards over SSH: [devices.boards.NAME] tables (below), listed in names by NAME

    [baseline]         # regression limits vs ``edgebert build --baseline FILE`` (unused without it)
    max_instructions_increase = 0.02  # fraction: +2% guest instructions per inference
    max_estimated_increase = 0.05     # fraction: +5% estimated ms (cycle model) on emulated devices
    max_accuracy_drop = 0.5           # points
    max_size_increase = 0.02          # fraction: +2% bytes
    # max_latency_increase = 0.10     # fraction, desktop p50; default: not gated (information only)

Gates are off unless set (each is one limit; examples)::

    [gates]
    max_accuracy_drop = 2.0    # points vs the fp32 artifact of the same format, same device
    min_accuracy = 0.75
    max_size_mb = 100
    max_latency_p90_ms = 200   # native devices
    max_drift_vs_desktop = 1.0 # emulated devices: max |logit diff| vs the desktop run
    max_flips_vs_desktop = 2   # emulated devices: predictions that differ from the desktop's
    max_flip_rate = 0.02       # emulated devices: 95% upper bound of the flip rate vs the desktop
    min_int8_kernel_share = 0.01  # int8 artifacts on a CPU model with dot product / i8mm must run
                                  # those instructions (share of the counted inference)

    [gates.max_instructions]   # guest instructions per inference, per emulated device of devices.names
    cortex-a53 = 2.0e9

    [gates.max_estimated_ms]   # estimated ms (cycle model), per emulated device of devices.names
    cortex-a53 = 900

    [devices.clock_ghz]        # the clock an emulated device's estimate is at (default: its reference device)
    cortex-a53 = 1.4

The built-in default (:func:`default_config`, ``edgebert build`` without a config) is not these
defaults: it builds both formats on the desktop and two emulated ARM cores, with gates.

Real boards over SSH are named in ``[devices.boards.NAME]`` tables and listed in ``names`` by that name
(an address ``ssh://USER@HOST[:PORT]`` / ``ssh:ALIAS`` may also be listed directly)::

    [devices.boards.pi5]
    address = "ssh:pi5"   # or "ssh://pi@192.168.1.20:22"
    ssh_config = ""       # an ssh config file for this board (-F); "" = yours (~/.ssh/config)
    python = ""           # the board's Python; "" = $EDGEBERT_BOARD_PYTHON there, else python3
    emulated = false      # true: it runs under an emulator, so its wall time is never reported as latency
    # threads = "big"     # this board's runtime threads: N, or "big" = one per core of its biggest cluster
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..vocabulary import (
    ARCHITECTURES, BUILD_TARGET_DEVICES, CALIBRATION_METHODS, FORMATS, PRECISIONS, QUANTIZE_TARGETS, SCREENING_METHODS,
)

DEFAULT_OUTPUT = "edgebert-build"
DEFAULT_MODELS = ARCHITECTURES
DEFAULT_DEVICES = ("desktop",)
#: The built-in default build's devices (``default_config``): the desktop and two emulated ARM cores.
BUILTIN_DEVICES = ("desktop", "cortex-a53", "cortex-a76")


@dataclass(frozen=True)
class ModelSpec:
    name: str      # artifact directory name under the output dir
    source: str    # what ``edgebert export`` takes: built-in name, local dir, hub id


@dataclass(frozen=True)
class CalibrationConfig:
    data: Path | None = None
    text_column: str = "text"
    samples: int = 256
    method: str = CALIBRATION_METHODS[0]
    per_channel: bool = True


@dataclass(frozen=True)
class QuantizeConfig:
    min_agreement: float = 0.9       # int8 vs fp32 predictions on the validation texts; below: no artifact
    target: str = "devices"          # ONNX dynamic preset: "devices" (from [devices] names) or a quantize --target
    max_drop: float | None = None    # accuracy goal in points (``quantize/accuracy_goal.py``); None: no goal
    keep_best: bool = False


@dataclass(frozen=True)
class EvaluationConfig:
    data: Path | None = None
    text_column: str = "text"
    label_column: str = "label"
    limit: int | None = None         # native devices: the first N examples; None (TOML 0) = all
    emulated_limit: int | None = 500  # emulated ARM devices: the first N of those; None (TOML 0) = all
    emulated_method: str = SCREENING_METHODS[0]  # "screened" | "all" (edgebert/check/screening.py)
    emulated_probe: int = 32         # random examples emulated per int8 artifact
    emulated_probe_fp32: int = 4     # per fp32 artifact
    emulated_safety: float = 1.5     # drift bound = safety x the largest drift measured
    runs: int = 50
    warmup: int = 10
    profile: bool = True             # per-op profile on native devices


@dataclass(frozen=True)
class BoardSpec:
    """A real board named in ``[devices.boards.NAME]`` (registered with the device registry on parse)."""

    name: str
    address: str                     # ssh://USER@HOST[:PORT] or ssh:ALIAS
    ssh_config: Path | None = None   # -F file; None: the user's ~/.ssh/config
    python: str | None = None        # None: $EDGEBERT_BOARD_PYTHON on the board, else python3
    emulated: bool = False           # declared emulated: wall time is not latency
    threads: int | str | None = None  # the board's own runtime threads: N, or "big" (one per big core)

    def options(self) -> dict[str, Any]:
        return {"ssh_config": str(self.ssh_config) if self.ssh_config else None, "python": self.python,
                "emulated": self.emulated, "threads": self.threads}


@dataclass(frozen=True)
class DevicesConfig:
    names: tuple[str, ...] = DEFAULT_DEVICES   # the desktop only; default_config adds two emulated ARM cores
    boards: tuple[BoardSpec, ...] = ()         # boards named in [devices.boards.NAME]
    threads: int = 1
    setup: bool = True               # run the emulated-ARM setup when a device needs it
    emulated_jobs: int = 2           # models checked at once on emulated devices (QEMU is single-threaded)
    clock_ghz: tuple[tuple[str, float], ...] = ()  # (emulated device, GHz) of its estimate (default: catalog)


@dataclass(frozen=True)
class GatesConfig:
    max_accuracy_drop: float | None = None     # points vs fp32 (same format, same device)
    min_accuracy: float | None = None          # fraction 0..1
    max_size_mb: float | None = None           # 10^6 bytes
    max_latency_p90_ms: float | None = None    # native devices
    max_drift_vs_desktop: float | None = None  # emulated devices: max |logit diff| vs desktop
    max_flips_vs_desktop: int | None = None    # emulated devices: prediction flips vs desktop
    max_flip_rate: float | None = None         # emulated devices: 95% upper bound of the flip rate
    min_int8_kernel_share: float | None = None  # emulated, int8, CPU with dotprod/i8mm: SDOT/SMMLA share (opt-in)
    max_instructions: tuple[tuple[str, float], ...] = ()  # (emulated device, instructions per inference)
    max_estimated_ms: tuple[tuple[str, float], ...] = ()  # (emulated device, estimated ms, cycle model)

    def instructions_limit(self, device: str) -> float | None:
        return dict(self.max_instructions).get(device)

    def estimated_ms_limit(self, device: str) -> float | None:
        return dict(self.max_estimated_ms).get(device)


@dataclass(frozen=True)
class BaselineConfig:
    """Regression limits against a baseline file (``baseline.py``); None = information only."""

    max_instructions_increase: float | None = 0.02  # fraction of the baseline's instructions per inference
    max_estimated_increase: float | None = 0.05     # fraction of the baseline's estimated ms (emulated devices)
    max_accuracy_drop: float | None = 0.5           # points below the baseline's accuracy
    max_size_increase: float | None = 0.02          # fraction of the baseline's size in bytes
    max_latency_increase: float | None = None       # fraction of the baseline's desktop p50 (noisy: opt-in)


@dataclass(frozen=True)
class BuildConfig:
    models: tuple[ModelSpec, ...] = tuple(ModelSpec(m, m) for m in DEFAULT_MODELS)
    formats: tuple[str, ...] = ("onnx",)     # default_config: every registered format
    precisions: tuple[str, ...] = PRECISIONS
    seq_len: int = 128
    output: Path = Path(DEFAULT_OUTPUT)
    calibration: CalibrationConfig = CalibrationConfig()
    quantize: QuantizeConfig = QuantizeConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    devices: DevicesConfig = DevicesConfig()
    gates: GatesConfig = GatesConfig()
    baseline: BaselineConfig = BaselineConfig()
    source: str = "built-in default"          # where the config came from (for reports)

    @property
    def emulated_devices(self) -> tuple[str, ...]:
        from .. import devices as registry

        return tuple(d for d in self.devices.names if registry.get(d).emulated)

    def to_json(self) -> dict[str, Any]:
        def conv(v):
            if isinstance(v, Path):
                return str(v)
            if isinstance(v, tuple):
                return [conv(x) for x in v]
            if hasattr(v, "__dataclass_fields__"):
                return {f.name: conv(getattr(v, f.name)) for f in fields(v)}
            return v

        out = conv(self)
        out["gates"]["max_instructions"] = dict(self.gates.max_instructions)
        out["gates"]["max_estimated_ms"] = dict(self.gates.max_estimated_ms)
        out["devices"]["clock_ghz"] = dict(self.devices.clock_ghz)
        return out


#: Instruction-count gates of the built-in default, per emulated CPU: the largest count measured on the
#: built-in models' artifacts at seq_len 128 (fp32 TFLite: 821 M on cortex-a53, 515 M on cortex-a76;
#: int8 ones 425-572 M and 182-240 M), plus ~20% headroom.
DEFAULT_MAX_INSTRUCTIONS = (("cortex-a53", 1.0e9), ("cortex-a76", 6.2e8))


def default_config() -> BuildConfig:
    """The built-in default: both architectures, every registered format, three precisions, desktop +
    two emulated ARM cores (``BUILTIN_DEVICES``), gates loose enough for the built-in models (its time on
    2 cores: docs/builds-and-ci.md, measured by benchmarks/bench_build.py). Differs from an empty config
    (``parse("")``: the dataclass defaults)."""
    from ..export import EXPORTERS

    formats = tuple(f for f in FORMATS if f in EXPORTERS)
    return BuildConfig(
        formats=formats,
        evaluation=EvaluationConfig(limit=1000, emulated_limit=500, runs=30, warmup=5),
        devices=DevicesConfig(names=BUILTIN_DEVICES),
        gates=GatesConfig(max_accuracy_drop=3.0, min_accuracy=0.75, max_size_mb=100.0,
                          max_latency_p90_ms=250.0, max_drift_vs_desktop=1.0, max_flip_rate=0.03,
                          max_instructions=DEFAULT_MAX_INSTRUCTIONS),
    )


# --- parsing ----------------------------------------------------------------------------------
class _Source:
    """The TOML text, to find the line of a key (tomllib reports none)."""

    _HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")

    def __init__(self, path: Path | None, text: str):
        self.path, self.lines = path, text.splitlines()

    def line_of(self, table: str, key: str) -> int | None:
        """1-based line where ``key`` is set inside ``[table]`` (or as ``table.key`` / inline)."""
        current, first_anywhere = "", None
        key_re = re.compile(r'^\s*(?:[\w.-]+\.)?("?)' + re.escape(key) + r'\1\s*=')
        dotted_re = re.compile(r'^\s*' + re.escape(f"{table}.{key}") + r'\s*=') if table else None
        for i, line in enumerate(self.lines, 1):
            m = self._HEADER.match(line)
            if m:
                current = m.group(1).replace('"', "").replace(" ", "")
                continue
            if key_re.match(line) or (dotted_re and dotted_re.match(line)):
                if current == table or (dotted_re and dotted_re.match(line)):
                    return i
                first_anywhere = first_anywhere or i
            elif first_anywhere is None and re.search(r'[{,]\s*"?' + re.escape(key) + r'"?\s*=', line):
                first_anywhere = i  # inside an inline table
        if first_anywhere is None and key:
            for i, line in enumerate(self.lines, 1):  # a table header named after the key
                m = self._HEADER.match(line)
                if m and m.group(1).replace('"', "").split(".")[-1] == key:
                    return i
        return first_anywhere

    def error(self, table: str, key: str, message: str) -> UsageError:
        where = str(self.path) if self.path else "config"
        line = self.line_of(table, key)
        dotted = f"{table}.{key}" if table else key
        return UsageError(f"{where}:{line if line else '?'}: {dotted}: {message}")


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(value), type(value).__name__)


class _Table:
    """One TOML table being read: typed getters that name the key and line on error."""

    def __init__(self, src: _Source, name: str, data: Any):
        self.src, self.name = src, name
        if not isinstance(data, dict):
            raise src.error("", name, f"must be a table, got {_type_name(data)}")
        self.data = data
        self.used: set[str] = set()

    def err(self, key: str, message: str) -> UsageError:
        return self.src.error(self.name, key, message)

    def get(self, key: str, kind: str, default: Any, *, low: float | None = None, choices=None,
            allow_none: bool = False) -> Any:
        self.used.add(key)
        if key not in self.data:
            return default
        v = self.data[key]
        if kind == "int":
            if isinstance(v, bool) or not isinstance(v, int):
                raise self.err(key, f"must be an integer, got {_type_name(v)} {v!r}")
        elif kind == "float":
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise self.err(key, f"must be a number, got {_type_name(v)} {v!r}")
            v = float(v)
        elif kind == "bool":
            if not isinstance(v, bool):
                raise self.err(key, f"must be true or false, got {_type_name(v)} {v!r}")
        elif kind == "str":
            if not isinstance(v, str):
                raise self.err(key, f"must be a string, got {_type_name(v)} {v!r}")
        elif kind == "strlist":
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise self.err(key, f"must be an array of strings, got {v!r}")
            if not v:
                raise self.err(key, "must not be empty")
            v = tuple(dict.fromkeys(v))
            bad = [x for x in v if choices is not None and x not in choices]
            if bad:
                raise self.err(key, f"unknown value {bad[0]!r}; choose from {', '.join(choices)}")
            return v
        if low is not None and v < low:
            raise self.err(key, f"must be at least {low:g}, got {v!r}")
        if choices is not None and v not in choices:
            raise self.err(key, f"unknown value {v!r}; choose from {', '.join(choices)}")
        return v

    def path(self, key: str, base: Path) -> Path | None:
        value = self.get(key, "str", "")
        if not value:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else (base / p)

    def finish(self, known: tuple[str, ...] = ()) -> None:
        for key in self.data:
            if key not in self.used and key not in known:
                allowed = ", ".join(sorted(self.used | set(known)))
                raise self.err(key, f"unknown key (allowed in [{self.name}]: {allowed})")


TABLES = ("build", "calibration", "quantize", "evaluation", "devices", "gates", "baseline")


def _models(t: _Table, base: Path) -> tuple[ModelSpec, ...]:
    t.used.add("models")
    raw = t.data.get("models", list(DEFAULT_MODELS))
    if not isinstance(raw, list) or not raw:
        raise t.err("models", f"must be a non-empty array of model names/paths or {{name, source}} tables, got {raw!r}")
    out: list[ModelSpec] = []
    for item in raw:
        if isinstance(item, str):
            source, name = item, None
        elif isinstance(item, dict):
            extra = set(item) - {"name", "source"}
            if extra:
                raise t.err(sorted(extra)[0], "unknown key in a models entry (allowed: name, source)")
            source, name = item.get("source"), item.get("name")
            if not isinstance(source, str) or (name is not None and not isinstance(name, str)):
                raise t.err("models", f"entry {item!r}: source (and name) must be strings")
        else:
            raise t.err("models", f"entry {item!r} must be a string or a {{name, source}} table")
        local = Path(source).expanduser()
        is_path = source.startswith((".", "/", "~")) or (base / local).exists()
        if is_path and not local.is_absolute():
            source = str((base / local).resolve())
        name = name or Path(source.rstrip("/")).name or source
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", name)
        if not name.strip("."):  # "." or "..": the model's directory would be the output dir or its parent
            raise t.err("models", f"entry {item!r}: name {name!r} is not a directory name; give it a name=...")
        if any(m.name == name for m in out):
            raise t.err("models", f"two models named {name!r}; give each a distinct name ({{name=..., source=...}})")
        out.append(ModelSpec(name=name, source=source))
    return tuple(out)


def _boards(src: "_Source", d: "_Table", base: Path) -> tuple[BoardSpec, ...]:
    """``[devices.boards.NAME]`` tables, each registered as a device NAME (``devices.define_board``)."""
    from .. import devices as registry

    d.used.add("boards")
    raw = d.data.get("boards", {})
    if not isinstance(raw, dict):
        raise d.err("boards", f"must be tables [devices.boards.NAME], got {_type_name(raw)}")
    out = []
    for name, table in raw.items():
        if not isinstance(table, dict):
            raise d.err("boards", f"[devices.boards.{name}] must be a table with address = \"ssh://...\"")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise d.err("boards", f"board name {name!r}: use letters, digits, '.', '_' and '-'")
        t = _Table(src, f"devices.boards.{name}", table)
        address = t.get("address", "str", "")
        t.used.add("threads")
        threads = table.get("threads")
        if threads is not None and threads != "big" and not (isinstance(threads, int) and not
                                                             isinstance(threads, bool) and threads >= 1):
            raise t.err("threads", f'must be a number of threads >= 1 or "big" (one per big core), got {threads!r}')
        spec = BoardSpec(name=name, address=address, ssh_config=t.path("ssh_config", base),
                         python=t.get("python", "str", "") or None, emulated=t.get("emulated", "bool", False),
                         threads=threads)
        t.finish()
        if not address:
            raise t.err("address", "is required: ssh://USER@HOST[:PORT] or ssh:ALIAS")
        try:
            registry.define_board(name, address, **spec.options())
        except UsageError as exc:
            raise t.err("address", str(exc)) from None
        out.append(spec)
    return tuple(out)


def _per_emulated_device(src: _Source, table: _Table, key: str, names: tuple[str, ...], what: str,
                         low: float) -> tuple[tuple[str, float], ...]:
    """A ``[TABLE.KEY]`` sub-table of emulated device = number (e.g. ``[gates.max_instructions]``)."""
    from .. import devices as registry

    table.used.add(key)
    raw = table.data.get(key, {})
    if not isinstance(raw, dict):
        raise table.err(key, f"must be a table of device = {what}, got {_type_name(raw)}")
    sub = _Table(src, f"{table.name}.{key}", raw)
    out = []
    for dev in raw:
        if dev not in names:
            raise sub.err(dev, f"device {dev!r} is not in devices.names ({', '.join(names)})")
        if not registry.get(dev).emulated:
            raise sub.err(dev, f"device {dev!r} is not emulated: {what} exist only for emulated ARM devices")
        out.append((dev, sub.get(dev, "float", None, low=low)))
    return tuple(out)


def parse(text: str, path: Path | None = None) -> BuildConfig:
    """A :class:`BuildConfig` from TOML text (``path``: for messages and relative paths)."""
    from .. import devices as registry
    from ..export import EXPORTERS

    src = _Source(path, text)
    where = str(path) if path else "config"
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{where}: not valid TOML ({exc})") from None
    for key in doc:
        if key not in TABLES:
            raise src.error("", key, f"unknown table or key (allowed tables: {', '.join(TABLES)})")
    base = (path.parent if path else Path.cwd()).resolve()
    tables = {name: _Table(src, name, doc.get(name, {})) for name in TABLES}

    b, B = tables["build"], BuildConfig()
    models = _models(b, base)
    formats = b.get("formats", "strlist", B.formats, choices=tuple(EXPORTERS))
    precisions = b.get("precisions", "strlist", B.precisions, choices=PRECISIONS)
    if "fp32" not in precisions:
        raise b.err("precisions", "must include fp32 (the reference for accuracy drop and int8 quantization)")
    seq_len = b.get("seq_len", "int", B.seq_len, low=2)
    output = b.path("output", base) or B.output

    c, C = tables["calibration"], CalibrationConfig()
    calibration = CalibrationConfig(
        data=c.path("data", base), text_column=c.get("text_column", "str", C.text_column),
        samples=c.get("samples", "int", C.samples, low=1),
        method=c.get("method", "str", C.method, choices=CALIBRATION_METHODS),
        per_channel=c.get("per_channel", "bool", C.per_channel))

    q = tables["quantize"]
    Q = QuantizeConfig()
    quantize = QuantizeConfig(min_agreement=q.get("min_agreement", "float", Q.min_agreement, low=0),
                              target=q.get("target", "str", Q.target,
                                           choices=(BUILD_TARGET_DEVICES, *QUANTIZE_TARGETS)),
                              max_drop=q.get("max_drop", "float", Q.max_drop, low=0),
                              keep_best=q.get("keep_best", "bool", Q.keep_best))
    if quantize.max_drop is not None and not math.isfinite(quantize.max_drop):
        raise q.err("max_drop", f"is a number of accuracy points >= 0, got {quantize.max_drop}")
    if quantize.keep_best and quantize.max_drop is None:
        raise q.err("keep_best", "only applies with an accuracy goal; set max_drop")
    if quantize.min_agreement > 1:
        raise q.err("min_agreement", f"is a fraction between 0 and 1, got {quantize.min_agreement:g}")

    e, E = tables["evaluation"], EvaluationConfig()
    evaluation = EvaluationConfig(  # limits: TOML 0 (also the default of None) = all examples
        data=e.path("data", base), text_column=e.get("text_column", "str", E.text_column),
        label_column=e.get("label_column", "str", E.label_column),
        limit=e.get("limit", "int", E.limit or 0, low=0) or None,
        emulated_limit=e.get("emulated_limit", "int", E.emulated_limit or 0, low=0) or None,
        emulated_method=e.get("emulated_method", "str", E.emulated_method, choices=SCREENING_METHODS),
        emulated_probe=e.get("emulated_probe", "int", E.emulated_probe, low=1),
        emulated_probe_fp32=e.get("emulated_probe_fp32", "int", E.emulated_probe_fp32, low=1),
        emulated_safety=e.get("emulated_safety", "float", E.emulated_safety, low=1),
        runs=e.get("runs", "int", E.runs, low=1), warmup=e.get("warmup", "int", E.warmup, low=0),
        profile=e.get("profile", "bool", E.profile))

    d, D = tables["devices"], DevicesConfig()
    boards = _boards(src, d, base)
    names = d.get("names", "strlist", D.names)
    for name in names:
        if name not in registry.names() and not registry.is_board(name):
            raise d.err("names", f"unknown device {name!r}; choose from {', '.join(registry.names())}, a board "
                                 f"of [devices.boards], or an address ssh://USER@HOST[:PORT] / ssh:ALIAS")
        if name.startswith(registry.BOARD_PREFIX):
            from ..devices.board import SshTarget

            SshTarget.parse(name)
    clocks = _per_emulated_device(src, d, "clock_ghz", names, "GHz", low=0.05)
    if any(ghz > 10 for _, ghz in clocks):
        raise d.err("clock_ghz", "a clock is between 0.05 and 10 GHz")
    devices = DevicesConfig(names=names, boards=boards, threads=d.get("threads", "int", D.threads, low=1),
                            setup=d.get("setup", "bool", D.setup),
                            emulated_jobs=d.get("emulated_jobs", "int", D.emulated_jobs, low=1), clock_ghz=clocks)

    g = tables["gates"]
    instructions = _per_emulated_device(src, g, "max_instructions", names, "instructions", low=1)
    estimated = _per_emulated_device(src, g, "max_estimated_ms", names, "estimated ms", low=0)
    G = GatesConfig()  # every scalar gate: off (None) unless set
    per_device = ("max_instructions", "max_estimated_ms")
    gates = GatesConfig(max_instructions=instructions, max_estimated_ms=estimated, **{
        f.name: g.get(f.name, "int" if str(f.type).startswith("int") else "float", getattr(G, f.name), low=0)
        for f in fields(GatesConfig) if f.name not in per_device})
    for name in ("min_accuracy", "min_int8_kernel_share"):
        value = getattr(gates, name)
        if value is not None and value > 1:
            raise g.err(name, f"is a fraction between 0 and 1, got {value:g}")
    bl = tables["baseline"]
    defaults = BaselineConfig()
    baseline = BaselineConfig(**{f.name: bl.get(f.name, "float", getattr(defaults, f.name), low=0)
                                 for f in fields(BaselineConfig)})
    for t in tables.values():
        t.finish()
    return BuildConfig(models=models, formats=formats, precisions=precisions, seq_len=seq_len, output=output,
                       calibration=calibration, quantize=quantize, evaluation=evaluation, devices=devices, gates=gates,
                       baseline=baseline, source=str(path) if path else "text")


def load(path: str | Path) -> BuildConfig:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such config file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read ({exc})") from None
    return parse(text, path)


__all__ = ["BaselineConfig", "BoardSpec", "BuildConfig", "CalibrationConfig", "QuantizeConfig", "DevicesConfig", "EvaluationConfig", "GatesConfig", "ModelSpec",
           "default_config", "load", "parse"]
