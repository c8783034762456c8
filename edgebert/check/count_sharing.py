"""Which instruction counts one emulated core can carry over from another: only where the same kernels must run.

Why: an fp32 ONNX count is the slowest emulated job (QEMU emulates float arithmetic in software: ~20 s per
128-token DistilBERT inference, and a warm-up before it), and on cortex-a53 and cortex-a76 it counts the
same code. Carrying it over is honest only where the runtime cannot choose other kernels on the second
core, so the rule is the runtime's kernel choice, not an observed coincidence:

- ONNX Runtime's aarch64 kernels (MLAS) are chosen by CPU features. dotprod and i8mm choose its int8
  GEMM/convolution kernels, fp16 its half-precision ones, bf16 a bf16 SGEMM only when a session option
  asks for it (edgebert never sets it); the fp32 kernels change only with SVE (its SVE elementwise
  kernels) and SME (KleidiAI's SGEMM): ``FP32_KERNEL_FEATURES``.
- so two cores run the same kernels on a graph whose tensors are float32 (and the integer/bool index
  and mask tensors): no int8, uint8, float16 or bfloat16 initializer, input, output or Cast target,
  when they agree on ``FP32_KERNEL_FEATURES``, run one thread, and are counted by the same QEMU.

Measured (built-in models, seq 128): fp32 ONNX on cortex-a53 and cortex-a76 gave identical vector FMA
counts (369,206,210 DistilBERT; 134,973,218 SqueezeBERT) and totals 0.004% apart (scalar code: glibc picks
its string functions per CPU); ``tests/test_arm.py`` counts a tiny fp32 graph on both. TFLite is never
carried over: XNNPACK picks fp32 kernels per micro-architecture (fp32 DistilBERT: 812.8 M vs 506.4 M).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FP32_KERNEL_FEATURES = frozenset({"sve", "sve2", "sme", "sme2"})
#: Tensor types that would bring MLAS's feature-chosen kernels in (ONNX ``TensorProto`` names).
NOT_FP32_TYPES = ("INT8", "UINT8", "FLOAT16", "BFLOAT16")
WHY = ("carried over from {source}: an fp32 ONNX graph (no int8/fp16/bf16 tensor) runs the same ONNX Runtime "
       "kernels on both cores (MLAS chooses fp32 kernels only by SVE/SME, on which the two cores agree; dotprod, "
       "i8mm and fp16 choose int8/fp16 kernels); the same QEMU, one thread")


def float_graph(path: Path) -> bool:
    """True when no initializer, graph input/output or Cast target of the ONNX file is int8/uint8/fp16/bf16."""
    import onnx

    not_fp32 = {getattr(onnx.TensorProto, name) for name in NOT_FP32_TYPES}
    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    types = [t.data_type for t in graph.initializer]
    types += [v.type.tensor_type.elem_type for v in (*graph.input, *graph.output, *graph.value_info)]
    for node in graph.node:
        if node.op_type == "Cast":
            types += [a.i for a in node.attribute if a.name == "to"]
    return not not_fp32.intersection(types)


def _counts_alike(a: Any, b: Any) -> bool:
    cpu_a, cpu_b = getattr(a, "cpu", None), getattr(b, "cpu", None)
    if cpu_a is None or cpu_b is None:
        return False
    env_a, env_b = a.env(), b.env()
    return (set(cpu_a.features) & FP32_KERNEL_FEATURES == set(cpu_b.features) & FP32_KERNEL_FEATURES
            and env_a.root == env_b.root
            and env_a.counting_qemu(cpu_a.qemu_cpu) == env_b.counting_qemu(cpu_b.qemu_cpu) is not None)


def count_source(artifact: dict[str, Any], path: Path, device: Any, counted_before: list[Any],
                 threads: int) -> Any | None:
    """The device among ``counted_before`` whose count of this artifact ``device`` carries over, or None.

    ``artifact``: its manifest entry; ``threads``: the count's thread count (more than one: counts include
    other threads' work and are never carried)."""
    if artifact.get("format") != "onnx" or artifact.get("precision") != "fp32" or threads != 1:
        return None
    source = next((d for d in counted_before if _counts_alike(d, device)), None)
    if source is None or not path.is_file() or not float_graph(path):
        return None
    return source
