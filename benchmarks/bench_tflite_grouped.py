"""TFLite forms of the grouped SqueezeBERT: stock (channels-first) vs channels-last rewrites (issue 25).

    python benchmarks/bench_tflite_grouped.py [--model squeezebert] [--forms stock,linear,qkv,bmm] [--runs 40]
                                              [--rounds 3] [--dense distilbert] [--work DIR]

Each form is exported by edgebert (``edgebert.export.tflite.SQUEEZEBERT_FORM``; validation against the
stock PyTorch model as always), then quantized int8 dynamic and static by edgebert's AEQ recipes. LiteRT
p50 at batch 1, the ``seq128`` signature (128 real tokens), 1 thread, every artifact timed in turn, run
after run, in ``--rounds`` separate rounds (a shared machine slows them alike); the table shows the
median of the round p50s, the TRANSPOSE count of the seq128 subgraph and the file size. ``--dense``
adds a dense reference model (e.g. the built-in ``distilbert``) timed in the same rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_grouped import interleaved  # noqa: E402

PRECISIONS = {"fp32": "model.tflite", "int8-dynamic": "model.int8-dynamic.tflite",
              "int8-static": "model.int8-static.tflite"}


def op_count(path: Path, op: str, signature: str = "seq128") -> int:
    """How many ``op`` nodes the ``signature`` subgraph runs."""
    from ai_edge_litert.interpreter import Interpreter

    from edgebert.devices.litert import model_and_op_names

    model, codes = model_and_op_names(path.read_bytes())
    index = list(Interpreter(model_path=str(path)).get_signature_list()).index(signature)
    sg = model.Subgraphs(model.SignatureDefs(index).SubgraphIndex())
    return sum(codes[sg.Operators(j).OpcodeIndex()] == op for j in range(sg.OperatorsLength()))


def build(model: str, form: str, work: Path) -> Path:
    """``work/form``: the fp32 export of ``model`` in ``form`` (a SqueezeBERT form, or any name for a
    model that is converted as it is) and its two int8 recipes; reused when present."""
    from edgebert.export import ExportSettings, export, tflite
    from edgebert.quantize import QuantizeSettings, quantize

    d = work / form
    if not (d / PRECISIONS["fp32"]).exists():
        saved = tflite.SQUEEZEBERT_FORM
        tflite.SQUEEZEBERT_FORM = form if form in tflite.SQUEEZEBERT_FORMS else saved
        try:
            export(model, d, ExportSettings(formats=("tflite",)))
        finally:
            tflite.SQUEEZEBERT_FORM = saved
    for mode in ("dynamic", "static"):
        if not (d / PRECISIONS[f"int8-{mode}"]).exists():
            quantize(d, QuantizeSettings(mode=mode, formats=("tflite",)))
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="squeezebert")
    ap.add_argument("--forms", default="stock,linear,qkv,bmm")
    ap.add_argument("--dense", default=None, help="a dense reference model timed alongside (e.g. distilbert)")
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-tflite-grouped-"))
    forms = [f.strip() for f in args.forms.split(",") if f.strip()]
    dirs = {form: build(args.model, form, work) for form in forms}
    if args.dense:
        forms.append("dense")
        dirs["dense"] = build(args.dense, "dense", work)
    arts = {(form, p): dirs[form] / name for form in forms for p, name in PRECISIONS.items()}
    rounds = [interleaved({k: v for k, v in arts.items()}, args.runs) for _ in range(args.rounds)]
    p50 = {k: statistics.median(r[k][0] for r in rounds) for k in arts}
    print(f"{args.model}: LiteRT, 1 thread, batch 1, seq128 signature (128 real tokens); median of "
          f"{args.rounds} rounds x {args.runs} interleaved runs; work dir {work}")
    head = f"{'form':8s} " + " ".join(f"{p + ' ms':>16s}" for p in PRECISIONS)
    print(head + f" {'TRANSPOSE':>10s} {'fp32 MB':>8s} {'static MB':>10s}")
    for form in forms:
        cells = " ".join(f"{p50[(form, p)]:16.2f}" for p in PRECISIONS)
        fp32, static = arts[(form, "fp32")], arts[(form, "int8-static")]
        print(f"{form:8s} {cells} {op_count(fp32, 'TRANSPOSE'):10d} {fp32.stat().st_size / 1e6:8.1f} "
              f"{static.stat().st_size / 1e6:10.1f}")


if __name__ == "__main__":
    main()
