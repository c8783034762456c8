"""Keep padded positions' attention exponentials out of the denormal range: the mask constant ``finfo.min``
becomes ``-50``.

BERT-family exports add a very negative constant (``torch.finfo(float32).min``) to the attention scores of
padded keys. ONNX Runtime's MLAS softmax clamps ``x - max`` at about -88.4 before its exponential, so every
masked position's exponential is computed in the subnormal (denormal) range, around 4e-39, and comes out as
0. On x86 each subnormal operation is a slow micro-code assist, and a padded input is mostly masked
positions: measured on the built-in DistilBERT at 27 real tokens padded to 128, the Softmax kernels took
7.3-7.7 ms of a 24 ms int8 inference (< 0.8 ms unpadded).

With ``-50`` instead, a masked position's ``x - max`` is its raw score's distance from the row's largest
real score minus 50: a normal float's exponential (no assist) while that distance is above -37, and a
weight below ``e^-35 ~ 6e-16`` of the row's largest while it is below +15. Measured on 60 built-in test
texts padded to 128 (real query rows; padded queries never reach the logits): the distance ranged
-101.5..+6.0 (DistilBERT) and -134.3..+18.6 (SqueezeBERT), so the largest masked weight is ``e^-31`` of
its row's largest and 0.7% / 0.2% of masked exponentials still come out subnormal (all of them did). fp32
logits over 200 padded texts: identical to a graph that clamps every Softmax input at ``row max - 80``
(what edgebert did before), which costs three operators per Softmax: measured 4-8% slower than this
(fp32 38.4 vs 37.0 ms, int8 15.8 vs 14.5 ms, DistilBERT, 1 thread) and 1.4-2.7% more guest
instructions on ARM. This adds no operator, so ARM cores, which have no subnormal penalty, run exactly
the stock graph's instructions. The change travels with the artifact (a user's own ORT session with
default options gets it), and export validates the rewritten graph against PyTorch on padded inputs.
"""

from __future__ import annotations

import numpy as np

MASK_VALUE = -50.0
#: A float constant at or below this that reaches a Softmax input through the mask's elementwise ops is a mask.
MASK_THRESHOLD = -1e4
MAX_SIZE = 16  # a mask constant is a scalar (or a few values); anything larger is data
#: Ops a mask passes through on its way to the scores (comparison/selection, arithmetic, shape changes).
PASS_THROUGH = frozenset({"Where", "Add", "Sub", "Mul", "Cast", "Expand", "Unsqueeze", "Reshape", "Squeeze",
                          "Transpose", "Slice", "Concat", "Identity"})
WHY = (f"the attention mask's finfo.min constant set to {MASK_VALUE:g}, so padded positions' exponentials are "
       "normal floats instead of denormals, which cost x86 a slow micro-code assist each (no operator added: "
       "ARM runs the stock graph's instructions); logits unchanged within the export's tolerance")


def _reaches_softmax(name: str, consumers: dict, hops: int = 8) -> bool:
    """Whether tensor ``name`` flows into a Softmax input through mask-like ops only."""
    front, seen = [name], {name}
    for _ in range(hops):
        nxt = []
        for tensor in front:
            for node in consumers.get(tensor, ()):
                if node.op_type == "Softmax":
                    return True
                if node.op_type in PASS_THROUGH:
                    nxt.extend(o for o in node.output if o not in seen)
                    seen.update(node.output)
        front = nxt
    return False


def _small_float_constants(model):
    """(tensor proto, output name) of every float constant of at most ``MAX_SIZE`` values: Constant nodes'
    values and initializers (sizes come from the dims, so no weight matrix is ever decoded)."""
    from onnx import TensorProto

    floats = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}
    tensors = [(attr.t, node.output[0]) for node in model.graph.node if node.op_type == "Constant"
               for attr in node.attribute if attr.name == "value"]
    tensors += [(init, init.name) for init in model.graph.initializer]
    for tensor, name in tensors:
        if tensor.data_type in floats and 0 < np.prod(tensor.dims, dtype=np.int64) <= MAX_SIZE:
            yield tensor, name


def bound_masks(model) -> int:
    """Set every attention-mask constant (≤ -1e4, reaching a Softmax) to ``MASK_VALUE`` in place; how many."""
    from onnx import numpy_helper

    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    count = 0
    for tensor, name in list(_small_float_constants(model)):
        value = numpy_helper.to_array(tensor)
        if np.all(value <= MASK_THRESHOLD) and _reaches_softmax(name, consumers):
            tensor.CopyFrom(numpy_helper.from_array(np.full_like(value, MASK_VALUE), tensor.name))
            count += 1
    return count
