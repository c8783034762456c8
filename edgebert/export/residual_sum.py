"""Residual adds before a LayerNorm as ``Sum``: ONNX Runtime then keeps LayerNormalization unfused.

ORT's load-time ``SkipLayerNormFusion`` turns ``LayerNormalization(Add(x, residual))`` into one
``SkipLayerNormalization`` kernel. After int8 dynamic quantization that kernel was the slowest float op of
the built-in DistilBERT on x86 (4.1 ms of a 17 ms inference, 12 of them); with the plain ``Add`` +
``LayerNormalization`` kernels the same int8 artifact ran 17.1 -> 13.8 ms unpadded and 17.9 -> 14.8 ms
padded (one process, interleaved, 1 thread), while fp32 was unchanged. ``Sum`` of two inputs is the same
function as ``Add`` (the fp32 logits are bit-identical) but does not match the fusion's pattern, so the
choice travels with the artifact into a user's own ORT session with default options. Int8 logits move by
up to ~0.01: the LayerNorm rounds differently before each dynamic quantization (accuracy is re-measured
by ``quantize`` and ``check`` as for any artifact).

SqueezeBERT adds its residual in channels-first layout and transposes before each LayerNorm; once int8
recipes turn its 1x1 convolutions into MatMuls, ORT's transpose optimizer cancels those transposes and
fuses the Add again (the grouped built-in: 12 SkipLayerNormalization, 4.6 of 17.3 ms). So an Add reached
through one Transpose counts too (int8-dynamic 17.3 -> 14.1 ms, one process, 1 thread).
"""

from __future__ import annotations

WHY = ("residual Add before each LayerNormalization written as Sum, so ONNX Runtime does not fuse them into "
       "SkipLayerNormalization (measured slower after int8 on x86: 17.1 -> 13.8 ms); fp32 logits bit-identical")


def sum_residuals(model) -> int:
    """Rewrite, in place, each two-input activation ``Add`` feeding a ``LayerNormalization`` as ``Sum``."""
    constants = {t.name for t in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    producer = {o: n for n in model.graph.node for o in n.output}
    count = 0
    for node in model.graph.node:
        if node.op_type != "LayerNormalization":
            continue
        add = producer.get(node.input[0])
        if add is not None and add.op_type == "Transpose":  # SqueezeBERT: Add in [N, C, W], LayerNorm on [N, W, C]
            add = producer.get(add.input[0])
        if add is not None and add.op_type == "Add" and len(add.input) == 2 and not constants & set(add.input):
            add.op_type = "Sum"
            count += 1
    return count
