"""Per-target dynamic int8 presets: target resolution, the recipe each preset makes, and the manifest record."""

from __future__ import annotations

import collections
import shutil

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from support import save_tiny_hf_dir

from edgebert.cli import main
from edgebert.errors import UsageError
from edgebert.export import ExportSettings, export
from edgebert.manifest import Manifest
from edgebert.quantize import QuantizeSettings, presets, quantize

ATTENTION_MATMULS = 4  # tiny models: 2 layers x (scores, context)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("presets")
    out = {}
    for name in ("distilbert", "squeezebert"):
        out[name] = root / name
        export(str(save_tiny_hf_dir(root / f"{name}-src", name)), out[name], ExportSettings(seq_len=32))
    return out


def _copy(src, tmp_path):
    d = tmp_path / "d"
    shutil.copytree(src, d)
    return d


def _ops(path):
    model = onnx.load(str(path))
    return model, collections.Counter(n.op_type for n in model.graph.node)


@pytest.mark.parametrize(("name", "target"), [("distilbert", "x86-vnni"), ("distilbert", "arm-dotprod"),
                                            ("distilbert", "arm-nodot"), ("squeezebert", "arm-nodot")])
def test_target_is_recorded_and_its_recipe_applied(exported, tmp_path, name, target):
    d = _copy(exported[name], tmp_path)
    quantize(d, QuantizeSettings(mode="dynamic", seq_len=32, target=target))
    rec = Manifest.load(d).artifacts["model.int8-dynamic.onnx"]
    q = rec["quantization"]
    assert q["settings"]["target"] == target
    assert q["target"]["name"] == target and q["target"]["chosen"] == "requested"
    assert q["target"]["why"] == presets.PRESETS[target].why != ""
    preset = presets.PRESETS[target]
    assert q["weight_type"] == preset.weight_type and target in q["recipe_description"]
    assert q["per_channel"] is preset.per_channel and q["settings"]["per_channel"] is None
    model, ops = _ops(d / "model.int8-dynamic.onnx")
    assert not ops["ConvInteger"] and not ops["Conv"]  # the SqueezeBERT rewrite still runs first
    # attention MatMuls are int8 exactly when the preset says so; every weight MatMul is int8
    assert ops["MatMul"] == (0 if preset.quantize_attention else ATTENTION_MATMULS)
    inits = {t.name: t for t in model.graph.initializer}
    weighted = [n for n in model.graph.node if n.op_type == "MatMulInteger" and n.input[1] in inits]
    assert len(weighted) >= (10 if name == "distilbert" else 30)
    assert len(weighted) == ops["MatMulInteger"] - (ATTENTION_MATMULS if preset.quantize_attention else 0)
    assert all(inits[n.input[1]].data_type == onnx.TensorProto.INT8 for n in weighted)  # u8s8
    # per-channel: one weight zero point (and scale) per output column; per-tensor: one
    scale_sizes = {int(np.prod(inits[n.input[3]].dims)) if n.input[3] in inits else 1 for n in weighted}
    assert (scale_sizes != {1}) is preset.per_channel
    assert rec["validation"]["min_agreement"] == 0.9 and rec["validation"]["prediction_agreement"] >= 0.9
    assert ops["Softmax"] == 2 and not ops["ReduceMax"]  # one graph for every target: no x86-only operator


def test_a_preset_drives_what_is_quantized(exported, tmp_path, monkeypatch):
    """A preset that quantizes attention with uint8 weights makes exactly that graph (u8u8, no float MatMul)."""
    monkeypatch.setitem(presets.PRESETS, "arm-nodot", presets.Preset(
        "arm-nodot", "QUInt8", True, presets.WEIGHT_ONLY, True, "test preset"))
    d = _copy(exported["distilbert"], tmp_path)
    quantize(d, QuantizeSettings(mode="dynamic", seq_len=32, target="arm-nodot", min_agreement=0.0))
    q = Manifest.load(d).artifacts["model.int8-dynamic.onnx"]["quantization"]
    assert q["target"]["quantize_attention"] is True and q["weight_type"] == "QUInt8"
    model, ops = _ops(d / "model.int8-dynamic.onnx")
    assert not ops["MatMul"]
    weighted = [n for n in model.graph.node if n.op_type == "MatMulInteger"
                and n.input[1] in {t.name for t in model.graph.initializer}]
    assert len(weighted) == ops["MatMulInteger"] - ATTENTION_MATMULS
    uint8 = {t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.UINT8}
    assert all(n.input[1] in uint8 for n in weighted)


def test_auto_is_the_quantizing_machine(exported, tmp_path):
    d = _copy(exported["distilbert"], tmp_path)
    quantize(d, QuantizeSettings(mode="dynamic", seq_len=32))
    t = Manifest.load(d).artifacts["model.int8-dynamic.onnx"]["quantization"]["target"]
    assert t["name"] == presets.host_target() and t["chosen"].startswith("auto")


def test_host_target(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics asimddp\n")
    assert presets.host_target(info, "aarch64") == "arm-dotprod"
    info.write_text("processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 cpuid\n")
    assert presets.host_target(info, "aarch64") == "arm-nodot"
    assert presets.host_target(tmp_path / "missing", "aarch64") == "arm-nodot"
    assert presets.host_target(info, "x86_64") == "x86-vnni"


def test_target_for_devices():
    assert presets.target_for_devices(["cortex-a53"]) == "arm-nodot"
    assert presets.target_for_devices(["cortex-a72"]) == "arm-nodot"
    assert presets.target_for_devices(["cortex-a76", "neoverse-n1"]) == "arm-dotprod"
    assert presets.target_for_devices(["desktop", "cortex-a76", "cortex-a53"]) == "arm-nodot"
    assert presets.target_for_devices(["desktop"]) == presets.host_target()
    assert presets.target_for_devices([]) == "auto"
    with pytest.raises(UsageError, match="unknown device 'nope'"):
        presets.target_for_devices(["nope"])


def test_unknown_target_is_a_usage_error(exported, tmp_path):
    with pytest.raises(UsageError, match="unknown quantization target 'risc-v'"):
        quantize(exported["distilbert"], QuantizeSettings(mode="dynamic", target="risc-v"))
    result = CliRunner().invoke(main, ["quantize", str(exported["distilbert"]), "--mode", "dynamic",
                                       "--target", "risc-v"])
    assert result.exit_code == 2 and "risc-v" in result.output and "Traceback" not in result.output


def test_a_build_quantizes_for_its_devices_and_says_why(exported, tmp_path):
    from edgebert.pipeline.config import parse
    from edgebert.pipeline.steps import _quantize_settings

    config = parse('[devices]\nnames = ["desktop", "cortex-a76"]\n')
    dynamic = _quantize_settings(config, "dynamic")
    assert dynamic.target == "arm-dotprod" and "desktop, cortex-a76" in dynamic.target_reason
    assert dynamic.per_channel is None  # the preset decides; [calibration] per_channel is the static recipe's
    assert _quantize_settings(config, "static").per_channel is True
    chosen = _quantize_settings(parse('[quantize]\ntarget = "x86-vnni"\n'), "dynamic")
    assert (chosen.target, chosen.target_reason) == ("x86-vnni", "[quantize] target")
    d = _copy(exported["distilbert"], tmp_path)
    quantize(d, dynamic)
    q = Manifest.load(d).artifacts["model.int8-dynamic.onnx"]["quantization"]
    assert q["target"]["name"] == "arm-dotprod" and q["target"]["chosen"] == dynamic.target_reason
    assert q["per_channel"] is presets.PRESETS["arm-dotprod"].per_channel
