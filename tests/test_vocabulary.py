"""One place for each list of names: the CLI's choices, the config's, the manifest schema's and the reports'
come from ``edgebert/vocabulary.py``, and every registry implements exactly those names. Each test fails
when a second copy drifts (a registry gains a mode the CLI does not offer, a hand-kept tuple reappears)."""

from __future__ import annotations

import ast
from pathlib import Path

import click
import pytest

import edgebert
from edgebert import vocabulary as vocab
from edgebert.cli import SUPPORTED_MODELS, main
from edgebert.errors import UsageError

ROOT = Path(edgebert.__file__).parent


def choices(command: str, option: str) -> tuple[str, ...]:
    params = {p.name: p for p in main.commands[command].params}
    assert isinstance(params[option].type, click.Choice)
    return tuple(params[option].type.choices)


def default(command: str, option: str):
    return {p.name: p for p in main.commands[command].params}[option].default


def test_quantization_modes_and_precisions_are_the_recipe_registry():
    from edgebert import manifest_schema
    from edgebert.quantize import MODES, RECIPES

    assert MODES == vocab.QUANT_MODES == manifest_schema.QUANT_MODES
    assert choices("quantize", "mode") == vocab.QUANT_MODES
    assert ("fp32", *dict.fromkeys(r.precision for r in RECIPES.values())) == vocab.PRECISIONS
    assert manifest_schema.PRECISIONS == vocab.PRECISIONS
    from edgebert.pipeline.config import BuildConfig
    from edgebert.report.html import PRECISION_SHORT
    from edgebert.report.tables import PRECISION_ORDER

    assert BuildConfig().precisions == PRECISION_ORDER == tuple(PRECISION_SHORT) == vocab.PRECISIONS
    assert PRECISION_SHORT["int8-dynamic"] == "int8-dyn"


def test_calibration_methods_are_the_calibrators_ort_runs():
    from onnxruntime.quantization import CalibrationMethod

    from edgebert.pipeline import parse_config
    from edgebert.quantize import QuantizeSettings
    from edgebert.quantize.calibration import ORT_METHODS, _ort_method

    assert tuple(ORT_METHODS) == vocab.CALIBRATION_METHODS
    assert choices("quantize", "method") == vocab.CALIBRATION_METHODS
    assert default("quantize", "method") == QuantizeSettings(mode="static").method == vocab.CALIBRATION_METHODS[0]
    for method in vocab.CALIBRATION_METHODS:
        assert isinstance(_ort_method(method), CalibrationMethod)
        assert parse_config(f'[calibration]\nmethod = "{method}"\n').calibration.method == method
    with pytest.raises(UsageError, match="choose from minmax, entropy, percentile"):
        parse_config('[calibration]\nmethod = "kl"\n')


def test_screening_methods_are_the_screenings_implemented():
    from edgebert.check.runner import CheckSettings
    from edgebert.check.screening import METHODS, ScreeningSettings
    from edgebert.pipeline.config import EvaluationConfig

    assert METHODS == vocab.SCREENING_METHODS == choices("check", "emulated_method")
    assert default("check", "emulated_method") == ScreeningSettings().method == EvaluationConfig().emulated_method
    for method in METHODS:  # CheckSettings accepts each one
        CheckSettings(emulated=ScreeningSettings(method=method)).validate()


def test_supported_models_are_the_architecture_registry():
    from edgebert.models import names
    from edgebert.pipeline.config import BuildConfig

    assert names() == vocab.ARCHITECTURES
    assert all(name in SUPPORTED_MODELS for name in names())
    assert tuple(m.source for m in BuildConfig().models) == vocab.ARCHITECTURES
    assert all(name in main.commands["export"].help for name in names())


def test_quantize_targets_are_the_preset_registry():
    from edgebert.quantize.presets import PREFERENCE, PRESETS, TARGETS

    assert TARGETS == vocab.QUANTIZE_TARGETS == choices("quantize", "target")
    assert set(PREFERENCE) == set(PRESETS)


def test_formats_are_the_exporter_registry():
    from edgebert.devices import registry
    from edgebert.export import EXPORTERS
    from edgebert.pipeline import default_config

    assert tuple(EXPORTERS) == vocab.FORMATS == default_config().formats
    assert set(registry.get("desktop").runtimes) == set(vocab.FORMATS)


def test_report_file_names_are_written_once():
    """"report.json", "report.md", "report.html" and "summary.json" appear as strings only where defined."""
    names = {"report.json", "report.md", "report.html", "summary.json"}
    where = {}
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in names:
                where.setdefault(node.value, set()).add(str(path.relative_to(ROOT)))
    assert where == {"report.json": {"report/__init__.py"}, "report.md": {"report/__init__.py"},
                     "report.html": {"report/__init__.py"}, "summary.json": {"pipeline/runner.py"}}


#: Literals that are registries (keyed by the names they implement, tested equal above) or an ordering of
#: them, not hand-kept copies of a list.
REGISTRIES = {("export/__init__.py", "FORMATS"), ("devices/registry.py", "FORMATS"),
              ("quantize/calibration.py", "CALIBRATION_METHODS"), ("quantize/presets.py", "QUANTIZE_TARGETS"),
              ("quantize/tflite.py", "QUANT_MODES")}


def test_no_module_keeps_its_own_copy_of_a_list():
    """No tuple, list or set literal outside vocabulary.py names two or more members of one of its lists."""
    lists = {n: set(getattr(vocab, n)) for n in ("FORMATS", "QUANT_MODES", "PRECISIONS", "CALIBRATION_METHODS",
                                                 "SCREENING_METHODS", "ARCHITECTURES", "QUANTIZE_TARGETS")}
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        if rel == "vocabulary.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                elts = node.elts
            elif isinstance(node, ast.Dict):
                elts = [k for k in node.keys if k is not None]
            else:
                continue
            consts = {e.value for e in elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            for name, words in lists.items():
                if len(consts & words) >= 2 and (rel, name) not in REGISTRIES:
                    found.append(f"{rel}:{node.lineno}: {name} {sorted(consts & words)}")
    assert not found, found
