"""Quick numeric checks against the fp32 graph: a rewrite must be exact, int8 close enough.

These run a handful of built-in texts through ONNX Runtime; the int8 comparison is informative
(recorded in the manifest), the rewrite check is a hard error because a rewrite must not change
the function the model computes.
"""

from __future__ import annotations

import numpy as np
import onnx

from ..data import load_builtin
from ..data.tokenize import encode
from ..errors import EdgebertError

VALIDATION_TEXTS = 16
REWRITE_TOLERANCE = 1e-4  # on logits; float re-association differences are ~1e-6


def feeds(tokenizer, seq_len: int, n: int = VALIDATION_TEXTS) -> dict[str, np.ndarray]:
    return encode(tokenizer, load_builtin("test").texts[:n], seq_len, pad_to_max=False)


def run(model: onnx.ModelProto | str, inputs: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    return session.run(None, {k: v for k, v in inputs.items() if k in names})[0]


def check_rewrite(original, rewritten, inputs) -> float:
    diff = float(np.max(np.abs(run(original, inputs) - run(rewritten, inputs))))
    if not diff <= REWRITE_TOLERANCE:
        raise EdgebertError(f"graph rewrite changed the fp32 logits by {diff:.3g} (> {REWRITE_TOLERANCE}); "
                            "this is a bug in edgebert's rewrite, please report it")
    return diff


def compare(reference, candidate, inputs) -> dict:
    ref, out = run(reference, inputs), run(candidate, inputs)
    return {
        "texts": int(ref.shape[0]), "source": "builtin:rt-snippets/test",
        "max_abs_logit_diff": round(float(np.max(np.abs(ref - out))), 6),
        "prediction_agreement": round(float(np.mean(ref.argmax(-1) == out.argmax(-1))), 4),
    }
