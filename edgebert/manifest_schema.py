"""manifest.json's schema, as code: checked every time a manifest is loaded.

A manifest may be damaged, edited by hand or crafted (artifact directories travel between CI jobs).
Each problem becomes one line naming the key, e.g.
``artifacts["model.onnx"].precision: unknown value 'int4' (expected one of fp32, int8-dynamic, int8-static)``,
instead of a traceback somewhere later. Known keys must have the types edgebert writes; unknown keys
are allowed (a newer edgebert may add some). Paths (``artifacts[*].path``, ``tokenizer.path``) must stay
inside the directory after resolving symlinks, and names (artifact keys, ``parent``) must be plain
relative names (``safepath``).

Each spec is a callable ``spec(value, key, directory)`` that raises ``SchemaError`` on the first problem.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Callable

from . import safepath
from .vocabulary import FORMATS, PRECISIONS, QUANT_MODES  # noqa: F401  (the schema's vocabulary)

SCHEMA_VERSION = 1
#: ``quantization.op_groups[*].group``, in the order they are listed (``quantize/groups.py``).
OP_GROUPS = ("static int8", "dynamic int8", "int8 weights only", "float")
MAX_INT = 2 ** 63 - 1      # sizes and counts fit an int64
MAX_LABEL = 2 ** 31 - 1    # label ids end up in int64 arrays; keep them modest

Spec = Callable[[Any, str, Path], None]


class SchemaError(ValueError):
    """The first schema problem: ``key`` (as ``a.b["c"].d``) and what is wrong with its value."""

    def __init__(self, key: str, problem: str):
        self.key, self.problem = key, problem
        super().__init__(f"{key}: {problem}" if key else problem)


# --- helpers ----------------------------------------------------------------------------------
_KINDS = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
          float: "a number", type(None): "null"}


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _show(value: Any, limit: int = 60) -> str:
    """A short, single-line repr (repr escapes newlines and other line separators)."""
    try:
        text = repr(value) if not isinstance(value, int) or abs(value) < 10 ** 30 else f"<{value.bit_length()}-bit int>"
    except ValueError:  # an int too long to print (sys.get_int_max_str_digits) somewhere inside
        text = f"<{_kind(value)}>"
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _field(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _entry(key: str, name: str) -> str:
    return f"{key}[{json.dumps(name, ensure_ascii=True)}]"  # ASCII-escaped: always one line


def _fail(key: str, expected: str, value: Any) -> None:
    raise SchemaError(key, f"expected {expected}, got {_kind(value)} {_show(value)}")


# --- primitive specs --------------------------------------------------------------------------
def anything(value: Any, key: str, directory: Path) -> None:
    return None


def string(value: Any, key: str, directory: Path) -> None:
    if not isinstance(value, str):
        _fail(key, "a string", value)


def nonempty_string(value: Any, key: str, directory: Path) -> None:
    if not isinstance(value, str) or not value:
        _fail(key, "a non-empty string", value)


def boolean(value: Any, key: str, directory: Path) -> None:
    if not isinstance(value, bool):
        _fail(key, "true or false", value)


def number(value: Any, key: str, directory: Path) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(key, "a number", value)


def positive_number(value: Any, key: str, directory: Path) -> None:
    number(value, key, directory)
    if not (math.isfinite(value) and value > 0):
        raise SchemaError(key, f"expected a finite number > 0, got {_show(value)}")


def integer(low: int = 0, high: int = MAX_INT) -> Spec:
    def spec(value: Any, key: str, directory: Path) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(key, "an integer", value)
        if not low <= value <= high:
            raise SchemaError(key, f"out of range: {_show(value)} (expected {low}..{high})")
    return spec


def one_of(*values: Any) -> Spec:
    def spec(value: Any, key: str, directory: Path) -> None:
        if not isinstance(value, str) or value not in values:
            raise SchemaError(key, f"unknown value {_show(value)} (expected one of {', '.join(values)})")
    return spec


def matching(pattern: str, what: str) -> Spec:
    regex = re.compile(pattern)

    def spec(value: Any, key: str, directory: Path) -> None:
        if not isinstance(value, str) or not regex.fullmatch(value):
            _fail(key, what, value)
    return spec


sha256_hex = matching(r"[0-9a-f]{64}", "a sha256 (64 lowercase hex digits)")


def nullable(inner: Spec) -> Spec:
    def spec(value: Any, key: str, directory: Path) -> None:
        if value is not None:
            inner(value, key, directory)
    return spec


def list_of(inner: Spec) -> Spec:
    def spec(value: Any, key: str, directory: Path) -> None:
        if not isinstance(value, list):
            _fail(key, "a list", value)
        for i, item in enumerate(value):
            inner(item, f"{key}[{i}]", directory)
    return spec


def mapping(inner: Spec, key_spec: Spec | None = None) -> Spec:
    """An object with arbitrary keys, every value matching ``inner`` (keys checked by ``key_spec``)."""
    def spec(value: Any, key: str, directory: Path) -> None:
        if not isinstance(value, dict):
            _fail(key, "an object", value)
        for name, item in value.items():
            if key_spec is not None:
                key_spec(name, _entry(key, name), directory)
            inner(item, _entry(key, name), directory)
    return spec


def record(required: dict[str, Spec] | None = None, optional: dict[str, Spec] | None = None) -> Spec:
    """An object with known keys (``required`` must be present); other keys are allowed and not checked."""
    required, optional = required or {}, optional or {}

    def spec(value: Any, key: str, directory: Path) -> None:
        if not isinstance(value, dict):
            _fail(key, "an object", value)
        for name, inner in required.items():
            if name not in value:
                raise SchemaError(_field(key, name), "missing (required)")
            inner(value[name], _field(key, name), directory)
        for name, inner in optional.items():
            if name in value:
                inner(value[name], _field(key, name), directory)
    return spec


# --- path-like values -------------------------------------------------------------------------
def inside_path(value: Any, key: str, directory: Path) -> None:
    """A relative path that stays inside the artifact directory, symlinks resolved."""
    try:
        target = safepath.resolve_inside(directory, value)
    except safepath.UnsafePath as exc:
        raise SchemaError(key, f"{_show(value)} {exc}") from None
    if target.resolve() == (Path(directory) / "manifest.json").resolve():
        raise SchemaError(key, f"{_show(value)} is the manifest itself")


def plain_name(value: Any, key: str, directory: Path) -> None:
    """An artifact name / parent reference: a relative name (no '..', not absolute), not resolved."""
    problem = safepath.lexical_problem(value)
    if problem:
        raise SchemaError(key, f"{_show(value)} {problem}")


def label_id_key(value: Any, key: str, directory: Path) -> None:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{1,9}", value):
        raise SchemaError(key, f"expected a label id (a decimal integer as a string), got {_show(value)}")


def schema_version(value: Any, key: str, directory: Path) -> None:
    if isinstance(value, bool) or value != SCHEMA_VERSION or not isinstance(value, int):
        raise SchemaError(key, f"unsupported value {_show(value)} (this edgebert reads schema_version "
                               f"{SCHEMA_VERSION}; re-create the directory with `edgebert export`)")


# --- the manifest -----------------------------------------------------------------------------
VERSIONS = mapping(string)
COUNTS = mapping(integer())

METRICS = record(optional={
    "status": string, "error": nullable(string), "accuracy": nullable(number), "agreement": nullable(number),
    "max_abs_logit_diff_vs_fp32": nullable(number), "n_samples": nullable(integer()),
    "latency_ms": nullable(record()), "threads": nullable(integer(1)), "runtime": nullable(record()),
    "emulated": nullable(boolean), "peak_rss_mb": nullable(number), "drift_vs_desktop": nullable(record()),
    "dataset": nullable(string), "checked": string, "instructions_per_inference": nullable(number),
})

OP_GROUP = record(required={"group": one_of(*OP_GROUPS), "ops": COUNTS, "why": string},
                  optional={"notes": mapping(string)})

GOAL_MEASURE = record(required={"drop_points": number, "float_layers": integer(), "size_bytes": integer()},
                      optional={"drop_ci95_points": list_of(number), "accuracy": record()})
ACCURACY_GOAL = record(
    required={"max_drop_points": number, "met": boolean, "before": GOAL_MEASURE, "after": GOAL_MEASURE},
    optional={"fallback": list_of(record(required={"layer": string}, optional={"op": string, "rank": integer(1)})),
              "sensitivity": nullable(record(required={"method": string},
                                             optional={"ranking": list_of(record(required={"layer": string}))})),
              "layers": integer(), "data": record(), "fp32": record(), "tried": list_of(record()), "interval": string},
)

QUANTIZATION = record(optional={
    "mode": one_of(*QUANT_MODES), "recipe": string, "settings": record(),
    "quantized_ops": COUNTS, "float_ops": COUNTS, "quantize_nodes": COUNTS, "node_count": integer(),
    "rewrites": list_of(record()), "notes": record(), "calibration": record(),
    "op_groups": list_of(OP_GROUP), "recipe_description": string, "accuracy_goal": ACCURACY_GOAL,
    "op_groups_scope": record(required={"per": one_of("graph", "signature", "file")},
                              optional={"signatures": integer(1)}),
})

VALIDATION = record(optional={
    "texts": integer(), "source": string, "max_abs_logit_diff": number, "prediction_agreement": number,
    "min_agreement": number, "max_abs_diff": number, "atol": number, "origin": string, "texts_label": string,
    "gated_on": string, "agreement": record(), "hint": string, "overlaps_calibration": boolean,
})

ARTIFACT = record(
    required={"path": inside_path, "format": one_of(*FORMATS), "precision": one_of(*PRECISIONS),
              "sha256": sha256_hex, "size_bytes": integer()},
    optional={
        "parent": nullable(plain_name), "created": string, "versions": VERSIONS,
        "exporter": record(), "inputs": nullable(mapping(record())), "outputs": nullable(mapping(record())),
        "graph_rewrites": list_of(record(required={"name": string}, optional={"count": integer(), "why": string})),
        "fixed_shape": nullable(record(optional={"batch": integer(1), "seq_len": integer(1)})),
        "op_counts": COUNTS, "node_count": integer(), "validation": VALIDATION, "quantization": QUANTIZATION,
        "metrics": mapping(METRICS),
        "build": nullable(record(optional={"step": string, "fingerprint": string, "stamped": string})),
    },
)

MODEL = record(
    required={"architecture": nonempty_string},
    optional={"model_class": string, "source": record(), "num_labels": integer(1, MAX_LABEL),
              "id2label": mapping(string, key_spec=label_id_key), "label2id": mapping(integer(0, MAX_LABEL)),
              "max_position_embeddings": integer(1), "vocab_size": integer(1), "parameters": integer(),
              "encoder_macs_per_token": record(required={"seq_len": integer(1), "macs": integer(),
                                                         "projections": integer()}, optional={"source": string})},
)

MANIFEST = record(
    required={
        "schema_version": schema_version, "created": string, "model": MODEL,
        "tokenizer": record(required={"path": inside_path}, optional={"class": string}),
        "versions": VERSIONS,
        "artifacts": mapping(ARTIFACT, key_spec=plain_name),
    },
    optional={
        "updated": string,
        "export": record(optional={"seq_len": integer(1), "atol": positive_number}),
        "build": record(optional={
            "fingerprints": mapping(record(optional={"sha256": string, "inputs": record()})),
            "check": record(optional={"fingerprint": string, "inputs": record(), "report_sha256": string,
                                      "stamped": string}),
        }),
    },
)


def validate(data: Any, directory: str | Path) -> None:
    """Raise ``SchemaError`` naming the first key of ``data`` that does not fit the manifest schema."""
    if not isinstance(data, dict):
        raise SchemaError("", f"expected a JSON object at the top level, got {_kind(data)}")
    MANIFEST(data, "", Path(directory))
