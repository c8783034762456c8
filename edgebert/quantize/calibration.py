"""Streaming calibration for static int8: texts -> small token batches -> running activation ranges.

ORT's calibrators keep every activation they are fed until ``compute_data``: MinMax keeps per-run
ReduceMin/ReduceMax scalars (small), but the histogram calibrators (entropy, percentile) keep the
*full* intermediate tensors of every run of a ``collect_data`` call before building histograms
(FIELD_NOTES §1: 4-6 GB for 32 samples). So we drive the calibrator one small batch at a time:
MinMax merges ranges per call, and histograms are merged per batch by ORT's ``HistogramCollector``.
Peak memory is one batch of the calibrated tensors, whatever the sample count.

Tensors with degenerate values (non-finite, or the ``finfo(float32).min`` additive attention mask)
cannot be histogrammed ("Too many bins for data range": the float32 range ``[-t, t]`` overflows) and
would ruin a min/max scale; they are dropped from calibration and their nodes left in float.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..data import load_builtin
from ..data.datasets import load_texts
from ..data.tokenize import batches
from ..errors import EdgebertError, UsageError
from ..progress import Progress, maybe_track
from ..vocabulary import CALIBRATION_METHODS

#: method -> ORT ``CalibrationMethod`` member; its keys are ``vocabulary.CALIBRATION_METHODS``.
ORT_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
METHODS = CALIBRATION_METHODS
BATCH_SIZE = 8
#: |x| above this (or below it, when non-zero) is not a real activation range.
DEGENERATE_ABS_MAX = 1e30
DEGENERATE_ABS_MIN = 1e-30

try:  # the base class is only needed so ORT accepts the reader; keep import errors lazy
    from onnxruntime.quantization import CalibrationDataReader as _ReaderBase
except Exception:  # pragma: no cover
    _ReaderBase = object


@dataclass(frozen=True)
class CalibrationTexts:
    source: str
    texts: tuple[str, ...]


def load_calibration_texts(path: Path | None, text_column: str, samples: int) -> CalibrationTexts:
    """The first ``samples`` texts of the user's file, or of the built-in calibration split."""
    if samples < 1:
        raise UsageError(f"calibration samples must be at least 1 (got {samples})")
    if path is None:
        data = load_builtin("calibration")
        return CalibrationTexts(data.name, tuple(data.texts[:samples]))
    texts = load_texts(path, text_column)
    return CalibrationTexts(str(path), tuple(texts[:samples]))


