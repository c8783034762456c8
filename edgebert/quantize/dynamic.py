"""Dynamic int8 recipe: int8 weights, activations quantized per run (ORT ``quantize_dynamic``).

Only MatMul/Gemm and the embedding Gathers (int8 tables: ~4x smaller file, same speed) are
quantized: ORT turns ``Conv`` into ``ConvInteger`` (slow or missing kernels),
so convolutions must have been rewritten to MatMul first (see ``rewrites``). Signed int8 weights
(u8s8) run ORT's fast VNNI/ARM dot-product kernels; on this host QUInt8 weights (u8u8) measured
~1.8x slower than QInt8 (see the benchmark). ``reduce_range`` (7-bit weights) is on only on an x86
host without VNNI, where u8s8 saturates (``host_isa.py``): the validation gate runs on this host, so it
follows the host whatever the target; the choice and its reason are recorded.
What to quantize and with which weight type comes from the target's preset (``presets.py``).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import EdgebertError
from . import presets
from .host_isa import host_reduce_range
from .ort_nodes import ort_names, weight_layers
from .preprocess import quiet_ort

OP_TYPES = presets.WEIGHT_ONLY  # what every preset quantizes today (kept for the recipe benchmark)

#: ``op_groups`` reasons (see ``groups.py``).
WHY = {
    "dynamic int8": "int8 weights; ONNX Runtime quantizes the activations on every run (uint8, one scale per run)",
    "int8 weights only": "int8 embedding tables: the rows a lookup reads are dequantized to float",
    "float": "MatMuls with no constant weight (attention) are left to float by ONNX Runtime's dynamic "
             "quantizer; Softmax, LayerNorm and activations are not quantized by this recipe",
}


def describe(settings) -> str:
    target, preset, _ = presets.resolve(settings.target)
    scales = "per-channel" if presets.per_channel(settings.per_channel, preset) else "per-tensor"
    weights = "uint8" if preset.weight_type == "QUInt8" else "int8"
    attention = "attention MatMuls int8 (per-run scales)" if preset.quantize_attention else "attention MatMuls"
    return (f"ONNX Runtime dynamic int8 for {target}: {scales} {weights} weights for every weight MatMul/Gemm and int8 embedding "
            f"tables; activations quantized per run; {attention}, Softmax, LayerNorm and GELU stay float")


def run(pre_path: Path, out_path: Path, settings, *, exclude: tuple[str, ...] = (), **_) -> dict:
    """Quantize ``pre_path``; ``exclude``: nodes kept float (the accuracy goal's fallbacks)."""
    reduce_range, reduce_range_why = host_reduce_range()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target, preset, chosen = presets.resolve(settings.target)
    chosen = settings.target_reason or chosen
    per_channel = presets.per_channel(settings.per_channel, preset)
    try:
        with quiet_ort():
            quantize_dynamic(str(pre_path), str(out_path), op_types_to_quantize=list(preset.op_types),
                             per_channel=per_channel, reduce_range=reduce_range,
                             weight_type=getattr(QuantType, preset.weight_type), nodes_to_exclude=ort_names(exclude),
                             extra_options={"MatMulConstBOnly": not preset.quantize_attention})
    except Exception as exc:
        raise EdgebertError(f"ONNX Runtime dynamic quantization failed: {exc}") from exc
    return {
        "weight_type": preset.weight_type, "activation_type": "QUInt8 (computed per run)",
        "per_channel": per_channel, "reduce_range": reduce_range, "reduce_range_why": reduce_range_why,
        "op_types": list(preset.op_types), "target": presets.record(target, preset, chosen),
    }


def layers(model, settings) -> list[tuple[str, str]]:
    """(node, op type) of the weight layers the target's preset quantizes: what the accuracy goal may keep float."""
    return weight_layers(model, presets.resolve(settings.target)[1].op_types)
