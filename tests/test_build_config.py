"""`edgebert build` config: good files parse into frozen dataclasses; bad ones name the key and line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgebert.pipeline import default_config, load_config, parse_config
from edgebert.pipeline.config import BuildConfig
from edgebert.cli import main
from edgebert.errors import UsageError

GOOD = """\
# a CI config
[build]
models = ["distilbert", {name = "mine", source = "./my-model"}]
formats = ["onnx"]
precisions = ["fp32", "int8-static"]
seq_len = 64
output = "out"

[calibration]
data = "calib.jsonl"
samples = 64
method = "minmax"
per_channel = false

[evaluation]
data = "test.csv"
limit = 500
emulated_limit = 10
runs = 20
warmup = 2
profile = false

[devices]
names = ["desktop", "cortex-a53"]
threads = 2
setup = false

[gates]
max_accuracy_drop = 1.5
min_accuracy = 0.8
max_size_mb = 30
max_latency_p90_ms = 40.5
max_drift_vs_desktop = 0.25
max_flips_vs_desktop = 1

[gates.max_instructions]
cortex-a53 = 2.5e9
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edgebert.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_config_parses_into_frozen_typed_settings(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    assert isinstance(cfg, BuildConfig)
    assert [m.name for m in cfg.models] == ["distilbert", "mine"]
    assert cfg.models[1].source == str((tmp_path / "my-model").resolve())  # relative to the config file
    assert cfg.formats == ("onnx",) and cfg.precisions == ("fp32", "int8-static") and cfg.seq_len == 64
    assert cfg.output == tmp_path / "out"
    assert cfg.calibration.data == tmp_path / "calib.jsonl" and cfg.calibration.per_channel is False
    assert cfg.evaluation.limit == 500 and cfg.evaluation.emulated_limit == 10 and cfg.evaluation.profile is False
    assert cfg.devices.names == ("desktop", "cortex-a53") and cfg.devices.threads == 2
    assert cfg.gates.max_size_mb == 30.0 and isinstance(cfg.gates.max_size_mb, float)
    assert cfg.gates.instructions_limit("cortex-a53") == 2.5e9 and cfg.gates.instructions_limit("desktop") is None
    assert cfg.emulated_devices == ("cortex-a53",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seq_len = 3  # type: ignore[misc]
    assert cfg.to_json()["gates"]["max_instructions"] == {"cortex-a53": 2.5e9}


def test_empty_config_gets_defaults(tmp_path):
    cfg = load_config(write(tmp_path, ""))
    assert [m.name for m in cfg.models] == ["distilbert", "squeezebert"]
    assert cfg.precisions == ("fp32", "int8-dynamic", "int8-static") and cfg.devices.names == ("desktop",)
    assert cfg.gates.max_accuracy_drop is None


def test_builtin_default_is_the_full_matrix():
    from edgebert.export import EXPORTERS

    cfg = default_config()
    assert [m.source for m in cfg.models] == ["distilbert", "squeezebert"]
    assert cfg.formats == tuple(f for f in ("onnx", "tflite") if f in EXPORTERS)
    assert len(cfg.precisions) == 3 and cfg.devices.names == ("desktop", "cortex-a53", "cortex-a76")
    # every emulated int8 accuracy covers at least 300 examples (issue 8), screened
    assert cfg.evaluation.emulated_limit >= 300 and cfg.evaluation.emulated_method == "screened"
    assert cfg.gates.max_flip_rate is not None and dict(cfg.gates.max_instructions).keys() == {"cortex-a53", "cortex-a76"}


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("edit, key, needle, message", [
    (("max_latency_p90_ms = 40.5", "max_latency_ms = 40.5"), "gates.max_latency_ms", "max_latency_ms =",
     "unknown key"),
    (("seq_len = 64", 'seq_len = "64"'), "build.seq_len", "seq_len =", "must be an integer"),
    (("per_channel = false", "per_channel = 1"), "calibration.per_channel", "per_channel =", "true or false"),
    (("limit = 500", "limit = 5.5"), "evaluation.limit", "limit = 5.5", "must be an integer"),
    (("threads = 2", "threads = true"), "devices.threads", "threads =", "must be an integer"),
    (("min_accuracy = 0.8", "min_accuracy = 80"), "gates.min_accuracy", "min_accuracy =", "fraction"),
    (("min_accuracy = 0.8", "min_accuracy = 0.8\nmin_int8_kernel_share = 5"), "gates.min_int8_kernel_share",
     "min_int8_kernel_share =", "fraction"),
    (("max_size_mb = 30", "max_size_mb = -1"), "gates.max_size_mb", "max_size_mb =", "at least 0"),
    (('method = "minmax"', 'method = "kl"'), "calibration.method", "method =", "choose from"),
    (('formats = ["onnx"]', 'formats = ["onnx", "coreml"]'), "build.formats", "formats =", "'coreml'"),
    (('names = ["desktop", "cortex-a53"]', 'names = ["desktop", "pixel9"]'), "devices.names", "names =", "'pixel9'"),
    (("cortex-a53 = 2.5e9", "cortex-a53 = 2.5e9\ndesktop = 1e9"), "gates.max_instructions.desktop", "desktop = 1e9",
     ""),
    (("cortex-a53 = 2.5e9", 'cortex-a53 = "lots"'), "gates.max_instructions.cortex-a53", 'cortex-a53 = "lots"',
     "must be a number"),
    (('precisions = ["fp32", "int8-static"]', 'precisions = ["int8-static"]'), "build.precisions", "precisions =",
     "fp32"),
    (("[devices]", "[device]"), "device", "[device]", "unknown table"),
])
def test_bad_key_or_type_names_key_and_line(tmp_path, edit, key, needle, message):
    text = GOOD.replace(*edit)
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as err:
        load_config(path)
    msg = str(err.value)
    assert f"{path}:{line_of(text, needle)}: {key}" in msg, msg
    assert message in msg


def test_same_key_in_two_tables_gets_the_right_line(tmp_path):
    text = "[evaluation]\ntext_column = 'text'\n\n[calibration]\nsamples = 8\ntext_column = 3\n"
    with pytest.raises(UsageError, match=r"edgebert.toml:6: calibration.text_column: must be a string"):
        load_config(write(tmp_path, text))


def test_toml_syntax_error_and_missing_file(tmp_path):
    with pytest.raises(UsageError, match="not valid TOML.*line 2"):
        load_config(write(tmp_path, "[build]\nseq_len = = 3\n"))
    with pytest.raises(UsageError, match="no such config file"):
        load_config(tmp_path / "nope.toml")


def test_duplicate_model_names_are_refused():
    with pytest.raises(UsageError, match=r"config:2: build.models: two models named 'distilbert'"):
        parse_config('[build]\nmodels = ["distilbert", "distilbert"]\n')


def test_cli_bad_config_is_a_usage_error_with_the_line(tmp_path):
    path = write(tmp_path, "[gates]\nmin_accuracy = 0.5\nmax_sise_mb = 3\n")
    result = CliRunner().invoke(main, ["build", str(path)], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert f"Error: {path}:3: gates.max_sise_mb: unknown key" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(main, ["build", str(tmp_path / "missing.toml")], catch_exceptions=False)
    assert result.exit_code == 2 and "no such config file" in result.output


# --- defaults: one source (the dataclasses), the docstring and README agree -----------------------------
def test_omitted_or_empty_tables_give_the_dataclass_defaults():
    """Each omitted table (and each empty one) is its dataclass's default: nothing in the parser adds its own."""
    from dataclasses import fields

    from edgebert.pipeline import config as cfg_mod

    defaults = BuildConfig()
    for text in ("", "".join(f"[{t}]\n" for t in cfg_mod.TABLES)):
        cfg = parse_config(text)
        for f in fields(BuildConfig):
            if f.name != "source":
                assert getattr(cfg, f.name) == getattr(defaults, f.name), (f.name, text)
    assert parse_config("").devices.names == ("desktop",) == cfg_mod.DevicesConfig().names
    assert parse_config("[evaluation]\nlimit = 0\nemulated_limit = 0\n").evaluation.emulated_limit is None
    assert parse_config("[evaluation]\nruns = 7\n").evaluation == cfg_mod.EvaluationConfig(runs=7)


def _docstring_block(marker: str, end: str) -> str:
    import textwrap

    from edgebert.pipeline import config as cfg_mod

    doc = cfg_mod.__doc__
    return textwrap.dedent(doc[doc.index("::", doc.index(marker)) + 2:doc.index(end)])


def test_the_config_docstring_lists_every_key_with_its_default():
    from dataclasses import fields

    from edgebert.pipeline import config as cfg_mod

    text = _docstring_block("Every key, with its default", "Gates are off unless set")
    documented = parse_config(text)
    assert documented.output == Path.cwd().resolve() / "edgebert-build"  # a set path is relative to the file
    assert dataclasses.replace(documented, output=BuildConfig().output) == parse_config("")
    for table, cls in (("calibration", cfg_mod.CalibrationConfig), ("evaluation", cfg_mod.EvaluationConfig),
                       ("devices", cfg_mod.DevicesConfig), ("quantize", cfg_mod.QuantizeConfig)):
        block = text[text.index(f"[{table}]"):]
        block = block[:block.index("\n\n")]
        for f in fields(cls):  # a key unset by default (None, no TOML spelling) is shown commented out;
            # a per-device sub-table (empty by default) is shown as its own [table.key] example
            assert f"\n{f.name} = " in block or (getattr(cls(), f.name) is None and f"\n# {f.name} = " in block) \
                or (getattr(cls(), f.name) == () and f"[{table}.{f.name}]" in cfg_mod.__doc__), \
                f"[{table}] {f.name} is not documented"
    gates = parse_config('[devices]\nnames = ["desktop", "cortex-a53"]\n'
                         + _docstring_block("Gates are off unless set", "The built-in default")).gates
    assert all(getattr(gates, f.name) not in (None, ()) for f in fields(cfg_mod.GatesConfig)), gates


def test_readme_config_table_states_the_parsed_defaults():
    """The manual's config example (docs/builds-and-ci.md) says which defaults apply when a key is omitted;
    they are the parser's."""
    readme = (Path(__file__).parents[1] / "docs" / "builds-and-ci.md").read_text(encoding="utf-8")
    empty = parse_config("")
    assert "# default [\"onnx\"]" in readme and empty.formats == ("onnx",)
    assert "# default [\"desktop\"]" in readme and empty.devices.names == ("desktop",)
    assert "(default 500; 0 = all)" in readme and empty.evaluation.emulated_limit == 500
    assert "(default 0 = all)" in readme and empty.evaluation.limit is None
    assert "(default 50)" in readme and empty.evaluation.runs == 50
    assert "(default 10)" in readme and empty.evaluation.warmup == 10
    assert "(default 0.9)" in readme and empty.quantize.min_agreement == 0.9


def test_quantize_max_drop_parses_validates_and_reaches_the_fingerprint(tmp_path):
    """``[quantize] max_drop``: a number of points >= 0; the quantize settings the build fingerprints carry it."""
    from edgebert.quantize import QuantizeSettings

    assert load_config(write(tmp_path, GOOD)).quantize.max_drop is None
    text = GOOD + "\n[quantize]\nmax_drop = 0.5\nkeep_best = true\n"
    cfg = load_config(write(tmp_path, text))
    assert cfg.quantize.max_drop == 0.5 and cfg.quantize.keep_best is True
    for bad, message in (("max_drop = -1", "at least 0"), ('max_drop = "half"', "must be a number"),
                         ("max_drop = nan", "accuracy points"), ("keep_best = true", "only applies")):
        text = GOOD + f"\n[quantize]\n{bad}\n"
        path = write(tmp_path, text)
        with pytest.raises(UsageError) as err:
            load_config(path)
        key = bad.split(" ")[0]
        assert f"{path}:{line_of(text, bad)}: quantize.{key}" in str(err.value) and message in str(err.value)
    # the build quantizes with the goal, and its quantize fingerprint is made from these settings (asdict)
    from edgebert.pipeline import steps

    cfg = load_config(write(tmp_path, GOOD + "\n[quantize]\nmax_drop = 0.5\nkeep_best = true\n"))
    for mode in ("dynamic", "static"):
        settings = steps._quantize_settings(cfg, mode)
        assert (settings.max_drop, settings.keep_best) == (0.5, True)
        plain = steps._quantize_settings(load_config(write(tmp_path, GOOD)), mode)
        assert dataclasses.asdict(settings) != dataclasses.asdict(plain)
    assert isinstance(settings, QuantizeSettings)


def test_estimate_gates_and_clock_override_per_emulated_device(tmp_path):
    """``[gates.max_estimated_ms]`` and ``[devices.clock_ghz]``: per emulated device of devices.names, checked."""
    base = '[devices]\nnames = ["desktop", "cortex-a76"]\n'
    cfg = parse_config(base + "[devices.clock_ghz]\ncortex-a76 = 2.8\n[gates.max_estimated_ms]\ncortex-a76 = 150\n")
    assert cfg.devices.clock_ghz == (("cortex-a76", 2.8),) and cfg.gates.estimated_ms_limit("cortex-a76") == 150
    assert cfg.gates.estimated_ms_limit("desktop") is None and cfg.baseline.max_estimated_increase == 0.05
    assert cfg.to_json()["gates"]["max_estimated_ms"] == {"cortex-a76": 150}
    for bad, message in (("[gates.max_estimated_ms]\ndesktop = 10\n", "not emulated"),
                         ("[gates.max_estimated_ms]\ncortex-a53 = 10\n", "not in devices.names"),
                         ("[devices.clock_ghz]\ncortex-a76 = 0\n", "at least 0.05"),
                         ("[devices.clock_ghz]\ncortex-a76 = 40\n", "between 0.05 and 10 GHz")):
        with pytest.raises(UsageError, match=message):
            parse_config(base + bad)