class TokenBatchReader(_ReaderBase):
    """ORT ``CalibrationDataReader`` that tokenizes lazily, one small batch per ``get_next``.

    Only the current batch's token ids exist at any time; ``rewind`` restarts from the first text.
    """

    def __init__(self, tokenizer, texts: Sequence[str], seq_len: int, batch_size: int = BATCH_SIZE):
        self.tokenizer, self.texts, self.seq_len, self.batch_size = tokenizer, texts, seq_len, batch_size
        self.produced = 0
        self._it: Iterator[dict[str, np.ndarray]] | None = None

    def rewind(self) -> None:
        self._it, self.produced = None, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = batches(self.tokenizer, self.texts, self.seq_len, self.batch_size)
        batch = next(self._it, None)
        if batch is not None:
            self.produced += 1
        return batch

    def __len__(self) -> int:
        return -(-len(self.texts) // self.batch_size)


class _OneBatch(_ReaderBase):
    def __init__(self, batch):
        self.batch = batch

    def get_next(self):
        batch, self.batch = self.batch, None
        return batch


@dataclass
class CalibrationResult:
    tensors_range: object  # onnxruntime.quantization.calibrate.TensorsData
    degenerate: list[str] = field(default_factory=list)
    batches: int = 0


def _ort_method(method: str):
    from onnxruntime.quantization import CalibrationMethod

    if method not in METHODS:
        raise UsageError(f"unknown calibration method {method!r}; use one of {', '.join(METHODS)}")
    return getattr(CalibrationMethod, ORT_METHODS[method])


def is_degenerate(arr: np.ndarray) -> bool:
    if arr.size == 0:
        return False
    if not np.all(np.isfinite(arr)):
        return True
    amax = float(np.max(np.abs(arr)))
    return amax > DEGENERATE_ABS_MAX or 0.0 < amax < DEGENERATE_ABS_MIN


def collect_ranges(model_path: Path, reader: TokenBatchReader, method: str, op_types: Sequence[str],
                   scratch: Path, progress: Progress | None = None) -> CalibrationResult:
    """Run calibration batch by batch and return merged tensor ranges (memory flat in #samples)."""
    from onnxruntime.quantization.calibrate import create_calibrator

    ort_method = _ort_method(method)
    calibrator = create_calibrator(model_path, list(op_types), augmented_model_path=str(scratch / "augmented.onnx"),
                                   calibrate_method=ort_method, extra_options={})
    _cap_threads(calibrator)
    reader.rewind()
    result = CalibrationResult(None)
    feed = iter(reader.get_next, None)
    # ORT's histogram collector prints per call; keep the CLI's output clean.
    with contextlib.redirect_stdout(io.StringIO()):
        for batch in maybe_track(progress, feed, len(reader), "calibrating"):
            if method == "minmax":
                calibrator.collect_data(_OneBatch(batch))
            else:
                _collect_histogram_batch(calibrator, batch, result.degenerate)
            result.batches += 1
        if not result.batches:
            raise EdgebertError("calibration produced no batches (no calibration texts)")
        tensors_range = calibrator.compute_data()
    result.tensors_range = _drop_degenerate(tensors_range, result.degenerate)
    return result


def _cap_threads(calibrator) -> None:
    """ORT's calibrator session takes every core (spinning between ops); beside emulated jobs it gets
    the cores they leave (``cores.budget()``): the same graph and options with fewer intra-op threads."""
    from ..cores import budget

    threads = budget()
    if threads is None:
        return
    from ..devices import ort_session

    calibrator.infer_session = ort_session.create(calibrator.augmented_model_path, threads,
                                                  graph_optimization_level="ORT_DISABLE_ALL")  # as ORT's own


def _collect_histogram_batch(calibrator, batch: dict, degenerate: list[str]) -> None:
    """ORT's ``HistogramCalibrater.collect_data`` for one batch, skipping degenerate tensors."""
    from onnxruntime.quantization.calibrate import HistogramCollector

    session = calibrator.infer_session
    names = [o.name for o in session.get_outputs()]
    arrays = {}
    for name, value in zip(names, session.run(None, batch)):
        if name not in calibrator.tensors_to_calibrate or name in degenerate:
            continue
        if is_degenerate(value):
            degenerate.append(name)
            if calibrator.collector is not None:
                calibrator.collector.histogram_dict.pop(name, None)
            continue
        arrays[name] = np.array(value, copy=True)
    if calibrator.collector is None:
        calibrator.collector = HistogramCollector(
            method=calibrator.method, symmetric=calibrator.symmetric, num_bins=calibrator.num_bins,
            num_quantized_bins=calibrator.num_quantized_bins, percentile=calibrator.percentile,
            scenario=calibrator.scenario)
    calibrator.collector.collect(arrays)


def _drop_degenerate(tensors_range, degenerate: list[str]):
    """Remove tensors whose calibrated range is not usable (MinMax sees the mask only here)."""
    from onnxruntime.quantization.calibrate import TensorsData

    keep = {}
    for name, td in tensors_range.items():
        lo, hi = (np.asarray(v, dtype=np.float64) for v in td.range_value)
        if name in degenerate or is_degenerate(np.array([np.max(np.abs(lo)), np.max(np.abs(hi))])):
            if name not in degenerate:
                degenerate.append(name)
            continue
        keep[name] = td
    return TensorsData(tensors_range.calibration_method, keep)
