"""int8 quantization of an artifact directory's fp32 models (dynamic, or static), per format.

Recipes are registered per (format, mode) in ``RECIPES``; ``quantize`` runs the requested mode for
every fp32 format present (or ``settings.formats``). TFLite recipes live in ``tflite.py``.

ONNX pipeline: load the fp32 graph -> apply the architecture's named rewrites (checked to be exact) ->
ORT pre-processing -> the recipe's quantizer -> op accounting -> agreement with fp32 on the user's texts
(``--data``, ``--calibration``, a build's evaluation data) or else the built-in validation texts, which
must reach ``min_agreement`` on the confident ones (``near_ties``) -> atomic write + manifest record. All ORT work
happens in a private scratch dir; a model below the limit is never written.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping

import onnx

from .. import models
from ..cpu_clock import measure
from ..data.tokenizer_fit import load_artifact_tokenizer
from ..errors import EdgebertError, UsageError
from ..fsutil import atomic_path
from ..manifest import Manifest
from ..progress import Progress, maybe_step
from ..vocabulary import precision
from . import accuracy_goal, agreement_texts, dynamic, groups, inspect, presets, rewrites, static, tflite, validate
from .calibration import METHODS
from .preprocess import load_fp32, pre_process, scratch_dir


@dataclass(frozen=True)
class QuantizeSettings:
    mode: str                        # "dynamic" | "static"
    calibration: Path | None = None  # CSV/TSV/JSONL with a text column; None -> built-in calibration split
    text_column: str = "text"
    samples: int = 256               # calibration samples (static)
    method: str = METHODS[0]         # ``vocabulary.CALIBRATION_METHODS``: minmax | entropy | percentile
    per_channel: bool | None = None  # per-output-channel weight scales; None: the target's preset (dynamic), on (static)
    seq_len: int = 128               # calibration sequence length (ONNX; TFLite uses its fixed length)
    formats: tuple[str, ...] | None = None  # formats to quantize; None -> every fp32 format present
    min_agreement: float = validate.MIN_AGREEMENT  # int8 vs fp32 on the confident agreement texts; below: refused
    target: str = "auto"             # ONNX dynamic recipe's target CPU (``presets.TARGETS``); auto: this machine
    target_reason: str | None = None  # why this target (a build: its devices); None: "requested"/"auto"
    max_drop: float | None = None    # accuracy goal: points of accuracy int8 may lose vs fp32 (``accuracy_goal``)
    keep_best: bool = False          # goal not met: still write the best model found (and exit 1)
    data: Path | None = None         # labelled goal texts (CSV/TSV/JSONL); None -> built-in validation split
    label_column: str = "label"      # label column of ``data``
    max_float: int | None = None     # goal: at most this many layers back to float (None: all but one)
    agreement_data: Path | None = None  # agreement texts when neither data nor calibration is set (a build's
    agreement_text_column: str = "text"  # [evaluation] data; ``agreement_texts``), and their text column


@dataclass(frozen=True)
class Recipe:
    """One way to make an int8 artifact: its manifest name/precision and the quantizer to run."""

    name: str
    mode: str
    precision: str
    artifact: str
    run: Callable[..., dict]
    calibrated: bool
    format: str = "onnx"
    why: Mapping[str, str] = field(default_factory=dict)      # op group -> reason (``groups.py``)
    describe: Callable[..., str] = lambda settings: ""          # settings -> recipe_description


#: (format, mode) -> recipe. ONNX recipes run in ``_quantize_onnx``; TFLite ones in ``tflite.run``.
RECIPES: dict[tuple[str, str], Recipe] = {
    ("onnx", "dynamic"): Recipe("ort-dynamic-int8", "dynamic", precision("dynamic"), "model.int8-dynamic.onnx",
                                dynamic.run, False, why=dynamic.WHY, describe=dynamic.describe),
    ("onnx", "static"): Recipe("ort-static-qdq-int8", "static", precision("static"), "model.int8-static.onnx",
                               static.run, True, why=static.WHY, describe=static.describe),
    **{("tflite", mode): Recipe(name, mode, precision(mode), f"model.int8-{mode}.tflite", fn, mode == "static",
                                "tflite", why=tflite.WHY[mode], describe=tflite.describe)
       for mode, (name, fn) in tflite.RECIPES.items()},
}
MODES = tuple(dict.fromkeys(mode for _, mode in RECIPES))


def recipe_for(settings: QuantizeSettings, fmt: str = "onnx") -> Recipe:
    if settings.mode not in MODES:
        raise UsageError(f"unknown quantization mode {settings.mode!r}; use one of {', '.join(MODES)}")
    if settings.method not in METHODS:
        raise UsageError(f"unknown calibration method {settings.method!r}; use one of {', '.join(METHODS)}")
    if settings.seq_len < 1:
        raise UsageError(f"sequence length must be positive (got {settings.seq_len})")
    validate.check_min_agreement(settings.min_agreement)
    accuracy_goal.check_goal(settings.max_drop, settings.keep_best, settings.max_float)
    presets.resolve(settings.target)  # an unknown target is a usage error before any work
    if (fmt, settings.mode) not in RECIPES:
        raise UsageError(f"no {settings.mode} int8 recipe for format {fmt!r}")
    return RECIPES[(fmt, settings.mode)]


def quantize(directory: Path, settings: QuantizeSettings, progress: Progress | None = None,
             timings: list[dict] | None = None) -> list[str]:
    """Quantize the fp32 artifacts of an artifact directory (every format present, or ``settings.formats``).

    Returns the names of the artifacts added to the manifest. ``timings``: each recipe that finished
    appends its wall and CPU seconds there (``cpu_clock.py``), for the build's phase table.
    """
    # ORT runs with the scratch dir as cwd: make every user path absolute first.
    directory = Path(directory).resolve()
    if settings.calibration is not None:
        settings = replace(settings, calibration=Path(settings.calibration).resolve())
    if settings.data is not None:
        settings = replace(settings, data=Path(settings.data).resolve())
    if settings.agreement_data is not None:
        settings = replace(settings, agreement_data=Path(settings.agreement_data).resolve())
    recipe_for(settings)
    manifest = Manifest.load(directory)
    present = tuple(dict.fromkeys(rec["format"] for rec in manifest.artifacts.values() if rec["precision"] == "fp32"))
    wanted = tuple(dict.fromkeys(settings.formats)) if settings.formats else present
    for fmt in wanted:
        if not any(f == fmt for f, _ in RECIPES):
            raise UsageError(f"unknown format {fmt!r}; supported: {', '.join(dict.fromkeys(f for f, _ in RECIPES))}")
        if fmt not in present:
            raise UsageError(f"{directory}: no fp32 {fmt} artifact in the manifest; "
                             f"run `edgebert export MODEL -o {directory} --format {fmt}` first")
    if not wanted:
        raise UsageError(f"{directory}: no fp32 artifact in the manifest; run `edgebert export` first")
    recipes = [recipe_for(settings, fmt) for fmt in wanted]
    if "tflite" in wanted:
        tflite.check_settings(settings)
    texts = agreement_texts.load(settings, validate.AGREEMENT_TEXTS)  # a bad file: a usage error before any work
    added = []
    for recipe in recipes:
        run = _quantize_onnx if recipe.format == "onnx" else _quantize_tflite
        with measure() as span:
            added += run(directory, Manifest.load(directory), settings, recipe, progress, texts)
        if timings is not None:
            timings.append({"recipe": recipe.name, "format": recipe.format, "artifact": recipe.artifact,
                            "seconds": round(span.wall, 2), "cpu_seconds": round(span.cpu, 2)})
    return added


def _gate(artifact: str, validation: dict, manifest: Manifest, texts: agreement_texts.AgreementTexts) -> None:
    """Name what the built-in texts cannot judge (a model of other labels), then apply the gate."""
    hint = agreement_texts.data_hint(manifest.model, texts)
    if hint:
        validation["hint"] = hint
    validate.gate(artifact, validation)


def _quantize_tflite(directory: Path, manifest: Manifest, settings: QuantizeSettings, recipe: Recipe,
                     progress: Progress | None, texts: agreement_texts.AgreementTexts) -> list[str]:
    parent = manifest.reference_artifact("tflite")
    fp32_path = manifest.verify_artifact(parent)
    seq_len = int((manifest.artifacts[parent].get("fixed_shape") or {}).get("seq_len") or settings.seq_len)
    tokenizer = load_artifact_tokenizer(manifest)
    with scratch_dir() as scratch:
        out = scratch / "quantized.tflite"
        cache: dict = {}
        goal = _tflite_goal(fp32_path, manifest, settings, recipe, tokenizer, seq_len, scratch, cache, progress)
        with maybe_step(progress, f"quantizing model.tflite ({recipe.name})"):
            details, summary, validation = tflite.run(recipe.mode, fp32_path, out, settings, tokenizer=tokenizer,
                                                      seq_len=seq_len, scratch=scratch, progress=progress,
                                                      exclude=goal.exclude if goal else (), cache=cache,
                                                      texts=texts)
        _gate(recipe.artifact, validation, manifest, texts)
        with atomic_path(directory / recipe.artifact) as tmp:
            shutil.copyfile(out, tmp)
    kept = ("mode", "calibration", "text_column", "samples", "method", "formats") if recipe.calibrated else ("mode",)
    kept += GOAL_SETTINGS if goal else ()
    record = {
        "path": recipe.artifact,
        "format": "tflite",
        "precision": recipe.precision,
        "parent": parent,
        "inputs": manifest.artifacts[parent].get("inputs"),
        "fixed_shape": manifest.artifacts[parent].get("fixed_shape"),
        "quantization": {
            "mode": recipe.mode,
            "settings": {k: (str(v) if isinstance(v, Path) else (list(v) if isinstance(v, tuple) else v))
                         for k, v in asdict(settings).items() if k in kept},
            **details,
            **summary,
            **({"accuracy_goal": goal.record} if goal else {}),
        },
        "validation": validation,
    }
    manifest.add_artifact(recipe.artifact, record)
    manifest.save()
    if goal and not goal.met:
        raise accuracy_goal.not_met(recipe.artifact, goal, kept=True)
    return [recipe.artifact]


#: Settings recorded in the manifest when an accuracy goal was set.
GOAL_SETTINGS = ("max_drop", "keep_best", "data", "label_column", "max_float")


def _goal_data(manifest: Manifest, settings: QuantizeSettings, tokenizer, seq_len: int) -> accuracy_goal.GoalData:
    model = manifest.model
    label2id = model.get("label2id") or {v: int(k) for k, v in (model.get("id2label") or {}).items()} or {
        str(i): i for i in range(int(model.get("num_labels") or 2))}
    return accuracy_goal.load_data(settings.data, label2id, settings.text_column, settings.label_column, tokenizer,
                                   seq_len)


def _tflite_goal(fp32_path: Path, manifest: Manifest, settings: QuantizeSettings, recipe: Recipe, tokenizer,
                 seq_len: int, scratch: Path, cache: dict, progress) -> accuracy_goal.Outcome | None:
    if settings.max_drop is None:
        return None
    from ..devices.litert import LiteRT
    from ..export.tflite import quiet_native

    log = scratch / "aeq.log"
    fn = tflite.RECIPES[recipe.mode][1]

    layers = tflite.layers(fp32_path.read_bytes())

    def tensors(names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(t for n in names for t in layers[n][1])

    def quantize_one(exclude: tuple[str, ...], path: Path) -> None:
        fn(fp32_path, path, settings, log=log, tokenizer=tokenizer, seq_len=seq_len, exclude=tensors(exclude),
           cache=cache)

    def runner(path: Path):
        with quiet_native(log):
            return LiteRT(str(path), threads=1).run

    backend = accuracy_goal.Backend([(n, op) for n, (op, _) in layers.items()], quantize_one, runner, ".tflite")
    outcome = accuracy_goal.search(backend, fp32_path, _goal_data(manifest, settings, tokenizer, seq_len),
                                   settings.max_drop, scratch, artifact=recipe.artifact,
                                   keep_best=settings.keep_best, max_float=settings.max_float,
                                   progress=progress)
    return replace(outcome, exclude=tensors(outcome.exclude))


def _onnx_goal(pre: Path, fp32_path: Path, manifest: Manifest, settings: QuantizeSettings, recipe: Recipe, tokenizer,
               scratch: Path, cache: dict, progress) -> accuracy_goal.Outcome | None:
    if settings.max_drop is None:
        return None
    pre_model = onnx.load(str(pre))
    layers = static.layers(pre_model) if recipe.mode == "static" else dynamic.layers(pre_model, settings)
    del pre_model

    def quantize_one(exclude: tuple[str, ...], path: Path) -> None:
        recipe.run(pre, path, settings, tokenizer=tokenizer, scratch=scratch, exclude=exclude, cache=cache)

    backend = accuracy_goal.Backend(layers, quantize_one, lambda path: validate.onnx_runner(str(path)), ".onnx")
    return accuracy_goal.search(backend, fp32_path, _goal_data(manifest, settings, tokenizer, settings.seq_len),
                                settings.max_drop, scratch, artifact=recipe.artifact, keep_best=settings.keep_best,
                                max_float=settings.max_float, progress=progress)


def _quantize_onnx(directory: Path, manifest: Manifest, settings: QuantizeSettings, recipe: Recipe,
                   progress: Progress | None, texts: agreement_texts.AgreementTexts) -> list[str]:
    parent = manifest.reference_artifact("onnx")
    fp32_path = manifest.artifact_path(parent)
    model = load_fp32(fp32_path)
    arch = models.get(manifest.architecture)
    tokenizer = load_artifact_tokenizer(manifest)
    rewrite_inputs = validate.feeds(tokenizer, settings.seq_len)

    with scratch_dir() as scratch:
        rewritten = scratch / "rewritten.onnx"
        with maybe_step(progress, "rewriting graph for int8"):
            applied = rewrites.apply(model, arch.onnx_rewrites)
            onnx.save(model, str(rewritten))
            for rec in applied:
                if rec["sites"]:
                    rec["max_abs_logit_diff_fp32"] = validate.check_rewrite(str(fp32_path), str(rewritten),
                                                                            rewrite_inputs)
        del model
        pre = scratch / "preprocessed.onnx"
        with maybe_step(progress, "ONNX Runtime pre-processing (shape inference, optimization)"):
            pre_process(rewritten, pre)
        out = scratch / "quantized.onnx"
        cache: dict = {}
        goal = _onnx_goal(pre, fp32_path, manifest, settings, recipe, tokenizer, scratch, cache, progress)
        with maybe_step(progress, f"quantizing ({recipe.name})"):
            details = recipe.run(pre, out, settings, tokenizer=tokenizer, scratch=scratch, progress=progress,
                                 exclude=goal.exclude if goal else (), cache=cache)
        with maybe_step(progress, "checking the int8 model against fp32"):
            try:
                qmodel = onnx.load(str(out))
                onnx.checker.check_model(qmodel)
            except Exception as exc:
                raise EdgebertError(f"the quantizer wrote an invalid model: {exc}") from exc
            summary = inspect.summarize(qmodel)
            summary.update(groups.record(*inspect.group_counts(qmodel), recipe.why),
                           recipe_description=recipe.describe(settings))
            del qmodel
            validation = validate.compare(str(fp32_path), str(out), tokenizer, settings.seq_len,
                                          settings.min_agreement, texts)
        _gate(recipe.artifact, validation, manifest, texts)
        with atomic_path(directory / recipe.artifact) as tmp:
            shutil.copyfile(out, tmp)

    record = {
        "path": recipe.artifact,
        "format": "onnx",
        "precision": recipe.precision,
        "parent": parent,
        "quantization": {
            "mode": recipe.mode,
            "recipe": recipe.name,
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()
                         if ((recipe.calibrated and k not in GOAL_SETTINGS)
                             or k in ("mode", "per_channel", "target", "target_reason")
                             or (goal and k in GOAL_SETTINGS)) and k != "formats"},
            **details,
            "rewrites": applied,
            "notes": dict(arch.quantize_notes),
            **summary,
            **({"accuracy_goal": goal.record} if goal else {}),
        },
        "validation": validation,
    }
    manifest.add_artifact(recipe.artifact, record)
    manifest.save()
    if goal and not goal.met:
        raise accuracy_goal.not_met(recipe.artifact, goal, kept=True)
    return [recipe.artifact]


__all__ = ["QuantizeSettings", "Recipe", "RECIPES", "MODES", "quantize", "recipe_for"]
