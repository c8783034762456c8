"""Labelled text datasets, tokenization to fixed shapes, and calibration sampling."""

from .datasets import LabelledTexts, load_builtin, load_dataset  # noqa: F401
from .tokenize import encode  # noqa: F401
