"""The names a user types (CLI choices, config values) and manifests record, importable in milliseconds.

The registries that implement them need torch, onnx or ONNX Runtime, which the CLI must not import
just to parse its options. So each list is written once here, the light modules (CLI, config,
manifest schema, reports) read it, and the registries are tested to implement exactly these names
(``tests/test_cli.py``): a registry that gains or loses one fails the test until this file agrees.
Standard library only.
"""

from __future__ import annotations

#: Artifact formats (``export.EXPORTERS`` registers one exporter per format).
FORMATS = ("onnx", "tflite")
#: How reports spell each format.
FORMAT_TITLES = dict(zip(FORMATS, ("ONNX", "TFLite")))
#: int8 quantization modes (``quantize.RECIPES`` has one recipe per (format, mode)).
QUANT_MODES = ("dynamic", "static")
#: Artifact precisions: the fp32 export, then one per quantization mode.
PRECISIONS = ("fp32", *(f"int8-{mode}" for mode in QUANT_MODES))
#: Static calibration methods (``quantize.calibration.ORT_METHODS``; the first is the default).
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
#: How emulated devices spend emulator time (``check/screening.py``; the first is the default).
SCREENING_METHODS = ("screened", "all")
#: Built-in architectures (``models.registry``), also the built-in models of the default build.
ARCHITECTURES = ("distilbert", "squeezebert")
#: ``quantize --target`` values (``quantize.presets.TARGETS``: "auto", then one per preset).
QUANTIZE_TARGETS = ("auto", "x86-vnni", "arm-dotprod", "arm-nodot")
#: ``[quantize] target`` of a build: besides a ``--target``, this picks it from the build's devices (default).
BUILD_TARGET_DEVICES = "devices"


def precision(mode: str | None) -> str:
    """The precision of an artifact quantized with ``mode`` (None: the fp32 export)."""
    return "fp32" if mode is None else f"int8-{mode}"
